using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using MimoSharp.Runtime.Generation;
using MimoSharp.Runtime.Sampling;

namespace MimoSharp.Server;

/// <summary>One assistant answer to produce: the prompt ids and everything that shapes the output.</summary>
public sealed record ChatRunSpec
{
    public required IReadOnlyList<int> PromptIds { get; init; }
    public required SamplingOptions Sampling { get; init; }
    public required int MaxTokens { get; init; }
    public IReadOnlyList<string> Stops { get; init; } = [];
    /// <summary>OpenAI-shaped tools (for the parser's value types).</summary>
    public JsonArray? Tools { get; init; }
    public bool ParseTools { get; init; }
    public bool StartInReasoning { get; init; }
    public bool ParallelToolCalls { get; init; } = true;
    public ITokenConstraint? Constraint { get; init; }
    public int? TopLogprobs { get; init; }
    /// <summary>Raw completions: no reasoning split, no tool parsing.</summary>
    public bool RawText { get; init; }
    /// <summary>vLLM's <c>ignore_eos</c>: end-of-turn ids do not end the answer (benchmarks that need exactly max_tokens).</summary>
    public bool IgnoreEos { get; init; }
}

/// <summary>Why an answer ended.</summary>
public enum StopReason
{
    /// <summary>The model's end-of-turn token.</summary>
    EndTurn,
    StopSequence,
    /// <summary>max_tokens or the context ended it.</summary>
    Length,
    ToolCalls,
    Cancelled,
}

public sealed record ChatEnd(StopReason Reason, string? MatchedStop, int PromptTokens, int CompletionTokens, int CachedTokens);

/// <summary>One generated token's parts, or (with <see cref="End"/>) the end of the answer.</summary>
public sealed record ChatStep(IReadOnlyList<OutputPart> Parts, int Token, TokenLogprob? Logprob, ChatEnd? End = null)
{
    /// <summary>On the first token's step: prompt tokens read from the prefix cache (null when the engine does not say).</summary>
    public int? CachedPromptTokens { get; init; }
}

/// <summary>Runs a <see cref="ChatRunSpec"/> on a host's engine: detokenizing, stop strings, parsing, metrics.</summary>
public static class ChatRunner
{
    private static readonly IReadOnlySet<int> NoStopIds = new HashSet<int>();

    public static async IAsyncEnumerable<ChatStep> RunAsync(ModelHost host, ChatRunSpec spec, ServerMetrics? metrics = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var text = new TokenizerTextStream(host.Tokenizer, spec.Stops);
        var request = new GenerationRequest
        {
            PromptIds = spec.PromptIds,
            MaxTokens = spec.MaxTokens,
            DraftTokens = spec.Constraint is null ? host.DraftTokens : 0,
            Sampler = new Sampler(spec.Sampling, host.Model.VocabSize, spec.PromptIds.Count, host.Tokenizer.VocabularySize),
            StopTokenIds = spec.IgnoreEos ? NoStopIds : host.StopIds,
            Text = text,
            TopLogprobs = spec.TopLogprobs,
            Constraint = spec.Constraint,
        };
        var parser = new AssistantParser(spec.Tools, spec.ParseTools && !spec.RawText, spec.StartInReasoning && !spec.RawText);
        int produced = 0;
        long start = Stopwatch.GetTimestamp(), last = 0;
        GenerationEvent? final = null;
        bool stoppedEarly = false;
        using var tracker = metrics?.Track(spec.PromptIds.Count);
        await using (IAsyncEnumerator<GenerationEvent> events = host.Engine.GenerateAsync(request, cancellationToken).GetAsyncEnumerator(cancellationToken))
        {
            while (await events.MoveNextAsync().ConfigureAwait(false))
            {
                GenerationEvent e = events.Current;
                if (e.IsFinal)
                {
                    final = e;
                    break;
                }
                produced++;
                long now = Stopwatch.GetTimestamp();
                if (last == 0)
                {
                    metrics?.TimeToFirstToken.Observe(Stopwatch.GetElapsedTime(start, now).TotalSeconds);
                }
                else
                {
                    metrics?.InterTokenLatency.Observe(Stopwatch.GetElapsedTime(last, now).TotalSeconds);
                }
                last = now;
                tracker?.Generated();
                List<OutputPart> parts = spec.RawText ? Raw(e.Text) : parser.Push(e.Text);
                yield return new ChatStep(parts, e.Token, e.Logprob) { CachedPromptTokens = e.CachedPromptTokens };
                if (!spec.ParallelToolCalls && parser.ToolCalls > 0)
                {
                    stoppedEarly = true; // parallel_tool_calls false: the first call ends the answer
                    break;
                }
            }
        }
        var tail = new List<OutputPart>();
        if (final is not null)
        {
            tail.AddRange(spec.RawText ? Raw(final.Text) : parser.Push(final.Text));
        }
        if (!spec.RawText)
        {
            tail.AddRange(parser.Flush());
        }
        StopReason reason = final?.Finish switch
        {
            _ when parser.ToolCalls > 0 && (stoppedEarly || final?.Finish == FinishReason.Stop) => StopReason.ToolCalls,
            FinishReason.Length or FinishReason.ContextFull => StopReason.Length,
            FinishReason.Cancelled => StopReason.Cancelled,
            FinishReason.Stop when text.MatchedStop is not null => StopReason.StopSequence,
            _ => cancellationToken.IsCancellationRequested ? StopReason.Cancelled : StopReason.EndTurn,
        };
        int cached = final?.Usage?.CachedPromptTokens ?? 0;
        metrics?.Finished(spec.PromptIds.Count, cached, produced, final?.Usage);
        yield return new ChatStep(tail, -1, null, new ChatEnd(reason, text.MatchedStop, spec.PromptIds.Count, produced, cached));
    }

    private static List<OutputPart> Raw(string text) => text.Length > 0 ? [new TextPart(text)] : [];
}
