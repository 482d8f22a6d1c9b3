namespace MimoSharp.Runtime.Generation;

/// <summary>Turns generated ids into text as they stream (UTF-8 safe, with stop strings).</summary>
public interface ITextStream
{
    /// <summary>Feeds one id; returns the text that became complete (possibly empty).</summary>
    string Push(int token);

    /// <summary>True once a stop string has been produced; text after it is never returned.</summary>
    bool Stopped { get; }

    /// <summary>Whatever text is still held back at the end of generation.</summary>
    string Flush();
}

/// <summary>One generation: prompt ids in, tokens out until a stop condition.</summary>
public sealed record GenerationRequest
{
    public required IReadOnlyList<int> PromptIds { get; init; }
    public int MaxTokens { get; init; } = 256;
    /// <summary>MTP draft tokens per step, 0..3 (0 = plain decoding).</summary>
    public int DraftTokens { get; init; }
    public ITokenSampler Sampler { get; init; } = GreedySampler.Instance;
    /// <summary>Ids that end generation (EOS); the stop id itself is reported but not part of the text.</summary>
    public IReadOnlySet<int> StopTokenIds { get; init; } = new HashSet<int>();
    /// <summary>Optional text stream (detokenizer + stop strings); without it events carry ids only.</summary>
    public ITextStream? Text { get; init; }
}

public enum FinishReason
{
    None,
    /// <summary>A stop id or stop string.</summary>
    Stop,
    /// <summary>max_tokens reached.</summary>
    Length,
    /// <summary>The context (max_position_embeddings) is full.</summary>
    ContextFull,
    Cancelled,
}

/// <summary>Counts and timings of a generation so far.</summary>
public sealed record GenerationUsage(
    int PromptTokens,
    int CompletionTokens,
    TimeSpan PrefillTime,
    TimeSpan DecodeTime,
    double MeanAcceptanceLength,
    IReadOnlyList<double> HeadAcceptanceRates)
{
    public double PrefillTokensPerSecond => PromptTokens / Math.Max(PrefillTime.TotalSeconds, 1e-9);
    public double DecodeTokensPerSecond => Math.Max(CompletionTokens - 1, 0) / Math.Max(DecodeTime.TotalSeconds, 1e-9);
}

/// <summary>One generated token (and the text it completed), or the final event with the finish reason and usage.</summary>
public sealed record GenerationEvent(int Token, string Text, FinishReason Finish, GenerationUsage? Usage)
{
    public bool IsFinal => Finish != FinishReason.None;
}
