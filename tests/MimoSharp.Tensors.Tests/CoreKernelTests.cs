using System.Buffers.Binary;
using MimoSharp.Tensors.Kernels;
using MimoSharp.Tensors.Quantization;
using MimoSharp.Tensors.Storage;
using MimoSharp.Tensors.Threading;

namespace MimoSharp.Tensors.Tests;

/// <summary>FP8 decoding against its formula, and MatMul against a float64 naive twin.</summary>
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
            // 1: decode; 2..8: the multi-token kernels (every remainder after the 4-token tiles: 4 + 1,
            // 4 + 2, 4 + 3); 13, 71: the generic route (71 at 1024 columns: two whole token blocks and a ragged one).
            foreach (int n in new[] { 1, 2, 3, 4, 5, 6, 7, 8, 13, 71 })
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
        using var pool = new WorkerPool(3);
        foreach (KernelIsa isa in KernelIsas.Supported)
        {
            foreach ((int rows, int cols, int block) in Shapes)
            {
                WeightMatrix w = RandomMatrix(dtype, rows, cols, block, random);
                float[] x = Enumerable.Range(0, n * cols).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
                var y = new float[n * rows];
                // Exact activations: the float dot product of the dequantized weights (Q8_0 / Q4_0 too).
                MatMul.Multiply(w, x, y, n, pool, KernelMode.Exact(isa));
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

    [Fact]
    public void PackedFp8TokensMatchTheTwinAcrossBlockRowsLargeActivationsAndNonFiniteOnes()
    {
        // The packed multi-token FP8 kernel folds a block row's scales into the tokens where a row group lies in
        // one block row and that cannot overflow; else it scales the weights. Block rows of 6 put some row groups
        // across two block rows; activations near 1e8 against scales of 1..4 (|x · 2^100 · s| > 2^127, while x · 2^100,
        // the kernels' prescaled x, stays finite) must take the other route and stay finite; an infinite activation
        // gives what the twin gives (±inf or NaN).
        var random = new Random(11);
        const int rows = 30, cols = 192;
        var codes = new NativeBuffer(rows * cols);
        for (int i = 0; i < rows * cols; i++)
        {
            byte b = (byte)random.Next(256);
            codes.AsSpan()[i] = (b & 0x7F) == 0x7F ? (byte)0x3F : b;
        }
        int scaleRows = (rows + 5) / 6, scaleCols = cols / 64;
        float[] scales = Enumerable.Range(0, scaleRows * scaleCols).Select(_ => (float)(0.001 + random.NextDouble() * 0.01)).ToArray();
        float[] largeScales = scales.Select(v => v * 400).ToArray();
        WeightMatrix w = WeightMatrix.Fp8(codes, 0, rows, cols, scales, 6, 64);
        WeightMatrix large = WeightMatrix.Fp8(codes, 0, rows, cols, largeScales, 6, 64);
        using var pool = new WorkerPool(2);
        foreach (KernelIsa isa in KernelIsas.Supported)
        {
            foreach (int n in new[] { 2, 3, 5, 8 })
            {
                foreach ((WeightMatrix m, double magnitude) in new[] { (w, 1.0), (large, 1e8) })
                {
                    float[] x = Enumerable.Range(0, n * cols).Select(_ => (float)((random.NextDouble() * 4 - 2) * magnitude)).ToArray();
                    var y = new float[n * rows];
                    MatMul.Multiply(m, x, y, n, pool, new KernelMode(isa));
                    (double[] expected, double[] absSum) = NaiveMatMul(m, x, n);
                    for (int i = 0; i < y.Length; i++)
                    {
                        Assert.True(float.IsFinite(y[i]) && Math.Abs(expected[i] - y[i]) <= 2e-6 * absSum[i] + 1e-12,
                            $"{isa} n {n} x ~{magnitude} at {i}: expected {expected[i]}, got {y[i]}");
                    }
                }
                float[] withInfinity = Enumerable.Range(0, n * cols).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
                withInfinity[cols + 7] = float.PositiveInfinity; // token 1, column 7
                var yInf = new float[n * rows];
                MatMul.Multiply(w, withInfinity, yInf, n, pool, new KernelMode(isa));
                for (int r = 0; r < rows; r++)
                {
                    double weight = Formula(w.RowBytes(r)[7]) * w.Scales[(r / 6) * scaleCols];
                    float actual = yInf[rows + r];
                    Assert.True(weight == 0 ? float.IsNaN(actual) : actual == (weight > 0 ? float.PositiveInfinity : float.NegativeInfinity),
                        $"{isa} n {n} row {r}: weight {weight} times +inf gave {actual}");
                    Assert.True(float.IsFinite(yInf[r]), $"{isa} n {n} token 0 row {r}: {yInf[r]}");
                }
            }
        }
    }

    [Fact]
    public void Fp8ProductsOfActivationsBeyondThePrescaleRangeMatchTheTwinOnEveryPath()
    {
        // The one-token and multi-token FP8 kernels prescale x by 2^100, which overflows from |x| = 2^28 on (a silent NaN
        // before): such x takes a smaller prescale and y the difference. From 2^27 (the switch) to 1e30, every route.
        var random = new Random(29);
        using var pool = new WorkerPool(2);
        foreach (KernelIsa isa in KernelIsas.Supported)
        {
            foreach ((int rows, int cols, int block) in new[] { (8, 1024, 128), (37, 256, 128), (22, 192, 64), (6, 161, 32) })
            {
                WeightMatrix w = RandomMatrix(DType.F8E4M3, rows, cols, block, random);
                foreach (int n in new[] { 1, 2, 3, 5, 8, 13 })
                {
                    foreach (double magnitude in new[] { 134217728.0, 3e8, 1e20, 1e30 })
                    {
                        float[] x = Enumerable.Range(0, n * cols).Select(_ => (float)((random.NextDouble() * 2 - 1) * magnitude)).ToArray();
                        x[random.Next(x.Length)] = (float)magnitude; // the largest |x| at least the magnitude itself
                        var y = new float[n * rows];
                        MatMul.Multiply(w, x, y, n, pool, new KernelMode(isa));
                        (double[] expected, double[] absSum) = NaiveMatMul(w, x, n);
                        for (int i = 0; i < y.Length; i++)
                        {
                            Assert.True(float.IsFinite(y[i]) && Math.Abs(expected[i] - y[i]) <= 2e-6 * absSum[i] + 1e-12,
                                $"{isa} [{rows}x{cols}] n {n} x ~{magnitude} at {i}: expected {expected[i]}, got {y[i]}");
                        }
                    }
                }
            }
        }
    }

    [Fact]
    public void Fp8ProductsWithSubnormalsSeparatedMatchTheTwinOfTheOriginalCodesOnEveryPath()
    {
        // Subnormal E4M3 codes decode to float32 denormals, which cost a microcode assist per multiply-add; the loader
        // moves them out of the codes (Fp8Subnormals). The products and dequantized rows must not change: the twin reads
        // an untouched copy of the codes. Random codes hold every value, about 5% of them subnormal.
        var random = new Random(31);
        using var pool = new WorkerPool(2);
        foreach ((int rows, int cols, int block) in new[] { (8, 1024, 128), (37, 256, 128), (22, 192, 64), (6, 161, 32), (3, 7, 32), (70, 129, 128) })
        {
            WeightMatrix original = RandomMatrix(DType.F8E4M3, rows, cols, block, random);
            var copy = new NativeBuffer((long)rows * cols);
            for (int r = 0; r < rows; r++)
            {
                original.RowBytes(r).CopyTo(copy.AsSpan().Slice(r * cols, cols));
            }
            WeightMatrix separated = WeightMatrix.Fp8(copy, 0, rows, cols, original.Scales.ToArray(), block, block);
            int subnormal = Enumerable.Range(0, rows).Sum(r => original.RowBytes(r).ToArray().Count(Fp8Subnormals.IsSubnormal));
            Assert.True(subnormal > 0, $"[{rows}x{cols}]: the random codes hold no subnormal");
            separated.SeparateSubnormals();
            Assert.Equal(subnormal, separated.Subnormals?.Count ?? 0);
            for (int r = 0; r < rows; r++)
            {
                ReadOnlySpan<byte> before = original.RowBytes(r), after = separated.RowBytes(r);
                for (int c = 0; c < cols; c++)
                {
                    Assert.Equal(Fp8Subnormals.IsSubnormal(before[c]) ? (byte)0 : before[c], after[c]);
                }
            }
            // A second matrix over the same bytes (a tied weight) gets the same entries, though its codes now read zero.
            WeightMatrix tied = WeightMatrix.Fp8(copy, 0, rows, cols, original.Scales.ToArray(), block, block);
            tied.SeparateSubnormals();
            Assert.Same(separated.Subnormals, tied.Subnormals);
            foreach (KernelIsa isa in KernelIsas.Supported)
            {
                var expectedRow = new float[cols];
                var actualRow = new float[cols];
                for (int r = 0; r < rows; r++)
                {
                    original.DequantizeRow(r, expectedRow, isa);
                    separated.DequantizeRow(r, actualRow, isa);
                    Assert.True(expectedRow.AsSpan().SequenceEqual(actualRow), $"{isa} [{rows}x{cols}] row {r}: the dequantized row changed");
                }
                foreach (int n in new[] { 1, 2, 3, 4, 5, 8, 9, 13 })
                {
                    float[] x = Enumerable.Range(0, n * cols).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
                    var y = new float[n * rows];
                    MatMul.Multiply(separated, x, y, n, pool, new KernelMode(isa));
                    (double[] expected, double[] absSum) = NaiveMatMul(original, x, n);
                    for (int i = 0; i < y.Length; i++)
                    {
                        Assert.True(Math.Abs(expected[i] - y[i]) <= 2e-6 * absSum[i] + 1e-12,
                            $"{isa} [{rows}x{cols}] n {n} at {i}: expected {expected[i]}, got {y[i]}");
                    }
                }
            }
        }
    }

    [Fact]
    public void SeparatingSubnormalsLeavesReadOnlyStorageAndOtherFormatsAlone()
    {
        var random = new Random(37);
        WeightMatrix bf16 = RandomMatrix(DType.BF16, 4, 64, 32, random);
        byte[] before = bf16.RowBytes(0).ToArray();
        bf16.SeparateSubnormals();
        Assert.Null(bf16.Subnormals);
        Assert.Equal(before, bf16.RowBytes(0).ToArray());
        string path = Path.Combine(Path.GetTempPath(), $"mimo-subnormal-{Guid.NewGuid():N}.bin");
        try
        {
            File.WriteAllBytes(path, [0x01, 0x02, 0x87, 0x40, 0x05, 0x06, 0x07, 0x08]); // 0x01, 0x02, 0x87, 0x05.. are subnormal
            using var mapped = new MappedFile(path);
            WeightMatrix w = WeightMatrix.Fp8(mapped, 0, 2, 4, [1f], 128, 128);
            w.SeparateSubnormals();
            Assert.Null(w.Subnormals);
            Assert.Equal(0x01, w.RowBytes(0)[0]);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static readonly (int Rows, int Cols, int Block)[] Shapes =
        [(1, 1, 32), (3, 7, 32), (5, 16, 16), (17, 33, 32), (64, 100, 96), (70, 129, 128), (9, 257, 128), (33, 64, 32), (8, 1024, 128), (6, 161, 32), (4, 31, 32), (13, 95, 32), (37, 256, 128), (22, 192, 64)];

    /// <summary>
    /// The int8 activation codes and scales of one token, computed here as the kernel's contract says
    /// (per group of 32: d = max|x| / 127 in float, q = round-to-even(x · (1/d)), 0 for an all-zero group).
    /// </summary>
    private static (int[] Codes, float[] Scales) QuantizeLikeTheContract(ReadOnlySpan<float> x)
    {
        int groups = (x.Length + 31) / 32;
        var codes = new int[x.Length];
        var scales = new float[groups];
        for (int g = 0; g < groups; g++)
        {
            int start = g * 32, end = Math.Min(start + 32, x.Length);
            float max = 0;
            for (int c = start; c < end; c++)
            {
                max = Math.Max(max, Math.Abs(x[c]));
            }
            float d = max / 127f;
            float inverse = d == 0 ? 0 : 1f / d;
            for (int c = start; c < end; c++)
            {
                codes[c] = (int)MathF.Round(x[c] * inverse, MidpointRounding.ToEven);
                Assert.InRange(codes[c], -127, 127);
            }
            scales[g] = d;
        }
        return (codes, scales);
    }

    [Theory]
    [InlineData("I8", 1)]
    [InlineData("I8", 3)]
    [InlineData("Q4", 1)]
    [InlineData("Q4", 8)]
    public void QuantizedActivationRouteMatchesItsIntegerTwinAndStaysWithinTheQuantizationBound(string dtypeName, int n)
    {
        DType dtype = Enum.Parse<DType>(dtypeName);
        var random = new Random(dtypeName.Length * 7 + n);
        using var pool = new WorkerPool(2);
        foreach (KernelIsa isa in KernelIsas.Supported)
        {
            foreach ((int rows, int cols, _) in Shapes)
            {
                WeightMatrix w = RandomMatrix(dtype, rows, cols, 32, random);
                float[] x = Enumerable.Range(0, n * cols).Select(_ => (float)(random.NextDouble() * 4 - 2) * (random.Next(4) == 0 ? 0.01f : 1f)).ToArray();
                var fast = new float[n * rows];
                var exact = new float[n * rows];
                MatMul.Multiply(w, x, fast, n, pool, new KernelMode(isa));
                MatMul.Multiply(w, x, exact, n, pool, KernelMode.Exact(isa));
                for (int t = 0; t < n; t++)
                {
                    (int[] codes, float[] xScales) = QuantizeLikeTheContract(x.AsSpan(t * cols, cols));
                    for (int r = 0; r < rows; r++)
                    {
                        double twin = 0, magnitude = 0, bound = 0;
                        var weights = new double[cols];
                        for (int g = 0; g < w.ScaleCols; g++)
                        {
                            long dot = 0;
                            for (int c = g * 32; c < Math.Min(cols, g * 32 + 32); c++)
                            {
                                int code = dtype == DType.I8 ? (sbyte)w.RowBytes(r)[c] : Q4Code(w.RowBytes(r), c);
                                dot += code * codes[c];
                                double weight = code * (double)w.Scales[r * w.ScaleCols + g];
                                // Rounding x to its code moves it by at most d/2.
                                bound += Math.Abs(weight) * xScales[g] / 2;
                                magnitude += Math.Abs((double)code * codes[c]) * Math.Abs(w.Scales[r * w.ScaleCols + g] * xScales[g]);
                            }
                            twin += dot * (double)(w.Scales[r * w.ScaleCols + g] * xScales[g]);
                        }
                        int i = t * rows + r;
                        Assert.True(Math.Abs(twin - fast[i]) <= 2e-6 * magnitude + 1e-12,
                            $"{dtype} {isa} [{rows}x{cols}] n {n} token {t} row {r}: integer twin {twin}, kernel {fast[i]}");
                        Assert.True(Math.Abs(exact[i] - fast[i]) <= bound * 1.0001 + 2e-6 * magnitude + 1e-9,
                            $"{dtype} {isa} [{rows}x{cols}] row {r}: exact {exact[i]}, quantized {fast[i]}, bound {bound}");
                    }
                }
            }
        }
    }

    private static int Q4Code(ReadOnlySpan<byte> row, int c) =>
        ((c % 32) < 16 ? row[(c / 32) * 16 + c % 32] & 15 : row[(c / 32) * 16 + c % 32 - 16] >> 4) - 8;

    [Fact]
    public void EveryFp8CodeDecodesByTheFormulaOnEveryPathNaNIncluded()
    {
        // Row r holds code r in every column; x = 1, so y[r] = cols · decode(r) · scale. 165 columns: a
        // 128-column block (whole four-vector steps of every width: the decode kernels' NaN scan) and a
        // 37-column one (whole vectors and a ragged tail); 3, 6, 8 and 9 tokens: the batch paths too (the 3-,
        // 4-, 2- and 8-token kernels, the generic route).
        const int cols = 165;
        const float scale = 0.5f;
        var codes = new NativeBuffer(256 * cols);
        for (int r = 0; r < 256; r++)
        {
            codes.AsSpan().Slice(r * cols, cols).Fill((byte)r);
        }
        WeightMatrix w = WeightMatrix.Fp8(codes, 0, 256, cols, [scale, scale, scale, scale], 128, 128);
        using var pool = new WorkerPool(2);
        foreach (KernelIsa isa in KernelIsas.Supported)
        {
            var row = new float[cols];
            foreach (int n in new[] { 1, 3, 6, 8, 9 })
            {
                float[] x = Enumerable.Repeat(1f, n * cols).ToArray();
                var y = new float[n * 256];
                MatMul.Multiply(w, x, y, n, pool, new KernelMode(isa));
                for (int t = 0; t < n; t++)
                {
                    for (int code = 0; code < 256; code++)
                    {
                        double expected = Formula(code) * scale * cols;
                        float actual = y[t * 256 + code];
                        Assert.True(double.IsNaN(expected) ? float.IsNaN(actual) : Math.Abs(expected - actual) <= 1e-6 * Math.Abs(expected),
                            $"{isa} n {n}: code 0x{code:X2} gives {actual}, expected {expected}");
                    }
                }
            }
            for (int code = 0; code < 256; code++)
            {
                w.DequantizeRow(code, row, isa);
                double expected = Formula(code) * scale;
                Assert.All(row, v => Assert.True(double.IsNaN(expected) ? float.IsNaN(v) : v == expected, $"{isa} dequantize 0x{code:X2}: {v}, expected {expected}"));
            }
        }
    }

    [Fact]
    public void OneNaNCodeAnywhereInARowMakesThatRowNaNAndNoOtherOnEveryPath()
    {
        // 32 rows of 1.0 (code 0x38) over 256 columns (two 128-column blocks); row 4k + 1 holds one NaN
        // code (0x7F or 0xFF) at a column that moves through both blocks, the other rows of its group of
        // four stay finite. y = Σ x, or NaN.
        const int rows = 32, cols = 256;
        int[] columns = [0, 7, 31, 63, 100, 127, 128, 200];
        var codes = new NativeBuffer(rows * cols);
        codes.AsSpan().Fill(0x38);
        for (int k = 0; k < columns.Length; k++)
        {
            codes.AsSpan()[(4 * k + 1) * cols + columns[k]] = k % 2 == 0 ? (byte)0x7F : (byte)0xFF;
        }
        WeightMatrix w = WeightMatrix.Fp8(codes, 0, rows, cols, [1f, 1f], 128, 128);
        using var pool = new WorkerPool(2);
        foreach (KernelIsa isa in KernelIsas.Supported)
        {
            foreach (int n in new[] { 1, 3, 6, 8, 9 })
            {
                float[] x = Enumerable.Range(0, n * cols).Select(i => 0.25f + (i % 7) * 0.125f).ToArray();
                var y = new float[n * rows];
                MatMul.Multiply(w, x, y, n, pool, new KernelMode(isa));
                for (int t = 0; t < n; t++)
                {
                    double sum = x.Skip(t * cols).Take(cols).Sum(v => (double)v);
                    for (int r = 0; r < rows; r++)
                    {
                        float actual = y[t * rows + r];
                        bool nan = r % 4 == 1 && r / 4 < columns.Length;
                        Assert.True(nan ? float.IsNaN(actual) : Math.Abs(actual - sum) <= 1e-5 * sum,
                            $"{isa} n {n} token {t} row {r}: {actual}, expected {(nan ? "NaN" : sum)}");
                    }
                }
            }
        }
    }

    [Theory]
    [InlineData(300)]
    [InlineData(256)] // whole 64-column steps: 8 tokens go through the packed kernel on Vector512
    public void AFp8MatrixIsScannedForNaNCodesUntilOneProductFindsNoneAndTheAnswerIsKept(int cols)
    {
        // A clean matrix: the first one-token product scans and records None; later products skip the
        // scan and give the same bits. A matrix with one NaN code records Some and keeps its NaN row.
        const int rows = 12;
        float[] blockScales = new[] { 0.5f, 0.25f, 0.125f }[..((cols + 127) / 128)];
        var random = new Random(5);
        var clean = new NativeBuffer(rows * cols);
        for (int i = 0; i < rows * cols; i++)
        {
            byte code = (byte)random.Next(256);
            clean.AsSpan()[i] = (code & 0x7F) == 0x7F ? (byte)0x3F : code;
        }
        var dirty = new NativeBuffer(rows * cols);
        clean.AsSpan().CopyTo(dirty.AsSpan());
        dirty.AsSpan()[5 * cols + 140] = 0x7F;
        using var pool = new WorkerPool(2);
        float[] x = Enumerable.Range(0, cols).Select(i => MathF.Sin(i) * 0.1f).ToArray();
        foreach (KernelIsa isa in KernelIsas.Supported)
        {
            WeightMatrix w = WeightMatrix.Fp8(clean, 0, rows, cols, blockScales, 128, 128);
            WeightMatrix bad = WeightMatrix.Fp8(dirty, 0, rows, cols, blockScales, 128, 128);
            Assert.Equal(Fp8NaNCodes.Unknown, w.NaNCodes);
            var first = new float[rows];
            var second = new float[rows];
            MatMul.Multiply(w, x, first, 1, pool, new KernelMode(isa));
            Assert.Equal(isa == KernelIsa.Scalar ? Fp8NaNCodes.Unknown : Fp8NaNCodes.None, w.NaNCodes);
            MatMul.Multiply(w, x, second, 1, pool, new KernelMode(isa));
            Assert.Equal(first, second);
            for (int pass = 0; pass < 2; pass++)
            {
                var y = new float[rows];
                MatMul.Multiply(bad, x, y, 1, pool, new KernelMode(isa));
                Assert.Equal(isa == KernelIsa.Scalar ? Fp8NaNCodes.Unknown : Fp8NaNCodes.Some, bad.NaNCodes);
                for (int r = 0; r < rows; r++)
                {
                    // Rows 4..7 were recomputed by the checked decode (another summation order).
                    Assert.True(r == 5 ? float.IsNaN(y[r]) : Math.Abs(y[r] - first[r]) <= 1e-5f * (1 + Math.Abs(first[r])),
                        $"{isa} pass {pass} row {r}: {y[r]}, clean {first[r]}");
                }
            }
            // A batch of tokens scans and records as well (a server may only ever run batches through a matrix).
            foreach (int n in new[] { 2, 3, 8 })
            {
                WeightMatrix batched = WeightMatrix.Fp8(clean, 0, rows, cols, blockScales, 128, 128);
                WeightMatrix batchedBad = WeightMatrix.Fp8(dirty, 0, rows, cols, blockScales, 128, 128);
                float[] xs = Enumerable.Range(0, n).SelectMany(_ => x).ToArray();
                var y = new float[n * rows];
                MatMul.Multiply(batched, xs, y, n, pool, new KernelMode(isa));
                Assert.Equal(isa == KernelIsa.Scalar ? Fp8NaNCodes.Unknown : Fp8NaNCodes.None, batched.NaNCodes);
                MatMul.Multiply(batchedBad, xs, y, n, pool, new KernelMode(isa));
                Assert.Equal(isa == KernelIsa.Scalar ? Fp8NaNCodes.Unknown : Fp8NaNCodes.Some, batchedBad.NaNCodes);
                for (int t = 0; t < n; t++)
                {
                    Assert.True(float.IsNaN(y[t * rows + 5]), $"{isa} n {n} token {t}: row 5 is {y[t * rows + 5]}, expected NaN");
                }
            }
        }
    }

    [Fact]
    public void APathWiderThanTheMachineIsRefusedByName()
    {
        Assert.Contains(KernelIsa.Scalar, KernelIsas.Supported);
        Assert.Equal(KernelIsas.Widest, KernelIsas.Supported[^1]);
        Assert.Equal(KernelIsas.Widest, KernelIsas.Resolve(KernelIsa.Auto));
        if (KernelIsas.Widest < KernelIsa.Vector512)
        {
            var ex = Assert.Throws<NotSupportedException>(() => MatMul.Multiply(WeightMatrix.FromFloats([1f], 1, 1), [1f], new float[1], 1, mode: new KernelMode(KernelIsa.Vector512)));
            Assert.Contains("Vector512", ex.Message);
            Assert.Contains(KernelIsas.Widest.ToString(), ex.Message);
        }
    }

    [Theory]
    [InlineData("F8E4M3")]
    [InlineData("I8")]
    [InlineData("Q4")]
    [InlineData("BF16")]
    public void VectorDequantizationIsBitExactWithTheScalarDecode(string dtypeName)
    {
        DType dtype = Enum.Parse<DType>(dtypeName);
        var random = new Random(17);
        foreach ((int rows, int cols, int block) in new[] { (3, 256, 128), (2, 100, 32), (5, 161, 64), (4, 16, 16) })
        {
            WeightMatrix w = RandomMatrix(dtype, rows, cols, block, random);
            var scalar = new float[cols];
            var vector = new float[cols];
            for (int r = 0; r < rows; r++)
            {
                w.DequantizeRow(r, scalar, KernelIsa.Scalar);
                foreach (KernelIsa isa in KernelIsas.Supported)
                {
                    w.DequantizeRow(r, vector, isa);
                    for (int c = 0; c < cols; c++)
                    {
                        Assert.True(BitConverter.SingleToInt32Bits(scalar[c]) == BitConverter.SingleToInt32Bits(vector[c]),
                            $"{dtype} {isa} [{rows}x{cols}] at [{r}, {c}]: scalar {scalar[c]}, vector {vector[c]}");
                    }
                }
            }
        }
    }
}
