using System.Buffers.Binary;
using MimoSharp.Tensors.Kernels;
using MimoSharp.Tensors.Quantization;
using MimoSharp.Tensors.Storage;
using MimoSharp.Tensors.Threading;

namespace MimoSharp.Tensors.Tests;

/// <summary>FP8 decoding against its formula, and MatMul against a float64 naive twin.</summary>
[Collection("MatMul ISA")]
public sealed class CoreKernelTests
{
    /// <summary>E4M3FN from its bit fields, written independently of the code under test.</summary>
    private static double Formula(int code)
    {
        int s = code >> 7, e = (code >> 3) & 15, m = code & 7;
        if (e == 15 && m == 7)
        {
            return double.NaN;
        }
        double magnitude = e == 0 ? Math.Pow(2, -6) * m / 8 : Math.Pow(2, e - 7) * (1 + m / 8.0);
        return s == 1 ? -magnitude : magnitude;
    }

    [Fact]
    public void All256Fp8CodesDecodeByTheFormula()
    {
        for (int code = 0; code < 256; code++)
        {
            double expected = Formula(code);
            float actual = Fp8E4M3.Decode((byte)code);
            if (double.IsNaN(expected))
            {
                Assert.True(float.IsNaN(actual), $"code 0x{code:X2} should be NaN");
            }
            else
            {
                Assert.True(expected == actual, $"code 0x{code:X2}: expected {expected}, got {actual}");
            }
        }
        Assert.Equal(448f, Fp8E4M3.Decode(0x7E));
        Assert.Equal(-448f, Fp8E4M3.Decode(0xFE));
        Assert.Equal(MathF.Pow(2, -9), Fp8E4M3.Decode(0x01));
    }

    [Fact]
    public void EncodeRoundTripsEveryFiniteCodeAndRoundsToNearest()
    {
        for (int code = 0; code < 256; code++)
        {
            if ((code & 0x7F) == 0x7F)
            {
                continue;
            }
            byte back = Fp8E4M3.Encode(Fp8E4M3.Decode((byte)code));
            Assert.True(Fp8E4M3.Decode(back) == Fp8E4M3.Decode((byte)code), $"code 0x{code:X2} came back as 0x{back:X2}");
        }
        var random = new Random(3);
        for (int i = 0; i < 20000; i++)
        {
            float x = (float)((random.NextDouble() * 2 - 1) * Math.Pow(2, random.Next(-12, 10)));
            float decoded = Fp8E4M3.Decode(Fp8E4M3.Encode(x));
            // No finite code is strictly closer (saturating at 448).
            double error = Math.Abs(decoded - Math.Clamp(x, -448f, 448f));
            for (int code = 0; code < 256; code++)
            {
                double value = Formula(code);
                if (!double.IsNaN(value))
                {
                    Assert.True(Math.Abs(value - Math.Clamp(x, -448f, 448f)) >= error, $"{x}: encoded to {decoded}, but {value} is closer");
                }
            }
        }
    }

    private static (double[] Y, double[] AbsSum) NaiveMatMul(WeightMatrix w, float[] x, int n)
    {
        var y = new double[n * w.Rows];
        var absSum = new double[n * w.Rows];
        for (int r = 0; r < w.Rows; r++)
        {
            ReadOnlySpan<byte> row = w.RowBytes(r);
            for (int t = 0; t < n; t++)
            {
                double sum = 0;
                for (int c = 0; c < w.Cols; c++)
                {
                    double value = w.DType switch
                    {
                        DType.F32 => BinaryPrimitives.ReadSingleLittleEndian(row[(4 * c)..]),
                        DType.BF16 => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(row[(2 * c)..]) << 16),
                        DType.F16 => (double)BinaryPrimitives.ReadHalfLittleEndian(row[(2 * c)..]),
                        // Q8_0: a signed byte per weight; Q4_0: group g's 16 bytes hold code j (low nibble) and j + 16 (high).
                        DType.I8 => (sbyte)row[c] * (double)w.Scales[r * w.ScaleCols + c / 32],
                        DType.Q4 => (((c % 32) < 16 ? row[(c / 32) * 16 + c % 32] & 15 : row[(c / 32) * 16 + c % 32 - 16] >> 4) - 8)
                            * (double)w.Scales[r * w.ScaleCols + c / 32],
                        _ => Formula(row[c]) * w.Scales[(r / w.BlockRows) * w.ScaleCols + c / w.BlockCols],
                    };
                    sum += value * x[t * w.Cols + c];
                    absSum[t * w.Rows + r] += Math.Abs(value * x[t * w.Cols + c]);
                }
                y[t * w.Rows + r] = sum;
            }
        }
        return (y, absSum);
    }

    private static WeightMatrix RandomMatrix(DType dtype, int rows, int cols, int block, Random random)
    {
        if (dtype is DType.I8 or DType.Q4)
        {
            // Arbitrary codes (every byte value, both nibbles) and scales, not only what the quantizer would produce.
            var codes = new NativeBuffer(rows * WeightMatrix.StrideOf(dtype, cols));
            random.NextBytes(codes.AsSpan());
            int groups = (cols + 31) / 32;
            float[] groupScales = Enumerable.Range(0, rows * groups).Select(_ => (float)((random.NextDouble() - 0.3) * 0.02)).ToArray();
            return dtype == DType.I8 ? WeightMatrix.Q8(codes, 0, rows, cols, groupScales) : WeightMatrix.Q4(codes, 0, rows, cols, groupScales);
        }
        int size = DTypes.SizeOf(dtype);
        var buffer = new NativeBuffer((long)rows * cols * size);
        Span<byte> bytes = buffer.AsSpan();
        for (int i = 0; i < rows * cols; i++)
        {
            float v = (float)(random.NextDouble() * 2 - 1);
            switch (dtype)
            {
                case DType.F32: BinaryPrimitives.WriteSingleLittleEndian(bytes[(4 * i)..], v); break;
                case DType.BF16: BinaryPrimitives.WriteUInt16LittleEndian(bytes[(2 * i)..], BFloat16.FromSingle(v)); break;
                case DType.F16: BinaryPrimitives.WriteHalfLittleEndian(bytes[(2 * i)..], (Half)v); break;
                default: bytes[i] = (byte)random.Next(256) is var b && (b & 0x7F) == 0x7F ? (byte)0x3F : (byte)b; break;
            }
        }
        if (dtype != DType.F8E4M3)
        {
            return WeightMatrix.Dense(buffer, 0, dtype, rows, cols);
        }
        int scaleRows = (rows + block - 1) / block, scaleCols = (cols + block - 1) / block;
        float[] scales = Enumerable.Range(0, scaleRows * scaleCols).Select(_ => (float)(0.001 + random.NextDouble() * 0.01)).ToArray();
        return WeightMatrix.Fp8(buffer, 0, rows, cols, scales, block, block);
    }

    public static TheoryData<string, int> Cases()
    {
        var data = new TheoryData<string, int>();
        foreach (DType d in new[] { DType.F8E4M3, DType.BF16, DType.F16, DType.F32, DType.I8, DType.Q4 })
        {
            foreach (int n in new[] { 1, 2, 5, 13 })
            {
                data.Add(d.ToString(), n);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatMulMatchesNaiveTwinOnRaggedShapes(string dtypeName, int n)
    {
        DType dtype = Enum.Parse<DType>(dtypeName);
        var random = new Random(dtypeName.Length * 31 + n);
        KernelIsa original = MatMul.Isa;
        using var pool = new WorkerPool(3);
        try
        {
            foreach (KernelIsa isa in Enum.GetValues<KernelIsa>().Where(i => i <= MatMul.DetectIsa()))
            {
                MatMul.Isa = isa;
                foreach ((int rows, int cols, int block) in new[] { (1, 1, 32), (3, 7, 32), (5, 16, 16), (17, 33, 32), (64, 100, 96), (70, 129, 128), (9, 257, 128), (33, 64, 32), (8, 1024, 128), (6, 161, 32) })
                {
                    WeightMatrix w = RandomMatrix(dtype, rows, cols, block, random);
                    float[] x = Enumerable.Range(0, n * cols).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
                    var y = new float[n * rows];
                    MatMul.Multiply(w, x, y, n, pool);
                    (double[] expected, double[] absSum) = NaiveMatMul(w, x, n);
                    for (int i = 0; i < y.Length; i++)
                    {
                        // float32 accumulation: error grows with the sum of |terms|, not with the result.
                        double bound = 2e-6 * absSum[i] + 1e-12;
                        Assert.True(Math.Abs(expected[i] - y[i]) <= bound,
                            $"{dtype} {isa} [{rows}x{cols}] block {block} n {n} at {i}: expected {expected[i]}, got {y[i]}");
                    }
                }
            }
        }
        finally
        {
            MatMul.Isa = original;
        }
    }

    [Theory]
    [InlineData("F8E4M3")]
    [InlineData("I8")]
    [InlineData("Q4")]
    public void VectorDequantizationIsBitExactWithTheScalarDecode(string dtypeName)
    {
        DType dtype = Enum.Parse<DType>(dtypeName);
        var random = new Random(17);
        KernelIsa original = MatMul.Isa;
        try
        {
            foreach ((int rows, int cols, int block) in new[] { (3, 256, 128), (2, 100, 32), (5, 161, 64), (4, 16, 16) })
            {
                WeightMatrix w = RandomMatrix(dtype, rows, cols, block, random);
                var scalar = new float[cols];
                var vector = new float[cols];
                for (int r = 0; r < rows; r++)
                {
                    MatMul.Isa = KernelIsa.Scalar;
                    w.DequantizeRow(r, scalar);
                    MatMul.Isa = MatMul.DetectIsa();
                    w.DequantizeRow(r, vector);
                    for (int c = 0; c < cols; c++)
                    {
                        Assert.True(BitConverter.SingleToInt32Bits(scalar[c]) == BitConverter.SingleToInt32Bits(vector[c]),
                            $"{dtype} [{rows}x{cols}] at [{r}, {c}]: scalar {scalar[c]}, vector {vector[c]}");
                    }
                }
            }
        }
        finally
        {
            MatMul.Isa = original;
        }
    }
}
