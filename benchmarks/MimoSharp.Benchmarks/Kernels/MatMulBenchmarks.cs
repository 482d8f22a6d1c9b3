using BenchmarkDotNet.Attributes;
using MimoSharp.Tensors;
using MimoSharp.Tensors.Kernels;
using MimoSharp.Tensors.Quantization;
using MimoSharp.Tensors.Storage;

namespace MimoSharp.Benchmarks.Kernels;

/// <summary>
/// Matrix-vector (decode) and matrix-matrix (prefill) products on a 4096 x 4096 weight in each stored
/// format. Bytes per call / time = achieved bandwidth; compare with the machine's read bandwidth.
/// </summary>
[MemoryDiagnoser]
public class MatMulBenchmarks
{
    private const int Size = 4096;
    private WeightMatrix _fp8 = null!;
    private WeightMatrix _bf16 = null!;
    private WeightMatrix _q8 = null!;
    private WeightMatrix _q4 = null!;
    private float[] _x = null!;
    private float[] _y = null!;

    [Params(1, 8)]
    public int Tokens { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(1);
        var fp8 = new NativeBuffer((long)Size * Size);
        Span<byte> codes = fp8.AsSpan();
        for (int i = 0; i < codes.Length; i++)
        {
            codes[i] = Fp8E4M3.Encode((float)(random.NextDouble() * 2 - 1) * 400);
        }
        _fp8 = WeightMatrix.Fp8(fp8, 0, Size, Size, Enumerable.Repeat(0.001f, (Size / 128) * (Size / 128)).ToArray(), 128, 128);
        var bf16 = new NativeBuffer((long)Size * Size * 2);
        Span<ushort> halves = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(bf16.AsSpan());
        for (int i = 0; i < halves.Length; i++)
        {
            halves[i] = BFloat16.FromSingle((float)(random.NextDouble() * 2 - 1));
        }
        _bf16 = WeightMatrix.Dense(bf16, 0, DType.BF16, Size, Size);
        var row = new float[Size];
        int groups = GroupQuantizer.GroupsPerRow(Size);
        var q8 = new NativeBuffer((long)Size * Size);
        var q4 = new NativeBuffer((long)Size * groups * 16);
        var s8 = new float[Size * groups];
        var s4 = new float[Size * groups];
        for (int r = 0; r < Size; r++)
        {
            for (int c = 0; c < Size; c++)
            {
                row[c] = (float)(random.NextDouble() * 2 - 1);
            }
            GroupQuantizer.QuantizeQ8Row(row, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, sbyte>(q8.AsSpan().Slice(r * Size, Size)), s8.AsSpan(r * groups, groups));
            GroupQuantizer.QuantizeQ4Row(row, q4.AsSpan().Slice(r * groups * 16, groups * 16), s4.AsSpan(r * groups, groups));
        }
        _q8 = WeightMatrix.Q8(q8, 0, Size, Size, s8);
        _q4 = WeightMatrix.Q4(q4, 0, Size, Size, s4);
        _x = Enumerable.Range(0, 8 * Size).Select(_ => (float)random.NextDouble()).ToArray();
        _y = new float[8 * Size];
    }

    [Benchmark]
    public void Fp8() => MatMul.Multiply(_fp8, _x, _y, Tokens);

    [Benchmark]
    public void Bf16() => MatMul.Multiply(_bf16, _x, _y, Tokens);

    [Benchmark]
    public void Q8() => MatMul.Multiply(_q8, _x, _y, Tokens);

    [Benchmark]
    public void Q4() => MatMul.Multiply(_q4, _x, _y, Tokens);
}
