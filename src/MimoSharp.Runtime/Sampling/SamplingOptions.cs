namespace MimoSharp.Runtime.Sampling;

/// <summary>
/// How the next token is chosen (OpenAI / vLLM semantics). Temperature 0 is greedy. Stages run in
/// this order over the logits: repetition penalty (HF/CTRL, over prompt and output), presence and
/// frequency penalties (OpenAI, over the output), logit bias, temperature, top-k, then softmax,
/// top-p, min-p, and a seeded draw from what remains.
/// </summary>
public sealed record SamplingOptions
{
    public float Temperature { get; init; } = 1f;
    /// <summary>Keep the k most likely tokens; 0 keeps all.</summary>
    public int TopK { get; init; }
    /// <summary>Keep the smallest set of most likely tokens whose probability sums to at least p; 1 keeps all.</summary>
    public float TopP { get; init; } = 1f;
    /// <summary>Drop tokens less likely than min_p times the most likely; 0 keeps all.</summary>
    public float MinP { get; init; }
    /// <summary>&gt; 1 discourages tokens already in the prompt or output: positive logits are divided by it, negative multiplied.</summary>
    public float RepetitionPenalty { get; init; } = 1f;
    /// <summary>Subtracted once from the logit of every token the output already holds.</summary>
    public float PresencePenalty { get; init; }
    /// <summary>Subtracted per occurrence in the output.</summary>
    public float FrequencyPenalty { get; init; }
    /// <summary>Added to the logits of the given token ids.</summary>
    public IReadOnlyDictionary<int, float>? LogitBias { get; init; }
    /// <summary>Seed of the random draws; null picks one from the clock.</summary>
    public ulong? Seed { get; init; }
    public int MaxTokens { get; init; } = 512;

    public bool IsGreedy => Temperature == 0f;

    /// <summary>Throws with the offending option and its valid range.</summary>
    public SamplingOptions Validate(int vocabSize)
    {
        Check(float.IsFinite(Temperature) && Temperature >= 0, $"temperature must be >= 0, got {Temperature}");
        Check(TopK >= 0, $"top_k must be >= 0 (0 disables it), got {TopK}");
        Check(TopP > 0 && TopP <= 1, $"top_p must be in (0, 1], got {TopP}");
        Check(MinP >= 0 && MinP <= 1, $"min_p must be in [0, 1], got {MinP}");
        Check(float.IsFinite(RepetitionPenalty) && RepetitionPenalty > 0, $"repetition_penalty must be > 0, got {RepetitionPenalty}");
        Check(PresencePenalty is >= -2 and <= 2, $"presence_penalty must be in [-2, 2], got {PresencePenalty}");
        Check(FrequencyPenalty is >= -2 and <= 2, $"frequency_penalty must be in [-2, 2], got {FrequencyPenalty}");
        Check(MaxTokens >= 0, $"max_tokens must be >= 0, got {MaxTokens}");
        if (LogitBias is not null)
        {
            foreach ((int token, float bias) in LogitBias)
            {
                Check(token >= 0 && token < vocabSize, $"logit_bias names token {token}, outside the vocabulary [0, {vocabSize})");
                Check(float.IsFinite(bias) || float.IsNegativeInfinity(bias), $"logit_bias for token {token} is {bias}");
            }
        }
        return this;
    }

    private static void Check(bool condition, string message)
    {
        if (!condition)
        {
            throw new ArgumentException(message);
        }
    }
}
