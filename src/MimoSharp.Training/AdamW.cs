namespace MimoSharp.Training;

/// <summary>
/// AdamW as torch.optim.AdamW computes it: p ← p·(1 − lr·wd) (matrices only), m ← β₁m + (1−β₁)g,
/// v ← β₂v + (1−β₂)g², p ← p − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε). Moments share the parameters' layout.
/// With <see cref="Muon"/>, AdamW updates only the tensors Muon does not.
/// </summary>
public sealed class AdamW
{
    private readonly IReadOnlyList<ParameterTensor> _tensors;

    public float Beta1 { get; init; } = 0.9f;
    public float Beta2 { get; init; } = 0.95f;
    public float Epsilon { get; init; } = 1e-8f;
    public float WeightDecay { get; init; } = 0.1f;

    /// <summary>First and second moments [layout length].</summary>
    public float[] M { get; }
    public float[] V { get; }
    /// <summary>Updates taken so far (t of the bias corrections).</summary>
    public int Step { get; set; }

    /// <param name="skip">Tensors another optimizer updates (Muon's matrices), or null for none.</param>
    public AdamW(ParameterLayout layout, Func<ParameterTensor, bool>? skip = null)
    {
        _tensors = skip is null ? layout.Tensors : layout.Tensors.Where(t => !skip(t)).ToArray();
        M = new float[layout.Length];
        V = new float[layout.Length];
    }

    /// <summary>Bytes of optimizer state for a layout (both moments).</summary>
    public static long StateBytes(ParameterLayout layout) => 2L * layout.Length * 4;

    /// <summary>One update of <paramref name="parameters"/> from <paramref name="gradients"/> at learning rate <paramref name="lr"/>.</summary>
    public void Update(float[] parameters, float[] gradients, float lr)
    {
        Step++;
        double correction1 = 1 - Math.Pow(Beta1, Step);
        double correction2Sqrt = Math.Sqrt(1 - Math.Pow(Beta2, Step));
        float stepSize = (float)(lr / correction1);
        float b1 = Beta1, b2 = Beta2, eps = Epsilon;
        foreach (ParameterTensor t in _tensors)
        {
            float decay = t.Decay ? 1f - lr * WeightDecay : 1f;
            int end = t.Offset + t.Length;
            for (int i = t.Offset; i < end; i++)
            {
                float g = gradients[i];
                float p = parameters[i] * decay;
                float m = M[i] = b1 * M[i] + (1 - b1) * g;
                float v = V[i] = b2 * V[i] + (1 - b2) * g * g;
                float denom = (float)(MathF.Sqrt(v) / correction2Sqrt) + eps;
                parameters[i] = p - stepSize * (m / denom);
            }
        }
    }

    /// <summary>Global L2 norm of the gradients; scales them by min(1, max/(norm + 1e-6)) as torch's clip_grad_norm_ does (max ≤ 0: no clipping). Returns the norm before clipping.</summary>
    public static float ClipGradients(float[] gradients, float maxNorm)
    {
        double sum = 0;
        foreach (float g in gradients)
        {
            sum += (double)g * g;
        }
        float norm = (float)Math.Sqrt(sum);
        if (maxNorm > 0)
        {
            float coefficient = maxNorm / (norm + 1e-6f);
            if (coefficient < 1f)
            {
                for (int i = 0; i < gradients.Length; i++)
                {
                    gradients[i] *= coefficient;
                }
            }
        }
        return norm;
    }
}

/// <summary>Warmup-stable-decay: linear warmup to the peak over the first steps, flat, then linear to the minimum over the last <see cref="DecaySteps"/>.</summary>
public sealed record WarmupStableDecay(float Peak, float Minimum, int WarmupSteps, int DecaySteps, int TotalSteps)
{
    /// <summary>Learning rate of update <paramref name="step"/> (0-based).</summary>
    public float At(int step)
    {
        if (step < WarmupSteps)
        {
            return Peak * (step + 1) / WarmupSteps;
        }
        int start = TotalSteps - DecaySteps;
        if (step < start)
        {
            return Peak;
        }
        return Peak + (Minimum - Peak) * Math.Min(1f, (float)(step - start + 1) / DecaySteps);
    }
}
