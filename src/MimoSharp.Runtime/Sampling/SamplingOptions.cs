using System.Collections.ObjectModel;

namespace MimoSharp.Runtime.Sampling;

/// <summary>
/// How the next token is chosen, with llama.cpp / vLLM / Hugging Face semantics. Temperature 0 is greedy.
/// <para>The stages run in this order (see <see cref="Sampler"/>):</para>
/// <list type="number">
/// <item>repetition penalty (HF / CTRL) over every token of prompt and output: a positive logit is divided by it, a negative one multiplied;</item>
/// <item>presence and frequency penalties (OpenAI) over the output only: logit -= presence·[count &gt; 0] + frequency·count;</item>
/// <item>logit bias, added;</item>
/// <item>temperature: logits / T (T = 0 stops here and takes the argmax, first index on ties);</item>
/// <item>top-k: logits below the k-th largest are dropped (ties with it stay);</item>
/// <item>softmax, then top-p: the smallest most-likely set whose probability sums to ≥ p stays (at least one token; ties broken by lower id);</item>
/// <item>min-p: tokens with probability &lt; min_p · p_max are dropped;</item>
/// <item>renormalisation and a draw with the seeded generator.</item>
/// </list>
/// </summary>
public sealed record SamplingOptions
{
    private readonly IReadOnlyDictionary<int, float>? _logitBias;

    public float Temperature { get; init; } = 1f;
    /// <summary>Keep the k most likely tokens; 0 keeps all.</summary>
    public int TopK { get; init; }
    /// <summary>Keep the smallest set of most likely tokens whose probability sums to at least p; 1 keeps all.</summary>
    public float TopP { get; init; } = 1f;
    /// <summary>Drop tokens less likely than min_p times the most likely; 0 keeps all.</summary>
    public float MinP { get; init; }
    /// <summary>&gt; 1 discourages tokens already in the prompt or output: positive logits are divided by it, negative multiplied; 1 is off.</summary>
    public float RepetitionPenalty { get; init; } = 1f;
    /// <summary>Subtracted once from the logit of every token the output already holds.</summary>
    public float PresencePenalty { get; init; }
    /// <summary>Subtracted per occurrence in the output.</summary>
    public float FrequencyPenalty { get; init; }

    /// <summary>Added to the logits of the given token ids; <see cref="float.NegativeInfinity"/> bans a token.</summary>
    public IReadOnlyDictionary<int, float>? LogitBias
    {
        get => _logitBias;
        // A private copy: the record stays immutable even if the caller's dictionary changes later.
        init => _logitBias = value is null ? null : new ReadOnlyDictionary<int, float>(new Dictionary<int, float>(value));
    }

    /// <summary>Seed of the random draws; null picks one at random (<see cref="Sampler.Seed"/> reports it).</summary>
    public ulong? Seed { get; init; }
    public int MaxTokens { get; init; } = 512;

    public bool IsGreedy => Temperature == 0f;

    /// <summary>Checks every option that does not depend on the vocabulary; throws naming the option and its valid range.</summary>
    public SamplingOptions Validate()
    {
        Check(float.IsFinite(Temperature) && Temperature >= 0, nameof(Temperature), $"temperature must be >= 0 (0 is greedy), got {Temperature}");
        Check(TopK >= 0, nameof(TopK), $"top_k must be >= 0 (0 disables it), got {TopK}");
        Check(TopP > 0 && TopP <= 1, nameof(TopP), $"top_p must be in (0, 1], got {TopP}");
        Check(MinP >= 0 && MinP <= 1, nameof(MinP), $"min_p must be in [0, 1], got {MinP}");
        Check(float.IsFinite(RepetitionPenalty) && RepetitionPenalty > 0, nameof(RepetitionPenalty), $"repetition_penalty must be > 0 (1 disables it), got {RepetitionPenalty}");
        // OpenAI's documented range; NaN fails the pattern too.
        Check(PresencePenalty is >= -2 and <= 2, nameof(PresencePenalty), $"presence_penalty must be in [-2, 2], got {PresencePenalty}");
        Check(FrequencyPenalty is >= -2 and <= 2, nameof(FrequencyPenalty), $"frequency_penalty must be in [-2, 2], got {FrequencyPenalty}");
        Check(MaxTokens >= 0, nameof(MaxTokens), $"max_tokens must be >= 0, got {MaxTokens}");
        if (LogitBias is not null)
        {
            foreach ((int token, float bias) in LogitBias)
            {
                Check(float.IsFinite(bias) || float.IsNegativeInfinity(bias), nameof(LogitBias), $"logit_bias for token {token} must be finite or -inf, got {bias}");
            }
        }
        return this;
    }

    /// <summary><see cref="Validate()"/>, and every logit_bias token inside [0, <paramref name="vocabSize"/>).</summary>
    public SamplingOptions Validate(int vocabSize)
    {
        Validate();
        if (LogitBias is not null)
        {
            foreach (int token in LogitBias.Keys)
            {
                Check(token >= 0 && token < vocabSize, nameof(LogitBias), $"logit_bias names token {token}, outside the vocabulary [0, {vocabSize})");
            }
        }
        return this;
    }

    private static void Check(bool condition, string option, string message)
    {
        if (!condition)
        {
            throw new ArgumentException(message, option);
        }
    }
}
