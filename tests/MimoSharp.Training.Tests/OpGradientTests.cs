using MimoSharp.Models.Configuration;
using MimoSharp.Tensors.Threading;
using MimoSharp.Training.Ops;

namespace MimoSharp.Training.Tests;

/// <summary>
/// Every op's fp32 backward against central finite differences of a float64 twin of its forward
/// written here from the spec. Each check differentiates L = Σ c·y for random c, so dy = c.
/// </summary>
public sealed class OpGradientTests
{
    private const double Step = 1e-6;

    private static double[] Random(Random rng, int n, double scale = 1) => Enumerable.Range(0, n).Select(_ => (rng.NextDouble() * 2 - 1) * scale).ToArray();

    private static float[] F(double[] x) => x.Select(v => (float)v).ToArray();

    /// <summary>∂f/∂x by central differences in float64.</summary>
    private static double[] Numeric(Func<double[], double> f, double[] x)
    {
        var grad = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            double keep = x[i];
            x[i] = keep + Step;
            double up = f(x);
            x[i] = keep - Step;
            double down = f(x);
            x[i] = keep;
            grad[i] = (up - down) / (2 * Step);
        }
        return grad;
    }

    private static void AssertClose(double[] expected, ReadOnlySpan<float> actual, string what, double tolerance = 1e-4)
    {
        double maxDiff = 0, maxRef = 1e-12;
        for (int i = 0; i < expected.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs(expected[i] - actual[i]));
            maxRef = Math.Max(maxRef, Math.Abs(expected[i]));
        }
        Assert.True(maxDiff / maxRef < tolerance, $"{what}: relative error {maxDiff / maxRef:E2}");
    }

    [Theory]
    [InlineData(7)]
    [InlineData(32)]
    [InlineData(45)]
    public void RmsNorm(int n)
    {
        var rng = new Random(n);
        double[] x = Random(rng, n), w = Random(rng, n), c = Random(rng, n);
        const double eps = 1e-5;
        double Twin(double[] xs, double[] ws)
        {
            double ms = xs.Sum(v => v * v) / n;
            double r = 1 / Math.Sqrt(ms + eps);
            return Enumerable.Range(0, n).Sum(i => c[i] * ws[i] * xs[i] * r);
        }
        var y = new float[n];
        float rstd = RowOps.RmsNormForward(F(x), F(w), (float)eps, y);
        var dx = new float[n];
        var dw = new float[n];
        RowOps.RmsNormBackward(F(c), F(x), F(w), rstd, dx, dw);
        AssertClose(Numeric(v => Twin(v, w), x), dx, "dx");
        AssertClose(Numeric(v => Twin(x, v), w), dw, "dw");
    }

    [Fact]
    public void SwiGlu()
    {
        var rng = new Random(3);
        int n = 37;
        double[] g = Random(rng, n, 4), u = Random(rng, n, 2), c = Random(rng, n);
        double Twin(double[] gs, double[] us) => Enumerable.Range(0, n).Sum(i => c[i] * gs[i] / (1 + Math.Exp(-gs[i])) * us[i]);
        var dg = new float[n];
        var du = new float[n];
        RowOps.SwiGluBackward(F(c), F(g), F(u), dg, du);
        AssertClose(Numeric(v => Twin(v, u), g), dg, "dgate");
        AssertClose(Numeric(v => Twin(g, v), u), du, "dup");
        var h = new float[n];
        RowOps.SwiGluForward(F(g), F(u), h);
        AssertClose(Enumerable.Range(0, n).Select(i => g[i] / (1 + Math.Exp(-g[i])) * u[i]).ToArray(), h, "forward");
    }

    [Fact]
    public void CrossEntropy()
    {
        var rng = new Random(4);
        int n = 50, target = 17;
        double[] logits = Random(rng, n, 5);
        double Twin(double[] l)
        {
            double max = l.Max();
            return Math.Log(l.Sum(v => Math.Exp(v - max))) + max - l[target];
        }
        float[] buffer = F(logits);
        float loss = RowOps.CrossEntropy(buffer, target, 0.25f);
        Assert.Equal(Twin(logits), loss, 1e-5);
        AssertClose(Numeric(Twin, logits).Select(v => v * 0.25).ToArray(), buffer, "dlogits");
    }

    [Theory]
    [InlineData(8, 2, 1, 1, true, 1.0)]
    [InlineData(12, 3, 4, 2, true, 2.5)]
    [InlineData(6, 2, 1, 1, false, 1.5)]
    public void Router(int experts, int topK, int groups, int topkGroups, bool normalize, double scaling)
    {
        var rng = new Random(experts * 31 + topK);
        double[] logits = Random(rng, experts, 2), bias = Random(rng, experts, 0.3), c = Random(rng, topK);
        // Twin: selection by σ + bias (group-limited), weights from the unbiased σ.
        int[] TwinSelect(double[] l)
        {
            double[] choice = l.Select((v, e) => 1 / (1 + Math.Exp(-v)) + bias[e]).ToArray();
            int size = experts / groups;
            var groupScore = Enumerable.Range(0, groups).Select(gi => choice.Skip(gi * size).Take(size).OrderDescending().Take(Math.Min(2, size)).Sum()).ToArray();
            var keep = Enumerable.Range(0, groups).OrderByDescending(gi => groupScore[gi]).ThenBy(gi => gi).Take(topkGroups).ToHashSet();
            return Enumerable.Range(0, experts).Where(e => keep.Contains(e / size)).OrderByDescending(e => choice[e]).ThenBy(e => e).Take(topK).ToArray();
        }
        int[] chosen = TwinSelect(logits);
        double Twin(double[] l)
        {
            double[] s = chosen.Select(e => 1 / (1 + Math.Exp(-l[e]))).ToArray();
            double sum = normalize ? s.Sum() + 1e-20 : 1;
            return Enumerable.Range(0, topK).Sum(k => c[k] * s[k] / sum * scaling);
        }
        var scores = new float[experts];
        var choiceBuffer = new float[experts];
        var selected = new int[topK];
        var weights = new float[topK];
        RowOps.RouteForward(F(logits), F(bias), groups, topkGroups, normalize, (float)scaling, scores, choiceBuffer, selected, weights);
        Assert.Equal(chosen, selected);
        var dlogits = new float[experts];
        RowOps.RouteBackward(scores, selected, F(c), normalize, (float)scaling, dlogits);
        AssertClose(Numeric(Twin, logits), dlogits, "dlogits");
    }

    [Theory]
    [InlineData(false, 0, 4, 1)]  // global, no sink, GQA group 4
    [InlineData(true, 3, 4, 2)]   // sliding window 3 with sinks, GQA group 2
    [InlineData(true, 20, 2, 2)]  // window longer than the sequence
    public void AttentionWithRopeAndSink(bool sliding, int window, int qHeads, int kvHeads)
    {
        const int batch = 2, seq = 7, dh = 6, dv = 5, rotary = 4;
        double theta = sliding ? 10000 : 500000;
        var g = new AttentionGeometry(qHeads, kvHeads, dh, dv, rotary, theta, sliding, sliding ? window : 0);
        var rng = new Random(window + qHeads);
        int n = batch * seq;
        double[] q = Random(rng, n * g.QueryWidth), k = Random(rng, n * g.KeyWidth), v = Random(rng, n * g.ValueWidth);
        double[] sinks = Random(rng, qHeads, 1.5), c = Random(rng, n * g.OutputWidth);

        double[] Rotate(double[] x, int width)
        {
            var y = (double[])x.Clone();
            for (int r = 0; r < n; r++)
            {
                int t = r % seq;
                for (int off = r * width; off < (r + 1) * width; off += dh)
                {
                    for (int i = 0; i < rotary / 2; i++)
                    {
                        double phi = t / Math.Pow(theta, 2.0 * i / rotary);
                        double a = x[off + i], b = x[off + i + rotary / 2];
                        y[off + i] = a * Math.Cos(phi) - b * Math.Sin(phi);
                        y[off + i + rotary / 2] = b * Math.Cos(phi) + a * Math.Sin(phi);
                    }
                }
            }
            return y;
        }
        double Twin(double[] qs, double[] ks, double[] vs, double[] ss)
        {
            double[] qr = Rotate(qs, g.QueryWidth), kr = Rotate(ks, g.KeyWidth);
            double total = 0;
            for (int b = 0; b < batch; b++)
            {
                for (int h = 0; h < qHeads; h++)
                {
                    int kv = h / (qHeads / kvHeads);
                    for (int t = 0; t < seq; t++)
                    {
                        var scores = new List<(int J, double S)>();
                        for (int j = 0; j <= t; j++)
                        {
                            if (sliding && t - j >= window)
                            {
                                continue;
                            }
                            double dot = 0;
                            for (int d = 0; d < dh; d++)
                            {
                                dot += qr[(b * seq + t) * g.QueryWidth + h * dh + d] * kr[(b * seq + j) * g.KeyWidth + kv * dh + d];
                            }
                            scores.Add((j, dot / Math.Sqrt(dh)));
                        }
                        double max = scores.Max(s => s.S);
                        if (sliding)
                        {
                            max = Math.Max(max, ss[h]);
                        }
                        double z = scores.Sum(s => Math.Exp(s.S - max)) + (sliding ? Math.Exp(ss[h] - max) : 0);
                        for (int d = 0; d < dv; d++)
                        {
                            double o = scores.Sum(s => Math.Exp(s.S - max) / z * vs[(b * seq + s.J) * g.ValueWidth + kv * dv + d]);
                            total += c[(b * seq + t) * g.OutputWidth + h * dv + d] * o;
                        }
                    }
                }
            }
            return total;
        }

        var op = new AttentionOp(g, batch, seq);
        float[] qf = F(q), kf = F(k), vf = F(v), sf = F(sinks);
        op.Rope(qf, kf, inverse: false);
        var o = new float[n * g.OutputWidth];
        var p = new float[AttentionOp.ProbabilityLength(g, batch, seq)];
        var pSink = new float[batch * qHeads * seq];
        using var pool = new WorkerPool(2);
        op.Forward(qf, kf, vf, sliding ? sf : null, 0, o, p, pSink, pool);
        var dq = new float[q.Length];
        var dk = new float[k.Length];
        var dvGrad = new float[v.Length];
        var dSink = new float[batch * qHeads];
        op.Backward(F(c), qf, kf, vf, p, pSink, dq, dk, dvGrad, dSink, pool);
        op.Rope(dq, dk, inverse: true);

        Assert.Equal(Twin(q, k, v, sinks), o.Select((x, i) => (double)x * c[i]).Sum(), 1e-4);
        AssertClose(Numeric(x => Twin(x, k, v, sinks), q), dq, "dq");
        AssertClose(Numeric(x => Twin(q, x, v, sinks), k), dk, "dk");
        AssertClose(Numeric(x => Twin(q, k, x, sinks), v), dvGrad, "dv");
        if (sliding)
        {
            var summed = new float[qHeads];
            for (int b = 0; b < batch; b++)
            {
                for (int h = 0; h < qHeads; h++)
                {
                    summed[h] += dSink[b * qHeads + h];
                }
            }
            AssertClose(Numeric(x => Twin(q, k, v, x), sinks), summed, "dsink");
        }
    }
}
