namespace MimoSharp.Runtime.Generation;

/// <summary>
/// What decoding needs from a sampler: the final distribution over the vocabulary after every
/// sampling stage (speculative acceptance compares drafts against it), draws from a distribution,
/// and uniforms, all from one seeded generator so a seed reproduces a run.
/// </summary>
public interface ITokenSampler
{
    /// <summary>True when the choice is the argmax of the logits (temperature 0): no randomness is used.</summary>
    bool IsGreedy { get; }

    /// <summary>
    /// probs [vocab] = the distribution a token is drawn from after the logits of the next position,
    /// given <paramref name="history"/> (prompt and generated ids, for penalties).
    /// </summary>
    void Probabilities(ReadOnlySpan<float> logits, ReadOnlySpan<int> history, Span<float> probs);

    /// <summary>A token drawn from <paramref name="probs"/> (which need not be normalised).</summary>
    int Draw(ReadOnlySpan<float> probs);

    /// <summary>A uniform number in [0, 1).</summary>
    double NextUniform();

    /// <summary>
    /// Rows of the LM head that are tokens: the rest (a vocabulary padded to a multiple of 64) are never
    /// drawn, so log-probabilities rank and normalise over this many rows only.
    /// </summary>
    int ValidVocabSize => int.MaxValue;
}
