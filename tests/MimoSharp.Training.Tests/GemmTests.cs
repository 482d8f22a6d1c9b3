using MimoSharp.Tensors.Threading;
using MimoSharp.Training.Ops;

namespace MimoSharp.Training.Tests;

/// <summary>The training products against a naive float64 twin over many sizes, ragged ones included, on one thread and on a pool.</summary>
public sealed class GemmTests
{
    public static TheoryData<int, int, int> Sizes()
    {
        var data = new TheoryData<int, int, int>();
        foreach ((int m, int n, int k) in new[] { (1, 1, 1), (3, 5, 7), (4, 2, 8), (4, 16, 8), (5, 17, 9), (8, 32, 16), (13, 33, 31), (16, 48, 64), (33, 7, 100), (2, 70, 3), (5, 4100, 40), (4, 4096, 33) })
        {
            data.Add(m, n, k);
        }
        return data;
    }

    private static float[] Random(Random rng, int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();

    [Theory]
    [MemberData(nameof(Sizes))]
    public void ProductsMatchNaiveTwin(int m, int n, int k)
    {
        var rng = new Random(m * 1000 + n * 10 + k);
        using var pool = new WorkerPool(2);
        foreach (WorkerPool? p in new[] { null, pool })
        {
            var gemm = new Gemm();
            // NT: C = A·Bᵀ, A [m,k], B [n,k], with offsets and accumulation.
            float[] a = Random(rng, m * k + 3), b = Random(rng, n * k + 5), c = Random(rng, m * n + 2);
            float[] before = (float[])c.Clone();
            gemm.Multiply(a, 3, b, 5, c, 2, m, n, k, accumulate: true, p);
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < n; j++)
                {
                    double s = before[2 + i * n + j];
                    for (int t = 0; t < k; t++)
                    {
                        s += (double)a[3 + i * k + t] * b[5 + j * k + t];
                    }
                    Assert.True(Math.Abs(s - c[2 + i * n + j]) < 1e-4 * (1 + Math.Abs(s)), $"NT [{i},{j}]");
                }
            }
            // NN (A [m,k] row-major) and TN (A stored [k,m]): C = A·B, B [k,n].
            foreach (bool transposed in new[] { false, true })
            {
                float[] s2 = Random(rng, m * k), b2 = Random(rng, k * n), c2 = new float[m * n];
                int strideM = transposed ? 1 : k, strideK = transposed ? m : 1;
                gemm.MultiplyStrided(s2, 0, strideM, strideK, b2, 0, c2, 0, m, n, k, accumulate: false, p);
                for (int i = 0; i < m; i++)
                {
                    for (int j = 0; j < n; j++)
                    {
                        double s = 0;
                        for (int t = 0; t < k; t++)
                        {
                            s += (double)s2[i * strideM + t * strideK] * b2[t * n + j];
                        }
                        Assert.True(Math.Abs(s - c2[i * n + j]) < 1e-4 * (1 + Math.Abs(s)), $"{(transposed ? "TN" : "NN")} [{i},{j}]");
                    }
                }
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(8)]
    [InlineData(29)]
    public void DotAndAxpyMatchScalar(int n)
    {
        var rng = new Random(n);
        float[] x = Random(rng, n), y = Random(rng, n);
        double dot = 0;
        for (int i = 0; i < n; i++)
        {
            dot += (double)x[i] * y[i];
        }
        Assert.Equal(dot, Gemm.Dot(x, y), 1e-5);
        float[] z = (float[])y.Clone();
        Gemm.Axpy(0.5f, x, z);
        for (int i = 0; i < n; i++)
        {
            Assert.Equal(y[i] + 0.5f * x[i], z[i], 1e-6);
        }
    }
}
