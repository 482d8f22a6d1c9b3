using MimoSharp.Runtime.Generation;
using MimoSharp.Runtime.Scheduling;
using Prometheus;

namespace MimoSharp.Server;

/// <summary>
/// The server's Prometheus metrics (GET /metrics): requests by endpoint and status, queue depth and
/// running sequences (from the engine), prompt / cached / generated tokens, time to first token and
/// inter-token latency, KV positions held by running sequences, MTP acceptance per draft head.
/// </summary>
public sealed class ServerMetrics
{
    private long _kvTokens;

    public ServerMetrics(IGenerationEngine? engine = null)
    {
        Registry = Prometheus.Metrics.NewCustomRegistry();
        MetricFactory f = Prometheus.Metrics.WithCustomRegistry(Registry);
        Requests = f.CreateCounter("mimo_requests_total", "HTTP requests by endpoint and status code", "endpoint", "status");
        QueueDepth = f.CreateGauge("mimo_queue_depth", "Requests waiting for a sequence slot");
        RunningSequences = f.CreateGauge("mimo_running_sequences", "Sequences being decoded");
        PromptTokens = f.CreateCounter("mimo_prompt_tokens_total", "Prompt tokens of finished generations");
        CachedTokens = f.CreateCounter("mimo_cached_prompt_tokens_total", "Prompt tokens whose KV came from the prefix cache");
        GeneratedTokens = f.CreateCounter("mimo_generated_tokens_total", "Generated tokens");
        KvTokens = f.CreateGauge("mimo_kv_cache_tokens", "KV cache positions held by running sequences (prompt plus generated tokens)");
        TimeToFirstToken = f.CreateHistogram("mimo_time_to_first_token_seconds", "From the engine call to the first generated token",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.005, 2, 14) });
        InterTokenLatency = f.CreateHistogram("mimo_inter_token_latency_seconds", "Between consecutive generated tokens of one sequence",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.001, 2, 14) });
        HeadAcceptance = f.CreateGauge("mimo_mtp_head_acceptance_rate", "Accepted / proposed drafts of each MTP head since start", "head");
        MtpProposed = f.CreateCounter("mimo_mtp_drafts_proposed_total", "Drafts each MTP head proposed", "head");
        MtpAccepted = f.CreateCounter("mimo_mtp_drafts_accepted_total", "Drafts of each MTP head the main model accepted", "head");
        KvBytesInUse = f.CreateGauge("mimo_kv_cache_bytes_in_use", "KV cache bytes the running sequences hold");
        KvBytesReserved = f.CreateGauge("mimo_kv_cache_bytes_reserved", "KV cache bytes reserved at admission (the most the running sequences may reach)");
        KvBudget = f.CreateGauge("mimo_kv_cache_budget_bytes", "KV cache budget");
        PrefixCacheBytes = f.CreateGauge("mimo_prefix_cache_bytes", "Bytes the prefix cache holds");
        PrefixCacheHits = f.CreateCounter("mimo_prefix_cache_hits_total", "Admitted requests that reused a cached prefix");
        PrefixCacheMisses = f.CreateCounter("mimo_prefix_cache_misses_total", "Admitted requests that found no cached prefix");
        SchedulerSteps = f.CreateCounter("mimo_scheduler_steps_total", "Batched forwards the scheduler ran");
        RequestsRejected = f.CreateCounter("mimo_requests_rejected_total", "Requests admission refused (queue, sequences or KV budget)");
        RequestsCancelled = f.CreateCounter("mimo_requests_cancelled_total", "Requests cancelled before they finished (client gone)");
        Registry.AddBeforeCollectCallback(() =>
        {
            KvTokens.Set(Interlocked.Read(ref _kvTokens));
            if (engine is InferenceScheduler scheduler)
            {
                SchedulerStats stats = scheduler.Stats;
                QueueDepth.Set(stats.QueueDepth);
                RunningSequences.Set(stats.RunningSequences);
                KvBytesInUse.Set(stats.KvBytesInUse);
                KvBytesReserved.Set(stats.KvBytesReserved);
                KvBudget.Set(stats.KvBudgetBytes);
                PrefixCacheBytes.Set(stats.PrefixCacheBytes);
                SetCounter(PrefixCacheHits, stats.PrefixCacheHits);
                SetCounter(PrefixCacheMisses, stats.PrefixCacheMisses);
                SetCounter(SchedulerSteps, stats.Steps);
                SetCounter(RequestsRejected, stats.RequestsRejected);
                SetCounter(RequestsCancelled, stats.RequestsCancelled);
                for (int head = 0; head < stats.MtpProposed.Count; head++)
                {
                    string label = head.ToString(System.Globalization.CultureInfo.InvariantCulture);
                    SetCounter(MtpProposed.WithLabels(label), stats.MtpProposed[head]);
                    SetCounter(MtpAccepted.WithLabels(label), stats.MtpAccepted[head]);
                    HeadAcceptance.WithLabels(label).Set(stats.MtpAcceptanceRates[head]);
                }
            }
        });
    }

    public CollectorRegistry Registry { get; }
    public Counter Requests { get; }
    public Gauge QueueDepth { get; }
    public Gauge RunningSequences { get; }
    public Counter PromptTokens { get; }
    public Counter CachedTokens { get; }
    public Counter GeneratedTokens { get; }
    public Gauge KvTokens { get; }
    public Histogram TimeToFirstToken { get; }
    public Histogram InterTokenLatency { get; }
    public Gauge HeadAcceptance { get; }
    public Counter MtpProposed { get; }
    public Counter MtpAccepted { get; }
    public Gauge KvBytesInUse { get; }
    public Gauge KvBytesReserved { get; }
    public Gauge KvBudget { get; }
    public Gauge PrefixCacheBytes { get; }
    public Counter PrefixCacheHits { get; }
    public Counter PrefixCacheMisses { get; }
    public Counter SchedulerSteps { get; }
    public Counter RequestsRejected { get; }
    public Counter RequestsCancelled { get; }

    /// <summary>Counters mirrored from the scheduler's totals (they only grow).</summary>
    private static void SetCounter(Counter.Child counter, long total) => counter.IncTo(total);

    private static void SetCounter(Counter counter, long total) => counter.IncTo(total);

    /// <summary>Counts a running sequence's KV positions until disposed (cancelled or finished).</summary>
    public SequenceTracker Track(int promptTokens) => new(this, promptTokens);

    public void Finished(int prompt, int cached, int generated, GenerationUsage? usage)
    {
        PromptTokens.Inc(prompt);
        CachedTokens.Inc(cached);
        GeneratedTokens.Inc(generated);
    }

    public async Task WriteAsync(Stream output, CancellationToken cancellationToken) =>
        await Registry.CollectAndExportAsTextAsync(output, cancellationToken).ConfigureAwait(false);

    public sealed class SequenceTracker : IDisposable
    {
        private readonly ServerMetrics _metrics;
        private long _held;

        internal SequenceTracker(ServerMetrics metrics, int prompt)
        {
            _metrics = metrics;
            _held = prompt;
            Interlocked.Add(ref metrics._kvTokens, prompt);
        }

        public void Generated()
        {
            _held++;
            Interlocked.Increment(ref _metrics._kvTokens);
        }

        public void Dispose()
        {
            Interlocked.Add(ref _metrics._kvTokens, -_held);
            _held = 0;
        }
    }
}
