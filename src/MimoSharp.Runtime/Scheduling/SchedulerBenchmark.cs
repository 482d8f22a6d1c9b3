using System.Diagnostics;
using MimoSharp.Models;
using MimoSharp.Runtime.Generation;

namespace MimoSharp.Runtime.Scheduling;

/// <summary>
/// Aggregate decode throughput of <see cref="Streams"/> concurrent greedy streams. <see cref="DecodeTokensPerSecond"/>
/// counts the tokens of the span in which every stream decodes (from the last stream's first token to the first
/// stream's last token), so it measures steps of all the streams; <see cref="SpanTokensPerSecond"/> counts every
/// token after each stream's first, from the earliest first token to the last token of any stream, so it also
/// holds the steps that prefill a late stream's prompt and the tail where fewer streams remain.
/// </summary>
public sealed record BatchThroughput(int Streams, int PromptTokens, int GenTokens, int DraftTokens, double DecodeTokensPerSecond, double StepsPerSecond,
    double SpanTokensPerSecond);

/// <summary>Time to first token of a cold prompt and of the next turn that extends it (prefix cache).</summary>
public sealed record PrefixReuse(int ConversationTokens, double ColdTtftSeconds, double WarmTtftSeconds, int CachedPromptTokens)
{
    public double Speedup => ColdTtftSeconds / Math.Max(WarmTtftSeconds, 1e-9);
}

/// <summary>Inter-token latency of decoding streams while a long prompt is prefilled beside them.</summary>
public sealed record PrefillStall(int Streams, int LongPromptTokens, double MedianItlSeconds, double P99ItlSeconds, double MaxItlSeconds, int Intervals, double LongPromptTtftSeconds)
{
    public double P99OverMedian => P99ItlSeconds / Math.Max(MedianItlSeconds, 1e-12);
}

/// <summary>
/// In-process serving measurements on an <see cref="InferenceScheduler"/> (the server's
/// <c>mimo bench-serve</c> measures the same over HTTP). Prompts are random ids; decoding is greedy.
/// </summary>
public static class SchedulerBenchmark
{
    private static int[] RandomTokens(int count, int vocab, Random random) => Enumerable.Range(0, count).Select(_ => random.Next(vocab)).ToArray();

    /// <summary>
    /// <paramref name="streams"/> requests at once. Decode tok/s = the tokens that arrive while every stream
    /// decodes, over that span; the span figure = tokens after each stream's first, over the span from the
    /// earliest first token to the last token of any stream (see <see cref="BatchThroughput"/>).
    /// </summary>
    public static async Task<BatchThroughput> ThroughputAsync(MimoModel model, int streams, int promptTokens, int genTokens, int draftTokens, int seed = 1)
    {
        var random = new Random(seed);
        using var scheduler = new InferenceScheduler(model, new SchedulerOptions { MaxRunningSequences = streams, PrefixCache = false, MaxDraftTokens = draftTokens });
        // Warm-up, not measured: as many streams as measured, for about 32 steps, so the batch's own code
        // paths (a 1-row step and an 8-row step run different kernels) reach the JIT's optimized tier
        // before the clock starts, as Benchmark.Run's warm-up does for one sequence.
        await Task.WhenAll(Enumerable.Range(0, streams)
            .Select(_ => new GenerationRequest { PromptIds = RandomTokens(16, model.VocabSize, random), MaxTokens = 32, DraftTokens = draftTokens })
            .ToArray()
            .Select(r => Task.Run(() => RunOne(scheduler, r))));
        long steps0 = scheduler.Stats.Steps;
        var requests = Enumerable.Range(0, streams)
            .Select(_ => new GenerationRequest { PromptIds = RandomTokens(promptTokens, model.VocabSize, random), MaxTokens = genTokens, DraftTokens = draftTokens })
            .ToArray();
        var timings = await Task.WhenAll(requests.Select(r => Task.Run(() => RunOne(scheduler, r))));
        long firstToken = timings.Min(t => t.Times[0]);
        long lastToken = timings.Max(t => t.Times[^1]);
        double seconds = Stopwatch.GetElapsedTime(firstToken, lastToken).TotalSeconds;
        int tokens = timings.Sum(t => t.Times.Count - 1);
        long allDecodingFrom = timings.Max(t => t.Times[0]);
        long allDecodingTo = timings.Min(t => t.Times[^1]);
        int steadyTokens = timings.Sum(t => t.Times.Count(time => time > allDecodingFrom && time <= allDecodingTo));
        double steadySeconds = Stopwatch.GetElapsedTime(allDecodingFrom, allDecodingTo).TotalSeconds;
        double steady = steadyTokens > 0 ? steadyTokens / steadySeconds : tokens / seconds;
        return new BatchThroughput(streams, promptTokens, genTokens, draftTokens, steady, (scheduler.Stats.Steps - steps0) / seconds, tokens / seconds);
    }

    /// <summary>
    /// A cold prompt of <paramref name="conversationTokens"/>, then the next turn (that prompt, its
    /// answer and <paramref name="newTokens"/> more) through the prefix cache; each TTFT measured.
    /// </summary>
    public static async Task<PrefixReuse> PrefixReuseAsync(MimoModel model, int conversationTokens, int newTokens = 32, int answerTokens = 16, int draftTokens = 0, int seed = 2)
    {
        var random = new Random(seed);
        using var scheduler = new InferenceScheduler(model, new SchedulerOptions { MaxRunningSequences = 1, MaxDraftTokens = draftTokens });
        await RunOne(scheduler, new GenerationRequest { PromptIds = RandomTokens(64, model.VocabSize, random), MaxTokens = 4, DraftTokens = draftTokens }); // warm-up
        var first = new GenerationRequest { PromptIds = RandomTokens(conversationTokens - answerTokens - newTokens, model.VocabSize, random), MaxTokens = answerTokens, DraftTokens = draftTokens };
        var firstRun = await RunOne(scheduler, first);
        int[] next = [.. first.PromptIds, .. firstRun.Tokens, .. RandomTokens(newTokens, model.VocabSize, random)];
        // Cold: a different conversation of the same length (nothing cached matches it).
        var cold = await RunOne(scheduler, first with { PromptIds = RandomTokens(next.Length, model.VocabSize, random), MaxTokens = 1 });
        var warm = await RunOne(scheduler, first with { PromptIds = next, MaxTokens = 1 });
        return new PrefixReuse(next.Length, cold.Ttft, warm.Ttft, warm.CachedPromptTokens);
    }

    /// <summary>
    /// <paramref name="streams"/> streams decode; after <paramref name="warmTokens"/> tokens each, a prompt of
    /// <paramref name="longPromptTokens"/> arrives. The streams' inter-token latencies are taken from that
    /// moment until the long prompt's first token (its whole prefill), then the streams are cancelled.
    /// </summary>
    public static async Task<PrefillStall> PrefillStallAsync(MimoModel model, int streams, int longPromptTokens, int warmTokens = 16, int seed = 3)
    {
        var random = new Random(seed);
        using var scheduler = new InferenceScheduler(model, new SchedulerOptions { MaxRunningSequences = streams + 1, PrefixCache = false });
        await RunOne(scheduler, new GenerationRequest { PromptIds = RandomTokens(16, model.VocabSize, random), MaxTokens = 8 }); // warm-up
        using var stop = new CancellationTokenSource();
        int context = model.Config.MaxPositionEmbeddings > 0 ? model.Config.MaxPositionEmbeddings : 1 << 20;
        var decoding = Enumerable.Range(0, streams)
            .Select(_ => new GenerationRequest { PromptIds = RandomTokens(16, model.VocabSize, random), MaxTokens = Math.Min(100_000, context - 32) })
            .Select(r => Task.Run(() => RunOne(scheduler, r, stop.Token)))
            .ToArray();
        while (scheduler.Stats.GeneratedTokens < (long)streams * warmTokens)
        {
            await Task.Delay(5);
        }
        long arrival = Stopwatch.GetTimestamp();
        var longRun = await RunOne(scheduler, new GenerationRequest { PromptIds = RandomTokens(longPromptTokens, model.VocabSize, random), MaxTokens = 1 });
        long firstToken = longRun.Times[0];
        stop.Cancel();
        var runs = await Task.WhenAll(decoding);
        var intervals = new List<double>();
        foreach (var run in runs)
        {
            for (int i = 1; i < run.Times.Count; i++)
            {
                if (run.Times[i] >= arrival && run.Times[i] <= firstToken)
                {
                    intervals.Add(Stopwatch.GetElapsedTime(run.Times[i - 1], run.Times[i]).TotalSeconds);
                }
            }
        }
        intervals.Sort();
        if (intervals.Count == 0)
        {
            throw new InvalidOperationException("no stream produced a token while the long prompt was prefilled");
        }
        return new PrefillStall(streams, longPromptTokens, Percentile(intervals, 0.5), Percentile(intervals, 0.99), intervals[^1], intervals.Count,
            Stopwatch.GetElapsedTime(arrival, firstToken).TotalSeconds);
    }

    private static double Percentile(List<double> sorted, double q) => sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(q * sorted.Count) - 1)];

    private sealed record Run(List<long> Times, List<int> Tokens, double Ttft, int CachedPromptTokens);

    /// <summary>One request: each token's arrival time, the tokens, TTFT and the cached prompt tokens.</summary>
    private static async Task<Run> RunOne(IGenerationEngine engine, GenerationRequest request, CancellationToken cancellationToken = default)
    {
        long start = Stopwatch.GetTimestamp();
        var times = new List<long>(request.MaxTokens > 4096 ? 4096 : request.MaxTokens);
        var tokens = new List<int>();
        int cached = 0;
        await foreach (GenerationEvent e in engine.GenerateAsync(request, cancellationToken).ConfigureAwait(false))
        {
            if (e.IsFinal)
            {
                cached = e.Usage!.CachedPromptTokens;
                break;
            }
            times.Add(Stopwatch.GetTimestamp());
            tokens.Add(e.Token);
        }
        double ttft = times.Count > 0 ? Stopwatch.GetElapsedTime(start, times[0]).TotalSeconds : double.NaN;
        return new Run(times, tokens, ttft, cached);
    }
}
