using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace MimoSharp.Tensors.Kernels;

/// <summary>
/// The vector width a kernel runs at. <see cref="Auto"/> is the widest this machine has
/// (<see cref="KernelIsas.Widest"/>); a narrower one forces that path (tests compare them, `mimo bench --isa`).
/// </summary>
public enum KernelIsa
{
    Auto = 0,
    Scalar = 1,
    /// <summary>128-bit: SSE4.1 on x86, NEON (AdvSimd) on ARM64.</summary>
    Vector128 = 2,
    /// <summary>256-bit: AVX2 + FMA.</summary>
    Vector256 = 3,
    /// <summary>512-bit: AVX-512 F + BW.</summary>
    Vector512 = 4,
}

/// <summary>
/// How a product is computed: the path (<see cref="Isa"/>) and, for the integer group formats (Q8_0 /
/// Q4_0), whether activations stay float (<see cref="ExactActivations"/>: the result is the float dot
/// product of the dequantized weights, which the equality tests against a float twin use) or are
/// quantized to int8 per group of 32 once per product and multiplied in integers (the default, as
/// llama.cpp does: vpmaddubsw/vpmaddwd on AVX2, VNNI where present, sdot on ARM64).
/// <c>default</c> is the widest path with quantized activations. Passed per call or held per model:
/// there is no process-wide switch.
/// </summary>
public readonly record struct KernelMode(KernelIsa Isa = KernelIsa.Auto, bool ExactActivations = false)
{
    /// <summary>The path this mode runs on this machine (Auto resolved); throws when the machine lacks it.</summary>
    public KernelIsa ResolvedIsa => KernelIsas.Resolve(Isa);

    public static KernelMode Exact(KernelIsa isa = KernelIsa.Auto) => new(isa, ExactActivations: true);
}

/// <summary>Which kernel paths this machine can execute.</summary>
public static class KernelIsas
{
    /// <summary>The widest path of this machine, detected once.</summary>
    public static readonly KernelIsa Widest = Detect();

    /// <summary>Every path this machine can execute, scalar first: the tests run each one.</summary>
    public static IReadOnlyList<KernelIsa> Supported { get; } =
        [.. new[] { KernelIsa.Scalar, KernelIsa.Vector128, KernelIsa.Vector256, KernelIsa.Vector512 }.Where(i => i <= Widest)];

    private static KernelIsa Detect() =>
        Avx512F.IsSupported && Avx512BW.IsSupported && Vector512.IsHardwareAccelerated ? KernelIsa.Vector512
        : Avx2.IsSupported && Fma.IsSupported ? KernelIsa.Vector256
        : Sse41.IsSupported || AdvSimd.Arm64.IsSupported ? KernelIsa.Vector128
        : KernelIsa.Scalar;

    /// <summary><paramref name="isa"/> with Auto resolved to <see cref="Widest"/>; a path wider than the machine's throws.</summary>
    public static KernelIsa Resolve(KernelIsa isa)
    {
        if (isa == KernelIsa.Auto)
        {
            return Widest;
        }
        if (isa > Widest || isa < KernelIsa.Auto)
        {
            throw new NotSupportedException($"kernel path {isa} is not supported on this machine (widest: {Widest})");
        }
        return isa;
    }
}
