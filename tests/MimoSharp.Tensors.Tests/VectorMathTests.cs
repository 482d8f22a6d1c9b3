using MimoSharp.Tensors.Kernels;

namespace MimoSharp.Tensors.Tests;

/// <summary>The element-wise kernels against float64 naive twins over many lengths, ragged included.</summary>
public sealed class VectorMathTests
{
    public static TheoryData<int> Lengths() => [1, 2, 7, 8, 15, 16, 17, 31, 33, 64, 100, 129, 1024, 4099];

    private static float[] Random(int n, int seed, double scale = 1) =>
        Enumerable.Range(0, n).Select(_ => (float)((new Random(seed++).NextDouble() * 2 - 1) * scale)).ToArray();

    private static void Close(double expected, float actual, double magnitude, string what) =>
        Assert.True(Math.Abs(expected - actual) <= 1e-5 * magnitude + 1e-7, $"{what}: expected {expected}, got {actual}");

    [Theory]
    [MemberData(nameof(Lengths))]
    public void DotAndMultiplyAddMatchTheTwin(int n)
    {
        float[] a = Random(n, n), b = Random(n, 2 * n + 1);
        double dot = 0, magnitude = 0;
        for (int i = 0; i < n; i++)
        {
            dot += (double)a[i] * b[i];
            magnitude += Math.Abs((double)a[i] * b[i]);
        }
        Close(dot, VectorMath.Dot(a, b), magnitude, $"dot {n}");

        float[] y = Random(n, 3 * n);
        double[] expected = y.Select((v, i) => v + 0.37 * a[i]).ToArray();
        VectorMath.MultiplyAdd(a, 0.37f, y);
        for (int i = 0; i < n; i++)
        {
            Close(expected[i], y[i], 1, $"axpy {n} at {i}");
        }
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void RmsNormAndTheFusedResidualVersionMatchTheTwin(int n)
    {
        float[] x = Random(n, n, 3), weight = Random(n, 5 * n), delta = Random(n, 7 * n, 2);
        const float eps = 1e-5f;

        double[] Norm(double[] v)
        {
            double mean = v.Sum(e => e * e) / n;
            double inv = 1 / Math.Sqrt(mean + eps);
            return v.Select((e, i) => weight[i] * e * inv).ToArray();
        }

        var y = new float[n];
        VectorMath.RmsNorm(x, weight, eps, y);
        double[] expected = Norm(x.Select(v => (double)v).ToArray());
        for (int i = 0; i < n; i++)
        {
            Close(expected[i], y[i], Math.Abs(expected[i]) + 1e-3, $"rmsnorm {n} at {i}");
        }

        double[] sum = x.Select((v, i) => (double)v + delta[i]).ToArray();
        double[] fused = Norm(sum);
        VectorMath.AddRmsNorm(delta, x, weight, eps, y);
        for (int i = 0; i < n; i++)
        {
            Close(sum[i], x[i], Math.Abs(sum[i]), $"residual {n} at {i}");
            Close(fused[i], y[i], Math.Abs(fused[i]) + 1e-3, $"add+rmsnorm {n} at {i}");
        }
        Assert.Throws<ArgumentException>(() => VectorMath.AddRmsNorm(delta, x, weight.AsSpan(1).ToArray(), eps, y));
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void SwiGluMatchesTheTwin(int n)
    {
        float[] gate = Random(n, n, 8), up = Random(n, 11 * n);
        double[] expected = gate.Select((z, i) => z / (1 + Math.Exp(-(double)z)) * up[i]).ToArray();
        VectorMath.SwiGlu(gate, up);
        for (int i = 0; i < n; i++)
        {
            Close(expected[i], gate[i], Math.Abs(expected[i]) + 1e-3, $"swiglu {n} at {i}");
        }
    }

    [Fact]
    public void ExpIsWithinTwoUlpOfTheTwinAcrossTheFloatRange()
    {
        var x = new List<float> { 0f, -0f, 1f, -1f, 0.5f, -87f, 88f, 88.37f, -20f, 1e-8f, -1e-8f };
        var random = new Random(9);
        for (int i = 0; i < 5000; i++)
        {
            x.Add((float)(random.NextDouble() * 175 - 87));
        }
        x.AddRange(Enumerable.Range(0, 37).Select(i => (float)(i - 18) * 0.6931472f)); // near integer multiples of ln 2
        float[] input = x.ToArray();
        var output = new float[input.Length];
        VectorMath.Exp(input, output);
        for (int i = 0; i < input.Length; i++)
        {
            double expected = Math.Exp(input[i]);
            Assert.True(Math.Abs(output[i] - expected) <= 2.5e-7 * expected, $"exp({input[i]}): expected {expected}, got {output[i]}");
        }
        Assert.Equal(1f, output[0]);
        // Far outside the range: vanishingly small or saturated, never infinite, negative or NaN.
        float[] tiny = Enumerable.Repeat(-1000f, 16).ToArray();
        VectorMath.Exp(tiny, tiny);
        Assert.All(tiny, v => Assert.InRange(v, 0f, 1e-37f));
        float[] huge = Enumerable.Repeat(1000f, 16).ToArray();
        VectorMath.Exp(huge, huge);
        Assert.All(huge, v => Assert.InRange(v, 1e38f, float.MaxValue));
    }

    [Fact]
    public void ArgMaxTakesTheFirstOfTies()
    {
        Assert.Equal(1, VectorMath.ArgMax([1f, 5f, 5f, -2f]));
        Assert.Equal(0, VectorMath.ArgMax([float.NegativeInfinity]));
    }
}
