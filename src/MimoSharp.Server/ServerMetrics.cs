using MimoSharp.Runtime.Generation;
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
        HeadAcceptance = f.CreateGauge("mimo_mtp_head_acceptance_rate", "Acceptance rate of each MTP draft head over the last speculative generation", "head");
        Registry.AddBeforeCollectCallback(() =>
        {
            KvTokens.Set(Interlocked.Read(ref _kvTokens));
            if (engine is SequentialEngine sequential)
            {
                QueueDepth.Set(sequential.Waiting);
                RunningSequences.Set(sequential.Running);
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

    /// <summary>Counts a running sequence's KV positions until disposed (cancelled or finished).</summary>
    public SequenceTracker Track(int promptTokens) => new(this, promptTokens);

    public void Finished(int prompt, int cached, int generated, GenerationUsage? usage)
    {
        PromptTokens.Inc(prompt);
        CachedTokens.Inc(cached);
        GeneratedTokens.Inc(generated);
        if (usage is not null)
        {
            for (int head = 0; head < usage.HeadAcceptanceRates.Count; head++)
            {
                HeadAcceptance.WithLabels(head.ToString(System.Globalization.CultureInfo.InvariantCulture)).Set(usage.HeadAcceptanceRates[head]);
            }
        }
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
