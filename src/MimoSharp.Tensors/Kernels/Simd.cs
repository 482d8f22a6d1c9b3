using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace MimoSharp.Tensors.Kernels;

/// <summary>
/// One vector width's operations, so that a kernel body is written once over TVec
/// (Vector128/256/512 of float) as TensorPrimitives does: a kernel is generic over
/// <c>TVec</c> and a struct <c>TW : ISimd&lt;TVec&gt;</c>, the JIT compiles one copy per width and
/// inlines every operation (each is one to three instructions). The weight decoders live here too:
/// they are what differs between widths (the widening loads).
/// </summary>
internal unsafe interface ISimd<TVec> where TVec : struct
{
    /// <summary>Float lanes.</summary>
    static abstract int Count { get; }

    /// <summary>32 vector registers (AVX-512, NEON) rather than 16 (AVX2, SSE): register tiles are sized by it.</summary>
    static abstract bool WideRegisterFile { get; }

    static abstract TVec Zero { get; }
    static abstract TVec Load(float* p);
    static abstract void Store(TVec v, float* p);
    static abstract TVec Splat(float v);
    static abstract TVec Add(TVec a, TVec b);
    static abstract TVec Subtract(TVec a, TVec b);
    static abstract TVec Multiply(TVec a, TVec b);
    static abstract TVec Divide(TVec a, TVec b);
    static abstract TVec Min(TVec a, TVec b);
    static abstract TVec Max(TVec a, TVec b);
    /// <summary>a · b + c, one rounding.</summary>
    static abstract TVec Fma(TVec a, TVec b, TVec c);
    static abstract float Sum(TVec v);
    /// <summary>[Σ a, Σ b, Σ c, Σ d] of four vectors.</summary>
    static abstract Vector128<float> Sum4(TVec a, TVec b, TVec c, TVec d);
    static abstract float MaxAcross(TVec v);
    /// <summary>Nearest integer (ties to even).</summary>
    static abstract TVec Round(TVec v);
    /// <summary>2^n for integral n in -126..127 (built in the exponent bits).</summary>
    static abstract TVec Pow2(TVec integral);

    /// <summary>Count FP8 E4M3 codes as floats of value decode(b) · 2^-120 (see <see cref="MatMul"/>); NaN codes give NaN.</summary>
    static abstract TVec Fp8(byte* p);
    /// <summary>
    /// 2 · Count FP8 codes as <see cref="Fp8"/> without the NaN compare (NaN codes land on ±480 · 2^-120),
    /// in the order of <see cref="Fp8PairCode"/>: for kernels that find NaN codes by <see cref="Fp8NaNScan"/>
    /// over whole bytes instead, and read x permuted to match. On x86 the codes are sign-extended to 16
    /// bits, shifted and masked 16 at a time, then unpacked into the high halves of 32-bit lanes (in-lane,
    /// hence the order): 5 instructions per 2 · Count weights instead of 6.
    /// </summary>
    static abstract void Fp8Pair(byte* p, out TVec low, out TVec high);
    /// <summary>
    /// 4 · Count FP8 codes (one step of the FP8 decode kernels) as <see cref="Fp8Pair"/> does, into v0..v3, in the
    /// order of <see cref="Fp8StepCode"/>. With GFNI (x86, 256 and 512 bits) two affine bit transforms build
    /// every code's high byte (sign, top three exponent bits) and low byte (low exponent bit and mantissa,
    /// shifted up by 4) from one load, and byte- then word-unpacks lay them into the high halves of 32-bit
    /// lanes: 8 instructions per 4 · Count weights instead of the two pairs' 10. Elsewhere: two pairs.
    /// <paramref name="first"/> and <paramref name="second"/> are <see cref="Fp8StepConstants"/> (GFNI: the two bit
    /// matrices), which the kernel makes once before its loop and passes in: a Vector512.Create of a constant inside
    /// the step is re-broadcast from memory on every step (a vbroadcastsd the JIT does not hoist), and on Zen 4 that
    /// took 20% of the one-token kernel's time in cache (23.4 against 28.4 G multiply-adds/s, 512 x 1024).
    /// </summary>
    static abstract void Fp8Step(byte* p, TVec first, TVec second, out TVec v0, out TVec v1, out TVec v2, out TVec v3);
    /// <summary>The two constants <see cref="Fp8Step"/> reads (GFNI: its two bit matrices; unused elsewhere), made once per kernel call.</summary>
    static abstract void Fp8StepConstants(out TVec first, out TVec second);
    /// <summary>Whether <see cref="Fp8Step"/> is two <see cref="Fp8Pair"/>s (at p and p + 2 · Count), as everywhere without GFNI.</summary>
    static abstract bool Fp8StepIsTwoPairs { get; }
    /// <summary>Which of the 4 · Count codes at p element i of <see cref="Fp8Step"/>'s v0..v3 holds (v = i / Count).</summary>
    static abstract int Fp8StepCode(int i);
    /// <summary>
    /// dst[i] = src[<see cref="Fp8StepCode"/>(i)] for one step of 4 · Count floats (x as the step decode reads it;
    /// <paramref name="order"/> is that table). The GFNI order is a 4 × 4 transpose of 4-float blocks, done by shuffles.
    /// </summary>
    static abstract void Fp8StepPermute(float* src, float* dst, ReadOnlySpan<int> order);
    /// <summary>Count codes as <see cref="Fp8"/> without the NaN compare, in column order (the multi-token kernels, which scan for NaN codes).</summary>
    static abstract TVec Fp8Finite(byte* p);
    /// <summary>Which of the 2 · Count codes at p element i of <see cref="Fp8Pair"/>'s (low, high) holds (i &lt; Count: low).</summary>
    static abstract int Fp8PairCode(int i);
    /// <summary>
    /// <paramref name="seen"/> folded with the 4 · Count codes at p by byte-wise max of (code | 0x80): a byte
    /// of 0xFF marks a NaN code (0x7F, 0xFF). Start from <see cref="Zero"/>; test with <see cref="Fp8SawNaN"/>.
    /// </summary>
    static abstract TVec Fp8NaNScan(byte* p, TVec seen);
    /// <summary>Whether an <see cref="Fp8NaNScan"/> accumulator met a NaN code.</summary>
    static abstract bool Fp8SawNaN(TVec seen);
    /// <summary>Count BF16 values as floats.</summary>
    static abstract TVec Bf16(ushort* p);
    /// <summary>Count Q8_0 codes (int8) as floats.</summary>
    static abstract TVec Q8(sbyte* p);
    /// <summary>
    /// Count bytes of a Q4_0 group from byte j: <paramref name="low"/> = codes j.. (low nibbles) and
    /// <paramref name="high"/> = codes j + 16.. (high nibbles), each as q - 8.
    /// </summary>
    static abstract void Q4(byte* p, out TVec low, out TVec high);
}

/// <summary>
/// The integer dot product of the quantized-activation route: one group of 32 int8 activation codes
/// against 32 weight codes, exact in int32, returned as float lanes whose sum is the dot product.
/// </summary>
internal unsafe interface IInt8Dot<TVec, TCodes> where TVec : struct where TCodes : struct
{
    /// <summary>32 int8 codes (a Q8_0 group, or quantized activations).</summary>
    static abstract TCodes LoadQ8(sbyte* p);
    /// <summary>The 32 codes of a Q4_0 group (16 bytes) as q - 8, in column order.</summary>
    static abstract TCodes LoadQ4(byte* p);
    /// <summary>Float lanes summing to Σ w[i] · x[i] over the 32 codes (|w| ≤ 128, |x| ≤ 127: no int16 saturation).</summary>
    static abstract TVec Dot(TCodes w, TCodes x);
}

/// <summary>Two 128-bit halves of a 32-code group.</summary>
internal readonly struct Codes128(Vector128<sbyte> lo, Vector128<sbyte> hi)
{
    public readonly Vector128<sbyte> Lo = lo;
    public readonly Vector128<sbyte> Hi = hi;
}

internal static class SimdConstants
{
    /// <summary>E4M3 code, sign-extended to int32 and shifted left 20: sign, 4 exponent and 3 mantissa bits of a float32.</summary>
    public const int Fp8Mask = unchecked((int)0x87F00000);
    /// <summary>The masked bits of the NaN codes 0x7F / 0xFF (with the sign bit forced on).</summary>
    public const int Fp8NaNBits = unchecked((int)0x87F00000);
    public const int SignBit = unchecked((int)0x80000000);
    /// <summary>The high half of <see cref="Fp8Mask"/>: the same bits of a code sign-extended to 16 bits and shifted left 4.</summary>
    public const short Fp8WordMask = unchecked((short)0x87F0);

    /// <summary>
    /// The code behind element i of (low, high) when 2 · <paramref name="lanes"/> codes are widened to 16
    /// bits and unpacked into 32-bit lanes per 128-bit lane: low holds codes 8L..8L+3 of lane L, high 8L+4..8L+7.
    /// </summary>
    public static int UnpackedCode(int i, int lanes)
    {
        int half = i / lanes, e = i % lanes;
        return 8 * (e / 4) + 4 * half + e % 4;
    }

    /// <summary>
    /// The code behind element i of v0..v3 when 4 · <paramref name="lanes"/> codes are byte-unpacked into 16-bit
    /// words and then word-unpacked into 32-bit lanes per 128-bit lane: v_j holds codes 16L + 4j .. 16L + 4j + 3 of lane L.
    /// </summary>
    public static int GfniStepCode(int i, int lanes)
    {
        int j = i / lanes, e = i % lanes;
        return 16 * (e / 4) + 4 * j + e % 4;
    }

    /// <summary>dst[i] = src[order[i]].</summary>
    public static unsafe void PermuteByTable(float* src, float* dst, ReadOnlySpan<int> order)
    {
        for (int i = 0; i < order.Length; i++)
        {
            dst[i] = src[order[i]];
        }
    }

    /// <summary>The code at step position i when a step is two pairs (<see cref="ISimd{TVec}.Fp8Pair"/> at p and p + 2 · lanes).</summary>
    public static int TwoPairStepCode(int i, int pairCode, int lanes) => i / (2 * lanes) * (2 * lanes) + pairCode;

    /// <summary>
    /// GF(2) affine matrices (one qword: byte 7 - k selects the input bits of output bit k) taking an E4M3
    /// code s eeee mmm to the high byte (s 0000 eee: sign and top three exponent bits at bits 7, 2..0) and the
    /// low byte (e mmm 0000) of the float32's upper half that <see cref="Fp8Mask"/> describes.
    /// </summary>
    public const ulong Fp8HighByteMatrix = 0x1020400000000080UL;
    public const ulong Fp8LowByteMatrix = 0x0000000001020408UL;
}

internal unsafe struct Simd512 : ISimd<Vector512<float>>
{
    public static int Count => 16;
    public static bool WideRegisterFile => true;
    public static Vector512<float> Zero => Vector512<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Load(float* p) => Vector512.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector512<float> v, float* p) => v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Splat(float v) => Vector512.Create(v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Subtract(Vector512<float> a, Vector512<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Multiply(Vector512<float> a, Vector512<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Divide(Vector512<float> a, Vector512<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Min(Vector512<float> a, Vector512<float> b) => Vector512.Min(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Max(Vector512<float> a, Vector512<float> b) => Vector512.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Fma(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector512<float> v) => Vector512.Sum(v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Sum4(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d) =>
        Simd256.Sum4(a.GetLower() + a.GetUpper(), b.GetLower() + b.GetUpper(), c.GetLower() + c.GetUpper(), d.GetLower() + d.GetUpper());
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MaxAcross(Vector512<float> v) => Simd256.MaxAcross(Vector256.Max(v.GetLower(), v.GetUpper()));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Round(Vector512<float> v) => Vector512.Round(v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Pow2(Vector512<float> n) =>
        Vector512.ShiftLeft(Vector512.ConvertToInt32(n) + Vector512.Create(127), 23).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Fp8(byte* p)
    {
        var bits = Vector512.ShiftLeft(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)p)), 20) & Vector512.Create(SimdConstants.Fp8Mask);
        // NaN codes (exponent and mantissa all ones) would land on ±480 · 2^-120: all ones instead (a NaN).
        var nan = Vector512.Equals(bits | Vector512.Create(SimdConstants.SignBit), Vector512.Create(SimdConstants.Fp8NaNBits));
        return (bits | nan).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Fp8Pair(byte* p, out Vector512<float> low, out Vector512<float> high)
    {
        var words = Vector512.ShiftLeft(Avx512BW.ConvertToVector512Int16(Vector256.Load((sbyte*)p)), 4) & Vector512.Create(SimdConstants.Fp8WordMask);
        low = Avx512BW.UnpackLow(Vector512<short>.Zero, words).AsSingle();
        high = Avx512BW.UnpackHigh(Vector512<short>.Zero, words).AsSingle();
    }

    public static int Fp8PairCode(int i) => SimdConstants.UnpackedCode(i, 16);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Fp8StepConstants(out Vector512<float> first, out Vector512<float> second)
    {
        first = Vector512.Create(SimdConstants.Fp8HighByteMatrix).AsSingle();
        second = Vector512.Create(SimdConstants.Fp8LowByteMatrix).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Fp8Step(byte* p, Vector512<float> first, Vector512<float> second, out Vector512<float> v0, out Vector512<float> v1, out Vector512<float> v2, out Vector512<float> v3)
    {
        if (Gfni.V512.IsSupported)
        {
            var codes = Vector512.Load(p);
            var high = Gfni.V512.GaloisFieldAffineTransform(codes, first.AsByte(), 0);
            var low = Gfni.V512.GaloisFieldAffineTransform(codes, second.AsByte(), 0);
            var lowWords = Avx512BW.UnpackLow(low, high).AsInt16();
            var highWords = Avx512BW.UnpackHigh(low, high).AsInt16();
            v0 = Avx512BW.UnpackLow(Vector512<short>.Zero, lowWords).AsSingle();
            v1 = Avx512BW.UnpackHigh(Vector512<short>.Zero, lowWords).AsSingle();
            v2 = Avx512BW.UnpackLow(Vector512<short>.Zero, highWords).AsSingle();
            v3 = Avx512BW.UnpackHigh(Vector512<short>.Zero, highWords).AsSingle();
            return;
        }
        Fp8Pair(p, out v0, out v1);
        Fp8Pair(p + 32, out v2, out v3);
    }

    public static bool Fp8StepIsTwoPairs => !Gfni.V512.IsSupported;

    public static int Fp8StepCode(int i) => Gfni.V512.IsSupported ? SimdConstants.GfniStepCode(i, 16) : SimdConstants.TwoPairStepCode(i, Fp8PairCode(i % 32), 16);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Fp8StepPermute(float* src, float* dst, ReadOnlySpan<int> order)
    {
        if (!Gfni.V512.IsSupported)
        {
            SimdConstants.PermuteByTable(src, dst, order);
            return;
        }
        // v_j = the j-th 4-float block of each of the four source vectors.
        var s0 = Vector512.Load(src);
        var s1 = Vector512.Load(src + 16);
        var s2 = Vector512.Load(src + 32);
        var s3 = Vector512.Load(src + 48);
        var t0 = Avx512F.Shuffle4x128(s0, s1, 0x44); // s0.b0 s0.b1 s1.b0 s1.b1
        var t1 = Avx512F.Shuffle4x128(s0, s1, 0xEE); // s0.b2 s0.b3 s1.b2 s1.b3
        var t2 = Avx512F.Shuffle4x128(s2, s3, 0x44);
        var t3 = Avx512F.Shuffle4x128(s2, s3, 0xEE);
        Avx512F.Shuffle4x128(t0, t2, 0x88).Store(dst);      // s0.b0 s1.b0 s2.b0 s3.b0
        Avx512F.Shuffle4x128(t0, t2, 0xDD).Store(dst + 16); // s0.b1 s1.b1 s2.b1 s3.b1
        Avx512F.Shuffle4x128(t1, t3, 0x88).Store(dst + 32);
        Avx512F.Shuffle4x128(t1, t3, 0xDD).Store(dst + 48);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Fp8Finite(byte* p) =>
        (Vector512.ShiftLeft(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)p)), 20) & Vector512.Create(SimdConstants.Fp8Mask)).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Fp8NaNScan(byte* p, Vector512<float> seen) =>
        Vector512.Max(seen.AsByte(), Vector512.Load(p) | Vector512.Create((byte)0x80)).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Fp8SawNaN(Vector512<float> seen) => Vector512.EqualsAny(seen.AsByte(), Vector512<byte>.AllBitsSet);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Bf16(ushort* p) => Vector512.ShiftLeft(Avx512F.ConvertToVector512Int32(Vector256.Load(p)), 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Q8(sbyte* p) => Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(p)));

    /// <summary>The table of <see cref="Q4"/>: lane q holds q - 8.</summary>
    public static Vector512<float> Q4Table => Vector512.Create(-8f, -7f, -6f, -5f, -4f, -3f, -2f, -1f, 0f, 1f, 2f, 3f, 4f, 5f, 6f, 7f);

    /// <summary>vpermps picks lane (index &amp; 15) of a table holding -8..7: the low nibble needs no mask and neither a conversion.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Q4(byte* p, out Vector512<float> low, out Vector512<float> high)
    {
        var codes = Avx512F.ConvertToVector512Int32(Vector128.Load(p));
        var table = Q4Table;
        low = Avx512F.PermuteVar16x32(table, codes);
        high = Avx512F.PermuteVar16x32(table, Vector512.ShiftRightLogical(codes, 4));
    }
}

internal unsafe struct Simd256 : ISimd<Vector256<float>>, IInt8Dot<Vector256<float>, Vector256<sbyte>>
{
    public static int Count => 8;
    public static bool WideRegisterFile => false;
    public static Vector256<float> Zero => Vector256<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Load(float* p) => Vector256.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector256<float> v, float* p) => v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Splat(float v) => Vector256.Create(v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Subtract(Vector256<float> a, Vector256<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Multiply(Vector256<float> a, Vector256<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Divide(Vector256<float> a, Vector256<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Min(Vector256<float> a, Vector256<float> b) => Vector256.Min(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Max(Vector256<float> a, Vector256<float> b) => Vector256.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Fma(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector256<float> v) => Vector256.Sum(v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Sum4(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d) =>
        Simd128.Sum4(a.GetLower() + a.GetUpper(), b.GetLower() + b.GetUpper(), c.GetLower() + c.GetUpper(), d.GetLower() + d.GetUpper());
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MaxAcross(Vector256<float> v) => Simd128.MaxAcross(Vector128.Max(v.GetLower(), v.GetUpper()));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Round(Vector256<float> v) => Vector256.Round(v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Pow2(Vector256<float> n) =>
        Vector256.ShiftLeft(Vector256.ConvertToInt32(n) + Vector256.Create(127), 23).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Fp8(byte* p)
    {
        var bits = Vector256.ShiftLeft(Avx2.ConvertToVector256Int32((sbyte*)p), 20) & Vector256.Create(SimdConstants.Fp8Mask);
        var nan = Vector256.Equals(bits | Vector256.Create(SimdConstants.SignBit), Vector256.Create(SimdConstants.Fp8NaNBits));
        return (bits | nan).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Fp8Pair(byte* p, out Vector256<float> low, out Vector256<float> high)
    {
        var words = Vector256.ShiftLeft(Avx2.ConvertToVector256Int16((sbyte*)p), 4) & Vector256.Create(SimdConstants.Fp8WordMask);
        low = Avx2.UnpackLow(Vector256<short>.Zero, words).AsSingle();
        high = Avx2.UnpackHigh(Vector256<short>.Zero, words).AsSingle();
    }

    public static int Fp8PairCode(int i) => SimdConstants.UnpackedCode(i, 8);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Fp8StepConstants(out Vector256<float> first, out Vector256<float> second)
    {
        first = Vector256.Create(SimdConstants.Fp8HighByteMatrix).AsSingle();
        second = Vector256.Create(SimdConstants.Fp8LowByteMatrix).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Fp8Step(byte* p, Vector256<float> first, Vector256<float> second, out Vector256<float> v0, out Vector256<float> v1, out Vector256<float> v2, out Vector256<float> v3)
    {
        if (Gfni.V256.IsSupported)
        {
            var codes = Vector256.Load(p);
            // With AVX-512's 32 registers the kernel's copies stay in registers. With AVX2's 16 they spilled (the
            // one-token kernel lost 5-10% in L2), so there a constant here stays a memory operand of the VEX instruction.
            var highMatrix = Avx512F.VL.IsSupported ? first.AsByte() : Vector256.Create(SimdConstants.Fp8HighByteMatrix).AsByte();
            var lowMatrix = Avx512F.VL.IsSupported ? second.AsByte() : Vector256.Create(SimdConstants.Fp8LowByteMatrix).AsByte();
            var high = Gfni.V256.GaloisFieldAffineTransform(codes, highMatrix, 0);
            var low = Gfni.V256.GaloisFieldAffineTransform(codes, lowMatrix, 0);
            var lowWords = Avx2.UnpackLow(low, high).AsInt16();
            var highWords = Avx2.UnpackHigh(low, high).AsInt16();
            v0 = Avx2.UnpackLow(Vector256<short>.Zero, lowWords).AsSingle();
            v1 = Avx2.UnpackHigh(Vector256<short>.Zero, lowWords).AsSingle();
            v2 = Avx2.UnpackLow(Vector256<short>.Zero, highWords).AsSingle();
            v3 = Avx2.UnpackHigh(Vector256<short>.Zero, highWords).AsSingle();
            return;
        }
        Fp8Pair(p, out v0, out v1);
        Fp8Pair(p + 16, out v2, out v3);
    }

    public static bool Fp8StepIsTwoPairs => !Gfni.V256.IsSupported;

    public static int Fp8StepCode(int i) => Gfni.V256.IsSupported ? SimdConstants.GfniStepCode(i, 8) : SimdConstants.TwoPairStepCode(i, Fp8PairCode(i % 16), 8);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Fp8StepPermute(float* src, float* dst, ReadOnlySpan<int> order)
    {
        if (!Gfni.V256.IsSupported)
        {
            SimdConstants.PermuteByTable(src, dst, order);
            return;
        }
        // v_j = [4-float block j of src 0..15, the same block of src 16..31].
        var s0 = Vector256.Load(src);
        var s1 = Vector256.Load(src + 8);
        var s2 = Vector256.Load(src + 16);
        var s3 = Vector256.Load(src + 24);
        Avx.Permute2x128(s0, s2, 0x20).Store(dst);
        Avx.Permute2x128(s0, s2, 0x31).Store(dst + 8);
        Avx.Permute2x128(s1, s3, 0x20).Store(dst + 16);
        Avx.Permute2x128(s1, s3, 0x31).Store(dst + 24);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Fp8Finite(byte* p) =>
        (Vector256.ShiftLeft(Avx2.ConvertToVector256Int32((sbyte*)p), 20) & Vector256.Create(SimdConstants.Fp8Mask)).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Fp8NaNScan(byte* p, Vector256<float> seen) =>
        Vector256.Max(seen.AsByte(), Vector256.Load(p) | Vector256.Create((byte)0x80)).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Fp8SawNaN(Vector256<float> seen) => Vector256.EqualsAny(seen.AsByte(), Vector256<byte>.AllBitsSet);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Bf16(ushort* p) => Vector256.ShiftLeft(Avx2.ConvertToVector256Int32(p), 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Q8(sbyte* p) => Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(p));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Q4(byte* p, out Vector256<float> low, out Vector256<float> high)
    {
        var codes = Avx2.ConvertToVector256Int32(p);
        var eight = Vector256.Create(8);
        low = Avx.ConvertToVector256Single((codes & Vector256.Create(15)) - eight);
        high = Avx.ConvertToVector256Single(Vector256.ShiftRightLogical(codes, 4) - eight);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<sbyte> LoadQ8(sbyte* p) => Vector256.Load(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<sbyte> LoadQ4(byte* p)
    {
        var packed = Vector128.Load(p);
        var nibble = Vector128.Create((byte)15);
        var codes = Vector256.Create(packed & nibble, Vector128.ShiftRightLogical(packed, 4) & nibble);
        return (codes - Vector256.Create((byte)8)).AsSByte();
    }

    /// <summary>vpmaddubsw needs an unsigned operand: |w| against x carrying w's sign (vpsignb), then pairs to int32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Dot(Vector256<sbyte> w, Vector256<sbyte> x)
    {
        var magnitude = Avx2.Abs(w);
        var signed = Avx2.Sign(x, w);
        Vector256<int> sums = AvxVnni.IsSupported
            ? AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, magnitude, signed)
            : Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(magnitude, signed), Vector256.Create((short)1));
        return Avx.ConvertToVector256Single(sums);
    }
}

internal unsafe struct Simd128 : ISimd<Vector128<float>>, IInt8Dot<Vector128<float>, Codes128>
{
    public static int Count => 4;
    /// <summary>NEON has 32 registers, SSE 16.</summary>
    public static bool WideRegisterFile => AdvSimd.Arm64.IsSupported;
    public static Vector128<float> Zero => Vector128<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Load(float* p) => Vector128.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector128<float> v, float* p) => v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Splat(float v) => Vector128.Create(v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Add(Vector128<float> a, Vector128<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Subtract(Vector128<float> a, Vector128<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Multiply(Vector128<float> a, Vector128<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Divide(Vector128<float> a, Vector128<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Min(Vector128<float> a, Vector128<float> b) => Vector128.Min(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Max(Vector128<float> a, Vector128<float> b) => Vector128.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Fma(Vector128<float> a, Vector128<float> b, Vector128<float> c) => Vector128.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector128<float> v) => Vector128.Sum(v);

    /// <summary>One 4x4 transpose-add: [a0+a2, b0+b2, a1+a3, b1+b3] and the same for c, d, then fold the halves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Sum4(Vector128<float> a, Vector128<float> b, Vector128<float> c, Vector128<float> d)
    {
        if (Sse.IsSupported)
        {
            Vector128<float> ab = Sse.UnpackLow(a, b) + Sse.UnpackHigh(a, b);
            Vector128<float> cd = Sse.UnpackLow(c, d) + Sse.UnpackHigh(c, d);
            return Sse.MoveLowToHigh(ab, cd) + Sse.MoveHighToLow(cd, ab);
        }
        if (AdvSimd.Arm64.IsSupported)
        {
            // faddp pairs: [a0+a1, a2+a3, b0+b1, b2+b3], then once more across the pairs.
            var ab = AdvSimd.Arm64.AddPairwise(a, b);
            var cd = AdvSimd.Arm64.AddPairwise(c, d);
            return AdvSimd.Arm64.AddPairwise(ab, cd);
        }
        return Vector128.Create(Vector128.Sum(a), Vector128.Sum(b), Vector128.Sum(c), Vector128.Sum(d));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float MaxAcross(Vector128<float> v) => MathF.Max(MathF.Max(v.GetElement(0), v.GetElement(1)), MathF.Max(v.GetElement(2), v.GetElement(3)));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Round(Vector128<float> v) => Vector128.Round(v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Pow2(Vector128<float> n) =>
        Vector128.ShiftLeft(Vector128.ConvertToInt32(n) + Vector128.Create(127), 23).AsSingle();

    /// <summary>4 bytes sign-extended to int32 (pmovsxbd on x86; two widenings elsewhere).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> WidenSBytes(sbyte* p)
    {
        if (Sse41.IsSupported)
        {
            return Sse41.ConvertToVector128Int32(p);
        }
        return Vector128.WidenLower(Vector128.WidenLower(Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<int>(p)).AsSByte()));
    }

    /// <summary>4 bytes zero-extended to int32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> WidenBytes(byte* p)
    {
        if (Sse41.IsSupported)
        {
            return Sse41.ConvertToVector128Int32(p);
        }
        return Vector128.WidenLower(Vector128.WidenLower(Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<int>(p)).AsByte())).AsInt32();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Fp8(byte* p)
    {
        var bits = Vector128.ShiftLeft(WidenSBytes((sbyte*)p), 20) & Vector128.Create(SimdConstants.Fp8Mask);
        var nan = Vector128.Equals(bits | Vector128.Create(SimdConstants.SignBit), Vector128.Create(SimdConstants.Fp8NaNBits));
        return (bits | nan).AsSingle();
    }

    /// <summary>SSE4.1: pmovsxbw, shift, mask, unpack (codes in order); elsewhere two widenings of 4 codes each.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Fp8Pair(byte* p, out Vector128<float> low, out Vector128<float> high)
    {
        if (Sse41.IsSupported)
        {
            var words = Vector128.ShiftLeft(Sse41.ConvertToVector128Int16((sbyte*)p), 4) & Vector128.Create(SimdConstants.Fp8WordMask);
            low = Sse2.UnpackLow(Vector128<short>.Zero, words).AsSingle();
            high = Sse2.UnpackHigh(Vector128<short>.Zero, words).AsSingle();
            return;
        }
        var mask = Vector128.Create(SimdConstants.Fp8Mask);
        low = (Vector128.ShiftLeft(WidenSBytes((sbyte*)p), 20) & mask).AsSingle();
        high = (Vector128.ShiftLeft(WidenSBytes((sbyte*)p + 4), 20) & mask).AsSingle();
    }

    public static int Fp8PairCode(int i) => i;

    public static bool Fp8StepIsTwoPairs => true;

    public static int Fp8StepCode(int i) => i;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Fp8StepConstants(out Vector128<float> first, out Vector128<float> second)
    {
        first = Vector128<float>.Zero;
        second = Vector128<float>.Zero;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Fp8Step(byte* p, Vector128<float> first, Vector128<float> second, out Vector128<float> v0, out Vector128<float> v1, out Vector128<float> v2, out Vector128<float> v3)
    {
        Fp8Pair(p, out v0, out v1);
        Fp8Pair(p + 8, out v2, out v3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Fp8StepPermute(float* src, float* dst, ReadOnlySpan<int> order) => SimdConstants.PermuteByTable(src, dst, order);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Fp8Finite(byte* p) =>
        (Vector128.ShiftLeft(WidenSBytes((sbyte*)p), 20) & Vector128.Create(SimdConstants.Fp8Mask)).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Fp8NaNScan(byte* p, Vector128<float> seen) =>
        Vector128.Max(seen.AsByte(), Vector128.Load(p) | Vector128.Create((byte)0x80)).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Fp8SawNaN(Vector128<float> seen) => Vector128.EqualsAny(seen.AsByte(), Vector128<byte>.AllBitsSet);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Bf16(ushort* p)
    {
        Vector128<int> wide = Sse41.IsSupported
            ? Sse41.ConvertToVector128Int32(p)
            : Vector128.WidenLower(Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<long>(p)).AsUInt16()).AsInt32();
        return Vector128.ShiftLeft(wide, 16).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Q8(sbyte* p) => Vector128.ConvertToSingle(WidenSBytes(p));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Q4(byte* p, out Vector128<float> low, out Vector128<float> high)
    {
        var codes = WidenBytes(p);
        var eight = Vector128.Create(8);
        low = Vector128.ConvertToSingle((codes & Vector128.Create(15)) - eight);
        high = Vector128.ConvertToSingle(Vector128.ShiftRightLogical(codes, 4) - eight);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Codes128 LoadQ8(sbyte* p) => new(Vector128.Load(p), Vector128.Load(p + 16));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Codes128 LoadQ4(byte* p)
    {
        var packed = Vector128.Load(p);
        var nibble = Vector128.Create((byte)15);
        var eight = Vector128.Create((byte)8);
        return new(((packed & nibble) - eight).AsSByte(), ((Vector128.ShiftRightLogical(packed, 4) & nibble) - eight).AsSByte());
    }

    /// <summary>SSSE3: |w| · (x with w's sign) by pmaddubsw, then pmaddwd; ARM64: sdot (or widening multiplies without it).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Dot(Codes128 w, Codes128 x)
    {
        Vector128<int> sums;
        if (Ssse3.IsSupported)
        {
            var ones = Vector128.Create((short)1);
            var lo = Sse2.MultiplyAddAdjacent(Ssse3.MultiplyAddAdjacent(Ssse3.Abs(w.Lo), Ssse3.Sign(x.Lo, w.Lo)), ones);
            var hi = Sse2.MultiplyAddAdjacent(Ssse3.MultiplyAddAdjacent(Ssse3.Abs(w.Hi), Ssse3.Sign(x.Hi, w.Hi)), ones);
            sums = lo + hi;
        }
        else if (Dp.IsSupported)
        {
            sums = Dp.DotProduct(Dp.DotProduct(Vector128<int>.Zero, w.Lo, x.Lo), w.Hi, x.Hi);
        }
        else
        {
            sums = WidenDot(w.Lo, x.Lo) + WidenDot(w.Hi, x.Hi);
        }
        return Vector128.ConvertToSingle(sums);
    }

    /// <summary>16 int8 products summed into 4 int32 lanes, portably (int16 products: |w · x| ≤ 128 · 127).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> WidenDot(Vector128<sbyte> w, Vector128<sbyte> x)
    {
        var lo = Vector128.WidenLower(w) * Vector128.WidenLower(x);
        var hi = Vector128.WidenUpper(w) * Vector128.WidenUpper(x);
        return Vector128.WidenLower(lo) + Vector128.WidenUpper(lo) + Vector128.WidenLower(hi) + Vector128.WidenUpper(hi);
    }
}
