using MimoSharp.Models.Configuration;
using MimoSharp.Models.Loading;
using MimoSharp.Tensors.Threading;
using MimoSharp.Training;

namespace MimoSharp.Training.Tests;

/// <summary>Muon's updates against a float64 twin written here from the algorithm's definition, and which tensors it takes.</summary>
public sealed class MuonTests
{
    private static MimoConfig Tiny() => MimoConfig.Parse(SmokeData.ModelJson());

    /// <summary>The float64 twin: momentum, Nesterov, NewtonSchulz5 on the (transposed when tall) matrix, decoupled decay, 0.2·√max(rows, cols).</summary>
    private static void TwinUpdate(double[] w, double[] g, double[] buffer, int rows, int cols, double lr, double mu, double wd)
    {
        int n = rows * cols;
        var u = new double[n];
        for (int i = 0; i < n; i++)
        {
            buffer[i] = mu * buffer[i] + g[i];
            u[i] = g[i] + mu * buffer[i];
        }
        bool tall = rows > cols;
        int m = Math.Min(rows, cols), k = Math.Max(rows, cols);
        // X [m, k]
        var x = new double[m * k];
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < cols; c++)
            {
                x[tall ? c * rows + r : r * cols + c] = u[r * cols + c];
            }
        }
        double norm = Math.Sqrt(x.Sum(v => v * v)) + 1e-7;
        for (int i = 0; i < x.Length; i++)
        {
            x[i] /= norm;
        }
        for (int step = 0; step < 5; step++)
        {
            var a = new double[m * m];
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < m; j++)
                {
                    double s = 0;
                    for (int t = 0; t < k; t++)
                    {
                        s += x[i * k + t] * x[j * k + t];
                    }
                    a[i * m + j] = s;
                }
            }
            var b = new double[m * m];
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < m; j++)
                {
                    double s = 0;
                    for (int t = 0; t < m; t++)
                    {
                        s += a[i * m + t] * a[t * m + j];
                    }
                    b[i * m + j] = -4.7750 * a[i * m + j] + 2.0315 * s;
                }
            }
            var next = new double[m * k];
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < k; j++)
                {
                    double s = 0;
                    for (int t = 0; t < m; t++)
                    {
                        s += b[i * m + t] * x[t * k + j];
                    }
                    next[i * k + j] = 3.4445 * x[i * k + j] + s;
                }
            }
            x = next;
        }
        double scale = 0.2 * Math.Sqrt(k);
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < cols; c++)
            {
                double o = x[tall ? c * rows + r : r * cols + c];
                w[r * cols + c] = w[r * cols + c] * (1 - lr * wd) - lr * scale * o;
            }
        }
    }

    [Fact]
    public void ThreeUpdatesMatchTheFloat64TwinOnEveryMatrixWideTallAndSquare()
    {
        var layout = new ParameterLayout(Tiny(), mtpHeads: 1);
        using var pool = new WorkerPool(3);
        var muon = new Muon(layout, pool) { Momentum = 0.9f, WeightDecay = 0.05f };
        var random = new Random(5);
        var parameters = new float[layout.Length];
        for (int i = 0; i < parameters.Length; i++)
        {
            parameters[i] = (float)(random.NextDouble() * 0.2 - 0.1);
        }
        float[] initial = (float[])parameters.Clone();
        var shapes = new HashSet<string>();
        var twin = muon.Tensors.ToDictionary(t => t.Name, t => (W: initial.AsSpan(t.Offset, t.Length).ToArray().Select(v => (double)v).ToArray(), B: new double[t.Length]));
        for (int step = 0; step < 3; step++)
        {
            var g = new float[layout.Length];
            for (int i = 0; i < g.Length; i++)
            {
                g[i] = (float)(random.NextDouble() * 2 - 1) * (step + 1);
            }
            float lr = 0.01f * (step + 1);
            muon.Update(parameters, g, lr);
            foreach (ParameterTensor t in muon.Tensors)
            {
                (double[] w, double[] b) = twin[t.Name];
                TwinUpdate(w, g.AsSpan(t.Offset, t.Length).ToArray().Select(v => (double)v).ToArray(), b, t.Shape[0], t.Shape[1], lr, 0.9, 0.05);
                shapes.Add(t.Shape[0] > t.Shape[1] ? "tall" : t.Shape[0] < t.Shape[1] ? "wide" : "square");
            }
        }
        foreach (ParameterTensor t in muon.Tensors)
        {
            double[] w = twin[t.Name].W;
            for (int i = 0; i < t.Length; i++)
            {
                double moved = Math.Abs(w[i] - initial[t.Offset + i]);
                Assert.True(Math.Abs(parameters[t.Offset + i] - w[i]) <= 1e-5 + 1e-3 * moved,
                    $"{t.Name} [{t.Shape[0]}x{t.Shape[1]}] at {i}: twin {w[i]}, Muon {parameters[t.Offset + i]} (moved {moved})");
            }
        }
        Assert.Equal(["square", "tall", "wide"], shapes.Order());
        // Muon leaves every other tensor alone: AdamW updates those.
        foreach (ParameterTensor t in layout.Tensors.Where(t => !Muon.Applies(t)))
        {
            Assert.True(parameters.AsSpan(t.Offset, t.Length).SequenceEqual(initial.AsSpan(t.Offset, t.Length)), t.Name);
        }
    }

    [Fact]
    public void MuonTakesTheProjectionsAndAdamWTheEmbeddingHeadRoutersAndNorms()
    {
        var layout = new ParameterLayout(Tiny(), mtpHeads: 1);
        var muon = new Muon(layout);
        Assert.Contains(muon.Tensors, t => t.Name == "model.layers.0.self_attn.q_proj.weight");
        Assert.Contains(muon.Tensors, t => t.Name == "model.layers.0.self_attn.o_proj.weight");
        Assert.Contains(muon.Tensors, t => t.Name.Contains(".experts.", StringComparison.Ordinal));
        Assert.Contains(muon.Tensors, t => t.Name == "model.mtp.layers.0.eh_proj.weight");
        Assert.DoesNotContain(muon.Tensors, t => t.Role is TensorRole.Embedding or TensorRole.LmHead or TensorRole.Router or TensorRole.Norm or TensorRole.SinkBias);
        // AdamW with Muon's matrices skipped leaves them alone.
        var adam = new AdamW(layout, Muon.Applies);
        var parameters = new float[layout.Length];
        var gradients = Enumerable.Repeat(1f, layout.Length).ToArray();
        adam.Update(parameters, gradients, 0.1f);
        foreach (ParameterTensor t in layout.Tensors)
        {
            bool moved = parameters.AsSpan(t.Offset, t.Length).IndexOfAnyExcept(0f) >= 0;
            Assert.Equal(!Muon.Applies(t), moved);
        }
    }

    [Fact]
    public void AnUnknownOptimizerIsNamed()
    {
        var ex = Assert.Throws<TrainingException>(() => SmokeData.Config(steps: 10, extra: ", \"optimizer\": \"lion\""));
        Assert.Contains("\"optimizer\" is \"lion\"", ex.Message);
        Assert.Contains("\"adamw\" or \"muon\"", ex.Message);
    }
}
