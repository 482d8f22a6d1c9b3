using MimoSharp.Models.Layers;

namespace MimoSharp.Training.Ops;

/// <summary>
/// Row-wise ops of the architecture, each a forward and an explicit backward (llm.c's manner). Backward
/// functions accumulate (+=) into the parameter gradients and, where said, into the input gradient.
/// </summary>
public static class RowOps
{
    /// <summary>y = w ⊙ x·r with r = 1/√(mean(x²) + eps); returns r (saved for the backward).</summary>
    public static float RmsNormForward(ReadOnlySpan<float> x, ReadOnlySpan<float> w, float eps, Span<float> y)
    {
        double sumSquares = 0;
        for (int i = 0; i < x.Length; i++)
        {
            sumSquares += x[i] * x[i];
        }
        float r = (float)(1.0 / Math.Sqrt(sumSquares / x.Length + eps));
        for (int i = 0; i < x.Length; i++)
        {
            y[i] = w[i] * (x[i] * r);
        }
        return r;
    }

    /// <summary>dw += dy ⊙ x·r; dx += r·(w⊙dy) − r³/H · x · Σ(w⊙dy⊙x).</summary>
    public static void RmsNormBackward(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, ReadOnlySpan<float> w, float r, Span<float> dx, Span<float> dw)
    {
        double dot = 0;
        for (int i = 0; i < x.Length; i++)
        {
            dot += w[i] * dy[i] * x[i];
        }
        float c = (float)(dot * r * r * r / x.Length);
        for (int i = 0; i < x.Length; i++)
        {
            dw[i] += dy[i] * x[i] * r;
            dx[i] += r * w[i] * dy[i] - c * x[i];
        }
    }

    /// <summary>h = silu(g)·u, silu(g) = g·σ(g).</summary>
    public static void SwiGluForward(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> h)
    {
        for (int i = 0; i < h.Length; i++)
        {
            float g = gate[i];
            h[i] = g / (1f + MathF.Exp(-g)) * up[i];
        }
    }

    /// <summary>dgate = dh·u·σ(g)(1 + g(1−σ(g))), dup = dh·silu(g) (both written).</summary>
    public static void SwiGluBackward(ReadOnlySpan<float> dh, ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> dgate, Span<float> dup)
    {
        for (int i = 0; i < dh.Length; i++)
        {
            float g = gate[i];
            float s = 1f / (1f + MathF.Exp(-g));
            dgate[i] = dh[i] * up[i] * s * (1f + g * (1f - s));
            dup[i] = dh[i] * g * s;
        }
    }

    /// <summary>
    /// Cross-entropy of one row: returns −log softmax(logits)[target] and turns <paramref name="logits"/>
    /// into its gradient (softmax − onehot)·<paramref name="gradScale"/> when <paramref name="gradScale"/> ≠ 0.
    /// </summary>
    public static float CrossEntropy(Span<float> logits, int target, float gradScale)
    {
        float max = float.NegativeInfinity;
        foreach (float l in logits)
        {
            max = MathF.Max(max, l);
        }
        double sum = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            sum += MathF.Exp(logits[i] - max);
        }
        float logSum = (float)Math.Log(sum) + max;
        float loss = logSum - logits[target];
        if (gradScale != 0)
        {
            for (int i = 0; i < logits.Length; i++)
            {
                logits[i] = MathF.Exp(logits[i] - logSum) * gradScale;
            }
            logits[target] -= gradScale;
        }
        return loss;
    }

    /// <summary>
    /// Sigmoid router of one token (spec §2.6): s = σ(logits); the top-k of s + bias (after group-limited
    /// selection) are chosen, their weights are the unbiased s normalised to sum 1 (when
    /// <paramref name="normalize"/>) times <paramref name="scaling"/>. Same order and tie rule as the engine.
    /// </summary>
    public static void RouteForward(ReadOnlySpan<float> logits, ReadOnlySpan<float> bias, int groups, int topkGroups, bool normalize, float scaling,
        Span<float> scores, Span<float> choice, Span<int> selected, Span<float> weights)
    {
        int experts = logits.Length;
        for (int e = 0; e < experts; e++)
        {
            scores[e] = 1f / (1f + MathF.Exp(-logits[e]));
            choice[e] = scores[e] + bias[e];
        }
        if (groups > 1)
        {
            MoeFeedForward.MaskGroups(choice, groups, topkGroups);
        }
        for (int k = 0; k < selected.Length; k++)
        {
            int best = -1;
            for (int e = 0; e < experts; e++)
            {
                if (choice[e] != float.NegativeInfinity && (best < 0 || choice[e] > choice[best]))
                {
                    best = e;
                }
            }
            selected[k] = best;
            weights[k] = scores[best];
            choice[best] = float.NegativeInfinity;
        }
        float sum = 0;
        foreach (float w in weights)
        {
            sum += w;
        }
        float factor = normalize ? scaling / (sum + 1e-20f) : scaling;
        for (int k = 0; k < weights.Length; k++)
        {
            weights[k] *= factor;
        }
    }

    /// <summary>
    /// Router backward of one token: from dweights [k] of the chosen experts to dlogits [experts]
    /// (written; zero for experts not chosen). w_j = c·s_j/S, S = Σ s_sel: ds_j = c/S·(dw_j − Σ_i dw_i s_i/S);
    /// dlogit_j = ds_j·s_j(1 − s_j). Selection itself has no gradient.
    /// </summary>
    public static void RouteBackward(ReadOnlySpan<float> scores, ReadOnlySpan<int> selected, ReadOnlySpan<float> dweights, bool normalize, float scaling, Span<float> dlogits)
    {
        dlogits.Clear();
        if (!normalize)
        {
            for (int k = 0; k < selected.Length; k++)
            {
                float s = scores[selected[k]];
                dlogits[selected[k]] = scaling * dweights[k] * s * (1f - s);
            }
            return;
        }
        float sum = 0;
        float weighted = 0;
        for (int k = 0; k < selected.Length; k++)
        {
            float s = scores[selected[k]];
            sum += s;
            weighted += dweights[k] * s;
        }
        sum += 1e-20f;
        for (int k = 0; k < selected.Length; k++)
        {
            float s = scores[selected[k]];
            float ds = scaling / sum * (dweights[k] - weighted / sum);
            dlogits[selected[k]] = ds * s * (1f - s);
        }
    }
}
