namespace MimoSharp.Runtime.Generation;

/// <summary>Temperature 0: always the argmax, no randomness.</summary>
public sealed class GreedySampler : ITokenSampler
{
    public static GreedySampler Instance { get; } = new();

    public bool IsGreedy => true;

    public void Probabilities(ReadOnlySpan<float> logits, ReadOnlySpan<int> history, Span<float> probs)
    {
        probs.Clear();
        probs[Tensors.Kernels.VectorMath.ArgMax(logits)] = 1f;
    }

    public int Draw(ReadOnlySpan<float> probs) => Tensors.Kernels.VectorMath.ArgMax(probs);

    public double NextUniform() => 0;
}
