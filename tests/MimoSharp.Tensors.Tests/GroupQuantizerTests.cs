using MimoSharp.Tensors.Quantization;
using MimoSharp.Tensors.Storage;

namespace MimoSharp.Tensors.Tests;

/// <summary>Q8_0 / Q4_0 row quantizers: error bounds, exact extremes, padding, and the matrix view of their output.</summary>
public sealed class GroupQuantizerTests
{
    private static float[] RandomRow(int cols, Random random, double scale = 1) =>
        Enumerable.Range(0, cols).Select(_ => (float)((random.NextDouble() * 2 - 1) * scale * Math.Pow(2, random.Next(-3, 3)))).ToArray();

    [Theory]
    [InlineData(1)]
    [InlineData(31)]
    [InlineData(32)]
    [InlineData(33)]
    [InlineData(100)]
    [InlineData(1024)]
    public void Q8CodesReproduceEachWeightWithinHalfAStep(int cols)
    {
        var random = new Random(cols);
        float[] row = RandomRow(cols, random);
        int groups = GroupQuantizer.GroupsPerRow(cols);
        var codes = new sbyte[cols];
        var scales = new float[groups];
        GroupQuantizer.QuantizeQ8Row(row, codes, scales);
        for (int g = 0; g < groups; g++)
        {
            double amax = row.Skip(g * 32).Take(32).Max(v => Math.Abs((double)v));
            Assert.Equal(amax / 127, scales[g], 1e-6 * amax);
        }
        for (int c = 0; c < cols; c++)
        {
            double d = scales[c / 32];
            Assert.InRange(codes[c], -127, 127);
            Assert.True(Math.Abs(codes[c] * d - row[c]) <= d / 2 * (1 + 1e-5), $"column {c}: {row[c]} came back as {codes[c] * d}");
        }
        // The largest magnitude of each group is exactly ±127 steps.
        for (int g = 0; g < groups; g++)
        {
            int extreme = Enumerable.Range(g * 32, Math.Min(32, cols - g * 32)).MaxBy(c => Math.Abs(row[c]));
            Assert.Equal(127, Math.Abs((int)codes[extreme]));
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(16)]
    [InlineData(33)]
    [InlineData(100)]
    [InlineData(1024)]
    public void Q4CodesReproduceEachWeightWithinAStepAndPadWithZeroCodes(int cols)
    {
        var random = new Random(cols + 7);
        float[] row = RandomRow(cols, random);
        int groups = GroupQuantizer.GroupsPerRow(cols);
        var packed = new byte[groups * 16];
        var scales = new float[groups];
        GroupQuantizer.QuantizeQ4Row(row, packed, scales);
        for (int c = 0; c < groups * 32; c++)
        {
            int g = c / 32, j = c % 32;
            int code = j < 16 ? packed[g * 16 + j] & 15 : packed[g * 16 + j - 16] >> 4;
            if (c >= cols)
            {
                Assert.Equal(8, code); // padding decodes to 0
                continue;
            }
            double d = Math.Abs(scales[g]);
            double value = (code - 8) * (double)scales[g];
            // Half a step, except the far end (+8 steps does not exist): up to one step there.
            Assert.True(Math.Abs(value - row[c]) <= d * (1 + 1e-5), $"column {c}: {row[c]} came back as {value}");
        }
        for (int g = 0; g < groups; g++)
        {
            int extreme = Enumerable.Range(g * 32, Math.Min(32, cols - g * 32)).MaxBy(c => Math.Abs(row[c]));
            int j = extreme - g * 32;
            int code = j < 16 ? packed[g * 16 + j] & 15 : packed[g * 16 + j - 16] >> 4;
            Assert.Equal(0, code); // the extreme is exactly -8 steps of d = extreme / -8
            Assert.Equal(row[extreme], -8 * scales[g], 1e-6 * Math.Abs(row[extreme]));
        }
    }

    [Fact]
    public void AllZeroGroupsQuantizeToZero()
    {
        var row = new float[40];
        var codes = new sbyte[40];
        var scales = new float[2];
        GroupQuantizer.QuantizeQ8Row(row, codes, scales);
        Assert.All(codes, c => Assert.Equal(0, c));
        Assert.All(scales, s => Assert.Equal(0f, s));
        var packed = new byte[32];
        GroupQuantizer.QuantizeQ4Row(row, packed, scales);
        Assert.All(packed, b => Assert.Equal(0x88, b));
    }

    [Fact]
    public void NonFiniteWeightsAndShortBuffersAreRejected()
    {
        float[] row = [1, float.NaN, 2];
        var error = Assert.Throws<ArgumentException>(() => GroupQuantizer.QuantizeQ8Row(row, new sbyte[3], new float[1]));
        Assert.Contains("finite", error.Message);
        Assert.Throws<ArgumentException>(() => GroupQuantizer.QuantizeQ4Row([1, float.PositiveInfinity], new byte[16], new float[1]));
        error = Assert.Throws<ArgumentException>(() => GroupQuantizer.QuantizeQ4Row(new float[40], new byte[16], new float[2]));
        Assert.Contains("32 code bytes", error.Message);
    }

    [Fact]
    public void MatricesOfQuantizedRowsDequantizeToTheQuantizerOutput()
    {
        var random = new Random(5);
        const int rows = 3, cols = 70;
        float[] values = Enumerable.Range(0, rows).SelectMany(_ => RandomRow(cols, random)).ToArray();
        int groups = GroupQuantizer.GroupsPerRow(cols);
        var q8 = new NativeBuffer(rows * cols);
        var q4 = new NativeBuffer(rows * groups * 16);
        var s8 = new float[rows * groups];
        var s4 = new float[rows * groups];
        for (int r = 0; r < rows; r++)
        {
            GroupQuantizer.QuantizeQ8Row(values.AsSpan(r * cols, cols), System.Runtime.InteropServices.MemoryMarshal.Cast<byte, sbyte>(q8.AsSpan().Slice(r * cols, cols)), s8.AsSpan(r * groups, groups));
            GroupQuantizer.QuantizeQ4Row(values.AsSpan(r * cols, cols), q4.AsSpan().Slice(r * groups * 16, groups * 16), s4.AsSpan(r * groups, groups));
        }
        WeightMatrix m8 = WeightMatrix.Q8(q8, 0, rows, cols, s8), m4 = WeightMatrix.Q4(q4, 0, rows, cols, s4);
        Assert.Equal(rows * cols, m8.DataBytes);
        Assert.Equal(rows * groups * 16, m4.DataBytes);
        var row8 = new float[cols];
        var row4 = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            m8.DequantizeRow(r, row8);
            m4.DequantizeRow(r, row4);
            for (int c = 0; c < cols; c++)
            {
                float v = values[r * cols + c];
                Assert.True(Math.Abs(row8[c] - v) <= Math.Abs(s8[r * groups + c / 32]) * 0.5001, $"Q8 [{r}, {c}]");
                Assert.True(Math.Abs(row4[c] - v) <= Math.Abs(s4[r * groups + c / 32]) * 1.0001, $"Q4 [{r}, {c}]");
            }
        }
        Assert.Throws<ArgumentException>(() => WeightMatrix.Q8(q8, 0, rows, cols, new float[rows * groups - 1]));
    }
}

/// <summary>Files read into private memory hold exactly the file's bytes.</summary>
public sealed class LoadedFileTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(4096)]
    [InlineData((9 << 20) + 123)] // more than one 8 MiB read chunk, ragged
    public void ReadsTheWholeFile(int length)
    {
        string path = Path.Combine(Path.GetTempPath(), $"mimosharp-loaded-{Environment.ProcessId}-{length}.bin");
        var bytes = new byte[length];
        new Random(length).NextBytes(bytes);
        File.WriteAllBytes(path, bytes);
        try
        {
            using var pool = new Threading.WorkerPool(3);
            using var file = new LoadedFile(path, pool);
            Assert.Equal(length, file.Length);
            Assert.True(file.Slice(0, length).SequenceEqual(bytes));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void MissingFileIsNamed()
    {
        var ex = Assert.Throws<FileNotFoundException>(() => new LoadedFile("/nonexistent/weights.safetensors"));
        Assert.Contains("/nonexistent/weights.safetensors", ex.Message);
    }
}
