using MimoSharp.Tensors.Kernels;

namespace MimoSharp.Tensors.Tests;

/// <summary>The element-wise kernels against float64 naive twins over many lengths, ragged included, on every path this machine runs.</summary>
public sealed class VectorMathTests
{
    public static TheoryData<int> Lengths() => [1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 33, 64, 100, 129, 1024, 4099];

    private static IReadOnlyList<KernelIsa> Paths => KernelIsas.Supported;

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
        foreach (KernelIsa isa in Paths)
        {
            Close(dot, VectorMath.Dot(a, b, isa), magnitude, $"{isa} dot {n}");

            float[] y = Random(n, 3 * n);
            double[] expected = y.Select((v, i) => v + 0.37 * a[i]).ToArray();
            VectorMath.MultiplyAdd(a, 0.37f, y, isa);
            for (int i = 0; i < n; i++)
            {
                Close(expected[i], y[i], 1, $"{isa} axpy {n} at {i}");
            }
            float[] z = Random(n, 3 * n);
            VectorMath.Scale(z, -1.5f, isa);
            float[] z0 = Random(n, 3 * n);
            for (int i = 0; i < n; i++)
            {
                Assert.Equal(z0[i] * -1.5f, z[i]);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void RmsNormAndTheFusedResidualVersionMatchTheTwin(int n)
    {
        foreach (KernelIsa isa in Paths)
        {
            RmsNormCase(n, isa);
        }
    }

    private static void RmsNormCase(int n, KernelIsa isa)
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
        VectorMath.RmsNorm(x, weight, eps, y, isa);
        double[] expected = Norm(x.Select(v => (double)v).ToArray());
        for (int i = 0; i < n; i++)
        {
            Close(expected[i], y[i], Math.Abs(expected[i]) + 1e-3, $"{isa} rmsnorm {n} at {i}");
        }

        double[] sum = x.Select((v, i) => (double)v + delta[i]).ToArray();
        double[] fused = Norm(sum);
        VectorMath.AddRmsNorm(delta, x, weight, eps, y, isa);
        for (int i = 0; i < n; i++)
        {
            Close(sum[i], x[i], Math.Abs(sum[i]), $"{isa} residual {n} at {i}");
            Close(fused[i], y[i], Math.Abs(fused[i]) + 1e-3, $"{isa} add+rmsnorm {n} at {i}");
        }
        Assert.Throws<ArgumentException>(() => VectorMath.AddRmsNorm(delta, x, weight.AsSpan(1).ToArray(), eps, y));
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void SwiGluMatchesTheTwin(int n)
    {
        foreach (KernelIsa isa in Paths)
        {
            float[] gate = Random(n, n, 8), up = Random(n, 11 * n);
            double[] expected = gate.Select((z, i) => z / (1 + Math.Exp(-(double)z)) * up[i]).ToArray();
            VectorMath.SwiGlu(gate, up, isa);
            for (int i = 0; i < n; i++)
            {
                Close(expected[i], gate[i], Math.Abs(expected[i]) + 1e-3, $"{isa} swiglu {n} at {i}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void SoftmaxMatchesTheTwin(int n)
    {
        foreach (KernelIsa isa in Paths)
        {
            float[] x = Random(n, 13 * n, 20);
            double max = x.Max();
            double total = x.Sum(v => Math.Exp(v - max));
            VectorMath.Softmax(x, isa);
            float[] original = Random(n, 13 * n, 20);
            for (int i = 0; i < n; i++)
            {
                double expected = Math.Exp(original[i] - max) / total;
                // The float sum of n terms carries up to ~n ulp.
                Assert.True(Math.Abs(expected - x[i]) <= 2e-5 * expected + 1e-9, $"{isa} softmax {n} at {i}: expected {expected}, got {x[i]}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void RotateHalfMatchesTheTwinBitForBit(int half)
    {
        float[] cos = Random(half, half), sin = Random(half, 2 * half);
        float[] x0 = Random(2 * half + 3, 3 * half, 4);
        foreach (KernelIsa isa in Paths)
        {
            float[] x = (float[])x0.Clone();
            VectorMath.RotateHalf(x, cos, sin, isa);
            for (int i = 0; i < half; i++)
            {
                // The twin's float expressions: the kernel promises the same roundings (no fused multiply-add).
                float a = x0[i], b = x0[i + half];
                Assert.Equal(a * cos[i] - b * sin[i], x[i]);
                Assert.Equal(b * cos[i] + a * sin[i], x[i + half]);
                Assert.True(Math.Abs((double)a * cos[i] - (double)b * sin[i] - x[i]) <= 1e-6 * (Math.Abs(a) + Math.Abs(b)) + 1e-9);
            }
            Assert.Equal(x0.AsSpan(2 * half).ToArray(), x.AsSpan(2 * half).ToArray()); // dims past the rotated ones pass through
        }
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void ScaleIntoMaxAbsGivesTheLargestMagnitudeOnEveryPath(int n)
    {
        var random = new Random(n + 5);
        for (int trial = 0; trial < 10; trial++)
        {
            // Magnitudes over the whole float range, both signs; the largest anywhere (ragged tail included); infinities in one trial.
            float[] x = Enumerable.Range(0, n).Select(_ => (float)((random.NextDouble() * 2 - 1) * Math.Pow(2, random.Next(-140, 128)))).ToArray();
            if (trial == 3)
            {
                x[random.Next(n)] = float.NegativeInfinity;
            }
            float expected = x.Max(v => Math.Abs(v));
            float[] scaled = x.Select(v => v * 0.75f).ToArray();
            foreach (KernelIsa isa in Paths)
            {
                var y = new float[n];
                Assert.Equal(expected, VectorMath.ScaleIntoMaxAbs(x, 1f, y, isa));
                Assert.Equal(x, y);
                Assert.Equal(scaled.Max(v => Math.Abs(v)), VectorMath.ScaleIntoMaxAbs(x, 0.75f, y, isa));
                Assert.Equal(scaled, y);
            }
        }
        foreach (KernelIsa isa in Paths)
        {
            Assert.Equal(0f, VectorMath.ScaleIntoMaxAbs(new float[n], 1f, new float[n], isa));
        }
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void ArgMaxIsTheFirstLargestOnEveryPathPassingOverNaN(int n)
    {
        var random = new Random(n);
        for (int trial = 0; trial < 20; trial++)
        {
            // Few distinct values: ties everywhere; some NaN and infinities.
            float[] x = Enumerable.Range(0, n).Select(_ => random.Next(8) switch
            {
                0 => float.NaN,
                1 => float.NegativeInfinity,
                _ => (float)random.Next(-3, 4),
            }).ToArray();
            if (trial % 5 == 0 && n > 1)
            {
                x[0] = 2.5f;
            }
            int expected = 0;
            for (int i = 1; i < n; i++)
            {
                if (x[i] > x[expected])
                {
                    expected = i;
                }
            }
            foreach (KernelIsa isa in Paths)
            {
                Assert.True(expected == VectorMath.ArgMax(x, isa), $"{isa} n {n} trial {trial}: expected {expected}, got {VectorMath.ArgMax(x, isa)} of [{string.Join(", ", x.Take(40))}]");
            }
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
        foreach (KernelIsa isa in Paths)
        {
            ExpCase(input, isa);
        }
    }

    private static void ExpCase(float[] input, KernelIsa isa)
    {
        var output = new float[input.Length];
        VectorMath.Exp(input, output, isa);
        for (int i = 0; i < input.Length; i++)
        {
            double expected = Math.Exp(input[i]);
            Assert.True(Math.Abs(output[i] - expected) <= 2.5e-7 * expected, $"{isa} exp({input[i]}): expected {expected}, got {output[i]}");
        }
        Assert.Equal(1f, output[0]);
        // Far outside the range: vanishingly small or saturated, never infinite, negative or NaN.
        float[] tiny = Enumerable.Repeat(-1000f, 16).ToArray();
        VectorMath.Exp(tiny, tiny, isa);
        Assert.All(tiny, v => Assert.InRange(v, 0f, 1e-37f));
        float[] huge = Enumerable.Repeat(1000f, 16).ToArray();
        VectorMath.Exp(huge, huge, isa);
        Assert.All(huge, v => Assert.InRange(v, 1e38f, float.MaxValue));
    }

    [Fact]
    public void ArgMaxTakesTheFirstOfTies()
    {
        Assert.Equal(1, VectorMath.ArgMax([1f, 5f, 5f, -2f]));
        Assert.Equal(0, VectorMath.ArgMax([float.NegativeInfinity]));
    }
}
