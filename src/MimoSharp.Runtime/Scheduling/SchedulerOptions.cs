namespace MimoSharp.Runtime.Scheduling;

/// <summary>Limits and policies of an <see cref="InferenceScheduler"/>.</summary>
public sealed record SchedulerOptions
{
    /// <summary>Sequences decoded together (<c>--parallel</c>); more requests wait in the queue.</summary>
    public int MaxRunningSequences { get; init; } = 8;

    /// <summary>Requests that may wait for a running slot; beyond it admission refuses (HTTP 429/503).</summary>
    public int MaxQueuedRequests { get; init; } = 64;

    /// <summary>
    /// KV cache bytes the running sequences may hold. Each admitted sequence reserves the most its
    /// cache can reach (prompt + max_tokens on the global layers, the rings of the sliding layers and
    /// MTP heads), so the engine never allocates past it; a request needing more than the whole budget
    /// is refused.
    /// </summary>
    public long KvBudgetBytes { get; init; } = 4L << 30;

    /// <summary>Prompt tokens one step may run (chunked prefill, as vLLM's max_num_batched_tokens).</summary>
    public int PrefillTokensPerStep { get; init; } = 512;

    /// <summary>
    /// While other sequences decode, a step's prompt chunk is sized so the step takes at most this
    /// many times a decode-only step (measured as it runs), so a long prompt does not stall the streams.
    /// </summary>
    public double PrefillStallFactor { get; init; } = 2.0;

    /// <summary>The most MTP draft tokens a sequence uses (0..3); a request's <c>DraftTokens</c> is capped by it.</summary>
    public int MaxDraftTokens { get; init; } = 3;

    /// <summary>Reuse the KV of prompt prefixes that earlier requests computed.</summary>
    public bool PrefixCache { get; init; } = true;

    /// <summary>Bytes the prefix cache may hold (global-layer pages and sliding-window checkpoints); least recently used entries go first.</summary>
    public long PrefixCacheBytes { get; init; } = 1L << 30;

    /// <summary>Positions a sliding-window ring keeps beyond the window (drafts, and prefix cuts up to this far before a checkpoint).</summary>
    public int CacheReserve { get; init; } = 64;

    internal void Validate()
    {
        if (MaxRunningSequences < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxRunningSequences), $"--parallel must be at least 1, got {MaxRunningSequences}");
        }
        if (MaxQueuedRequests < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxQueuedRequests), $"the queue bound must be 0 or more, got {MaxQueuedRequests}");
        }
        if (KvBudgetBytes <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(KvBudgetBytes), $"the KV budget must be positive, got {KvBudgetBytes} bytes");
        }
        if (PrefillTokensPerStep < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(PrefillTokensPerStep), $"the prefill budget must be at least 1 token, got {PrefillTokensPerStep}");
        }
        if (MaxDraftTokens is < 0 or > 3)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxDraftTokens), $"draft tokens must be 0..3, got {MaxDraftTokens}");
        }
        if (PrefixCacheBytes < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(PrefixCacheBytes), $"the prefix cache budget must be 0 or more, got {PrefixCacheBytes}");
        }
        if (CacheReserve < 4)
        {
            throw new ArgumentOutOfRangeException(nameof(CacheReserve), $"the cache reserve must be at least 4 positions (3 drafts + 1), got {CacheReserve}");
        }
        if (!(PrefillStallFactor >= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(PrefillStallFactor), $"the prefill stall factor must be at least 1, got {PrefillStallFactor}");
        }
    }
}

/// <summary>
/// A snapshot of the scheduler's counters and gauges (the server exports them to Prometheus).
/// Counters (totals since start) and gauges (now) are named as such.
/// </summary>
public sealed record SchedulerStats
{
    /// <summary>Gauge: requests waiting for a running slot.</summary>
    public int QueueDepth { get; init; }
    /// <summary>Gauge: sequences prefilling or decoding.</summary>
    public int RunningSequences { get; init; }
    public int MaxRunningSequences { get; init; }
    public int MaxQueuedRequests { get; init; }

    /// <summary>Counter: requests admitted, finished (any reason), cancelled, refused by admission.</summary>
    public long RequestsAdmitted { get; init; }
    public long RequestsFinished { get; init; }
    public long RequestsCancelled { get; init; }
    public long RequestsRejected { get; init; }

    /// <summary>Counter: prompt tokens of admitted requests; those served from the prefix cache; tokens generated.</summary>
    public long PromptTokens { get; init; }
    public long CachedPromptTokens { get; init; }
    public long GeneratedTokens { get; init; }

    /// <summary>Counter: scheduler steps (batched forwards).</summary>
    public long Steps { get; init; }

    /// <summary>Gauge: KV bytes the running sequences' caches hold now, and the most they may reach (reserved at admission).</summary>
    public long KvBytesInUse { get; init; }
    public long KvBytesReserved { get; init; }
    public long KvBudgetBytes { get; init; }

    /// <summary>Gauge: bytes the prefix cache holds, and its budget.</summary>
    public long PrefixCacheBytes { get; init; }
    public long PrefixCacheBudgetBytes { get; init; }
    /// <summary>Counter: admitted requests that reused a cached prefix, and those that did not (with the cache on).</summary>
    public long PrefixCacheHits { get; init; }
    public long PrefixCacheMisses { get; init; }

    /// <summary>Counter per MTP head: drafts proposed and accepted (head k is judged only when heads before it were accepted).</summary>
    public IReadOnlyList<long> MtpProposed { get; init; } = [];
    public IReadOnlyList<long> MtpAccepted { get; init; } = [];

    /// <summary>Accepted / proposed per head (0 where none was proposed).</summary>
    public IReadOnlyList<double> MtpAcceptanceRates => MtpProposed.Select((p, k) => p == 0 ? 0 : (double)MtpAccepted[k] / p).ToArray();
}
