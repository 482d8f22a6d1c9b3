using System.Diagnostics;
using System.Threading.Channels;
using MimoSharp.Runtime.Generation;
using MimoSharp.Runtime.Speculative;

namespace MimoSharp.Runtime.Scheduling;

/// <summary>
/// One request inside the scheduler: queued, then running (its <see cref="Session"/> holds the cache),
/// then finished. Only the loop thread touches the session and the output; the consumer reads events
/// from <see cref="Events"/> and may ask for cancellation from any thread.
/// </summary>
internal sealed class ScheduledSequence(GenerationRequest request, int[] prompt, int draftTokens, int positions, long reservedBytes)
{
    private volatile bool _cancelRequested;

    public GenerationRequest Request { get; } = request;
    public int[] Prompt { get; } = prompt;
    /// <summary>MTP drafts per step (the request's, capped by the options and the checkpoint).</summary>
    public int DraftTokens { get; } = draftTokens;
    /// <summary>The most positions the cache can reach: prompt + max_tokens + one verify's drafts.</summary>
    public int Positions { get; } = positions;
    public long ReservedBytes { get; } = reservedBytes;
    public GenerationOutput Output { get; } = new(request);
    /// <summary>Unbounded, but at most max_tokens + 1 events ever enter it.</summary>
    public Channel<GenerationEvent> Events { get; } = Channel.CreateUnbounded<GenerationEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

    public DecodingSession? Session { get; set; }
    public int CachedPromptTokens { get; set; }
    public long AdmittedAt { get; set; }
    public long FirstTokenAt { get; set; }
    public int DecodeSteps { get; set; }
    /// <summary>This step: drafts planned, and prompt tokens in the batch.</summary>
    public int StepDrafts { get; set; }
    public int StepPromptTokens { get; set; }
    public bool Completed { get; set; }

    public bool CancelRequested => _cancelRequested;

    public void RequestCancel() => _cancelRequested = true;

    public GenerationUsage Usage()
    {
        TimeSpan prefill = FirstTokenAt == 0 || AdmittedAt == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(AdmittedAt, FirstTokenAt);
        TimeSpan decode = FirstTokenAt == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(FirstTokenAt);
        AcceptanceStats? stats = Session?.Stats;
        return new GenerationUsage(Prompt.Length, Output.Produced, prefill, decode,
            stats?.MeanAcceptanceLength ?? 0, stats?.HeadAcceptanceRates ?? [])
        {
            CachedPromptTokens = CachedPromptTokens,
        };
    }
}
