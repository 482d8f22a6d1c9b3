using MimoSharp.Models;

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
    /// <summary>
    /// When set (0..20), every token event carries its log-probability and this many most likely
    /// alternatives (OpenAI <c>logprobs</c> / <c>top_logprobs</c>): raw values, log-softmax of the model's
    /// logits at that position before penalties, temperature, bias and constraint (vLLM's default), see <see cref="TokenLogprobs"/>.
    /// </summary>
    public int? TopLogprobs { get; init; }
    /// <summary>Optional constrained decoding (e.g. a JSON schema): masks the logits before each sample.</summary>
    public ITokenConstraint? Constraint { get; init; }
}

/// <summary>
/// A grammar over token ids, applied before sampling (json_object / json_schema response formats).
/// One instance per request; the engine calls <see cref="Apply"/> for the next position, then
/// <see cref="Accept"/> with the token it committed. A request with a constraint decodes without drafts.
/// </summary>
public interface ITokenConstraint
{
    /// <summary>Sets logits [vocab] of the tokens not allowed at the next position to negative infinity.</summary>
    void Apply(Span<float> logits);

    /// <summary>The token was committed to the output.</summary>
    void Accept(int token);
}

/// <summary>A token's log-probability and the most likely alternatives at its position.</summary>
public sealed record TokenLogprob(int Token, float Logprob, IReadOnlyList<(int Token, float Logprob)> Top);

/// <summary>
/// What runs generations: <see cref="Generator"/> (one sequence at a time) or the batching scheduler.
/// Errors before the first event: <see cref="ArgumentException"/> for a request the model cannot take
/// (prompt plus max_tokens beyond the context: the message gives both numbers), and
/// <see cref="EngineOverloadedException"/> when admission refuses it (queue, sequences or KV budget full).
/// </summary>
public interface IGenerationEngine
{
    MimoModel Model { get; }

    IAsyncEnumerable<GenerationEvent> GenerateAsync(GenerationRequest request, CancellationToken cancellationToken = default);
}

/// <summary>Admission refused a request for now (HTTP 429, Anthropic 529: retry later): the message says which limit.</summary>
public sealed class EngineOverloadedException(string message) : Exception(message);

/// <summary>
/// A request that no amount of waiting lets in: its prompt plus max_tokens needs more KV cache than the whole
/// budget (HTTP 400 naming max_tokens: a retry would be refused again).
/// </summary>
public sealed class RequestTooLargeException(string message) : Exception(message);

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
    /// <summary>Prompt tokens whose KV came from the prefix cache (not recomputed).</summary>
    public int CachedPromptTokens { get; init; }

    public double PrefillTokensPerSecond => PromptTokens / Math.Max(PrefillTime.TotalSeconds, 1e-9);
    public double DecodeTokensPerSecond => Math.Max(CompletionTokens - 1, 0) / Math.Max(DecodeTime.TotalSeconds, 1e-9);
}

/// <summary>One generated token (and the text it completed), or the final event with the finish reason and usage.</summary>
public sealed record GenerationEvent(int Token, string Text, FinishReason Finish, GenerationUsage? Usage)
{
    /// <summary>Set when the request asked for <see cref="GenerationRequest.TopLogprobs"/>.</summary>
    public TokenLogprob? Logprob { get; init; }

    /// <summary>
    /// On the first token's event, from engines with a prefix cache: the prompt tokens whose KV was reused
    /// (known before the end, so a stream can report them up front, as Anthropic's message_start does).
    /// </summary>
    public int? CachedPromptTokens { get; init; }

    public bool IsFinal => Finish != FinishReason.None;
}
