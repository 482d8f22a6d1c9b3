using System.Diagnostics;
using MimoSharp.Models;
using MimoSharp.Runtime.Speculative;

namespace MimoSharp.Runtime.Generation;

/// <summary>One configuration's figures over repetitions.</summary>
public sealed record BenchmarkResult(
    int DraftTokens,
    int PromptTokens,
    int GeneratedTokens,
    double[] PrefillTokensPerSecond,
    double[] DecodeTokensPerSecond,
    double MeanAcceptanceLength,
    IReadOnlyList<double> HeadAcceptanceRates)
{
    public static (double Mean, double StdDev) Stats(double[] values)
    {
        double mean = values.Average();
        double variance = values.Length > 1 ? values.Sum(v => (v - mean) * (v - mean)) / (values.Length - 1) : 0;
        return (mean, Math.Sqrt(variance));
    }
}

/// <summary>
/// Prefill and decode throughput of a model: a random prompt, then greedy decoding with 0..3 draft
/// tokens, repeated. Decode tok/s counts committed tokens over the decode time (speculative steps
/// commit several).
/// </summary>
public static class Benchmark
{
    public static BenchmarkResult Run(MimoModel model, int promptTokens, int genTokens, int draftTokens, int repetitions, int seed = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(promptTokens);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(genTokens);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(repetitions);
        var random = new Random(seed);
        int[] prompt = Enumerable.Range(0, promptTokens).Select(_ => random.Next(model.VocabSize)).ToArray();
        var prefill = new double[repetitions];
        var decode = new double[repetitions];
        AcceptanceStats? stats = null;
        Span<int> emitted = stackalloc int[4];
        // Warm-up, not measured: a short prefill and a few steps bring the JIT's tiered code to its
        // optimized tier and fault in workspaces, so the first repetition measures the same as the others.
        for (int w = 0; w < 2; w++)
        {
            var warm = new DecodingSession(model, GreedySampler.Instance, draftTokens);
            warm.Prefill(prompt.AsSpan(0, Math.Min(promptTokens, 64)));
            for (int produced = 1; produced < Math.Min(genTokens, 16);)
            {
                produced += warm.Step(emitted);
            }
        }
        for (int r = 0; r < repetitions; r++)
        {
            var session = new DecodingSession(model, GreedySampler.Instance, draftTokens);
            long start = Stopwatch.GetTimestamp();
            session.Prefill(prompt);
            prefill[r] = promptTokens / Stopwatch.GetElapsedTime(start).TotalSeconds;
            int produced = 1;
            start = Stopwatch.GetTimestamp();
            while (produced < genTokens)
            {
                produced += session.Step(emitted);
            }
            decode[r] = (produced - 1) / Stopwatch.GetElapsedTime(start).TotalSeconds;
            stats = session.Stats;
        }
        return new BenchmarkResult(draftTokens, promptTokens, genTokens, prefill, decode,
            stats!.MeanAcceptanceLength, stats.HeadAcceptanceRates);
    }
}
