using System.CommandLine;
using System.Text.Json;
using MimoSharp.Models;
using MimoSharp.Runtime.Scheduling;

namespace MimoSharp.Cli.Commands;

/// <summary>
/// `mimo bench-batch`: the batching scheduler in process. Aggregate decode tok/s per number of
/// concurrent streams, the prefix cache's second-turn TTFT against a cold prompt of the same length,
/// and the inter-token latency of decoding streams while a long prompt is prefilled beside them.
/// </summary>
internal static class BenchBatchCommand
{
    public static Command Create(TextWriter output)
    {
        var model = new Option<string>("--model") { Description = "Model directory", Required = true };
        var threads = new Option<int?>("--threads") { Description = "Kernel threads (default: one per core)" };
        var streams = new Option<string>("--streams") { Description = "Concurrent streams, a comma list (throughput)", DefaultValueFactory = _ => "1,8" };
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "Prompt length of each stream (throughput)", DefaultValueFactory = _ => 32 };
        var genTokens = new Option<int>("--gen-tokens") { Description = "Tokens each stream generates (throughput)", DefaultValueFactory = _ => 64 };
        var drafts = new Option<int>("--draft-tokens") { Description = "MTP draft tokens per step, 0..3 (throughput)", DefaultValueFactory = _ => 0 };
        var conversation = new Option<int>("--conversation-tokens") { Description = "Second-turn prompt length (prefix cache); 0 skips it", DefaultValueFactory = _ => 2000 };
        var longPrompt = new Option<int>("--long-prompt-tokens") { Description = "Prompt that arrives while streams decode; 0 skips it", DefaultValueFactory = _ => 4096 };
        var stallStreams = new Option<int>("--stall-streams") { Description = "Streams decoding while the long prompt arrives", DefaultValueFactory = _ => 4 };
        var rounds = new Option<int>("--rounds")
        {
            Description = "Times the --streams list is measured, alternating (bandwidth drifts within minutes: the means and the ratio per round compare counts measured in the same minutes)",
            DefaultValueFactory = _ => 1,
        };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var command = new Command("bench-batch", "Measure the batching scheduler: concurrent decode throughput, prefix-cache TTFT, ITL under chunked prefill")
        {
            model, threads, streams, promptTokens, genTokens, drafts, conversation, longPrompt, stallStreams, rounds, json,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            int[] counts = CliParsing.ParseIds(parse.GetValue(streams)!, "--streams");
            if (counts.Any(c => c < 1))
            {
                throw new ArgumentException("--streams: every count must be at least 1");
            }
            int d = parse.GetValue(drafts);
            if (d is < 0 or > 3)
            {
                throw new ArgumentException($"--draft-tokens: {d} is outside 0..3");
            }
            int roundCount = parse.GetValue(rounds);
            if (roundCount < 1)
            {
                throw new ArgumentException($"--rounds: {roundCount} is not a positive count");
            }
            using var m = MimoModel.Load(parse.GetValue(model)!, new ModelLoadOptions { Threads = parse.GetValue(threads) });
            var throughput = new List<BatchThroughput>();
            for (int round = 0; round < roundCount; round++)
            {
                BatchThroughput? first = null;
                foreach (int count in counts)
                {
                    BatchThroughput t = await SchedulerBenchmark.ThroughputAsync(m, count, parse.GetValue(promptTokens), parse.GetValue(genTokens), d);
                    throughput.Add(t);
                    first ??= t;
                    if (!parse.GetValue(json))
                    {
                        output.WriteLine((roundCount > 1 ? $"round {round + 1}: " : "")
                            + $"{t.Streams,3} streams: {t.DecodeTokensPerSecond,8:F1} decode tok/s aggregate while all decode"
                            + (t != first ? $", {t.DecodeTokensPerSecond / first.DecodeTokensPerSecond:F2}x {first.Streams} stream(s)" : "")
                            + $"; over the whole span {t.SpanTokensPerSecond:F1} tok/s"
                            + (t != first ? $" ({t.SpanTokensPerSecond / first.SpanTokensPerSecond:F2}x)" : "")
                            + $", {t.StepsPerSecond:F1} steps/s");
                    }
                }
            }
            // Per count: the mean and sd over rounds, and the ratio to the first count, round by round.
            var summary = counts.Distinct().Select(count =>
            {
                double[] rates = throughput.Where(t => t.Streams == count).Select(t => t.DecodeTokensPerSecond).ToArray();
                double[] ratios = Enumerable.Range(0, roundCount)
                    .Select(r => throughput[r * counts.Length + Array.IndexOf(counts, count)].DecodeTokensPerSecond / throughput[r * counts.Length].DecodeTokensPerSecond)
                    .ToArray();
                return (Streams: count, Rate: MimoSharp.Runtime.Generation.BenchmarkResult.Stats(rates), Ratio: MimoSharp.Runtime.Generation.BenchmarkResult.Stats(ratios));
            }).ToArray();
            if (roundCount > 1 && !parse.GetValue(json))
            {
                foreach (var c in summary)
                {
                    output.WriteLine($"mean of {roundCount} rounds: {c.Streams,3} streams {c.Rate.Mean:F1} ± {c.Rate.StdDev:F1} decode tok/s"
                        + (c.Streams != counts[0] ? $", {c.Ratio.Mean:F2} ± {c.Ratio.StdDev:F2}x {counts[0]} stream(s) (ratio of the means {c.Rate.Mean / summary[0].Rate.Mean:F2}x)" : ""));
                }
            }
            PrefixReuse? prefix = parse.GetValue(conversation) > 0 ? await SchedulerBenchmark.PrefixReuseAsync(m, parse.GetValue(conversation)) : null;
            if (prefix is not null && !parse.GetValue(json))
            {
                output.WriteLine($"second turn of {prefix.ConversationTokens} tokens: TTFT {prefix.WarmTtftSeconds * 1000:F0} ms ({prefix.CachedPromptTokens} cached) vs cold {prefix.ColdTtftSeconds * 1000:F0} ms: {prefix.Speedup:F1}x");
            }
            PrefillStall? stall = parse.GetValue(longPrompt) > 0 ? await SchedulerBenchmark.PrefillStallAsync(m, parse.GetValue(stallStreams), parse.GetValue(longPrompt)) : null;
            if (stall is not null && !parse.GetValue(json))
            {
                output.WriteLine($"{stall.LongPromptTokens}-token prompt beside {stall.Streams} streams: ITL median {stall.MedianItlSeconds * 1000:F1} ms, p99 {stall.P99ItlSeconds * 1000:F1} ms ({stall.P99OverMedian:F2}x), max {stall.MaxItlSeconds * 1000:F1} ms over {stall.Intervals} intervals; its TTFT {stall.LongPromptTtftSeconds:F1} s");
            }
            if (parse.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(new
                {
                    threads = parse.GetValue(threads) ?? Environment.ProcessorCount,
                    throughput = throughput.Select(t => new
                    {
                        streams = t.Streams,
                        prompt_tokens = t.PromptTokens,
                        gen_tokens = t.GenTokens,
                        draft_tokens = t.DraftTokens,
                        decode_tokens_per_s = t.DecodeTokensPerSecond,
                        steps_per_s = t.StepsPerSecond,
                        span_tokens_per_s = t.SpanTokensPerSecond,
                    }),
                    rounds = roundCount,
                    summary = summary.Select(c => new
                    {
                        streams = c.Streams,
                        decode_tokens_per_s = c.Rate.Mean,
                        decode_tokens_per_s_sd = c.Rate.StdDev,
                        speedup_over_first = c.Ratio.Mean,
                        speedup_over_first_sd = c.Ratio.StdDev,
                    }),
                    prefix = prefix is null ? null : new
                    {
                        conversation_tokens = prefix.ConversationTokens,
                        cold_ttft_s = prefix.ColdTtftSeconds,
                        warm_ttft_s = prefix.WarmTtftSeconds,
                        cached_prompt_tokens = prefix.CachedPromptTokens,
                        speedup = prefix.Speedup,
                    },
                    prefill_stall = stall is null ? null : new
                    {
                        streams = stall.Streams,
                        long_prompt_tokens = stall.LongPromptTokens,
                        itl_median_s = stall.MedianItlSeconds,
                        itl_p99_s = stall.P99ItlSeconds,
                        itl_max_s = stall.MaxItlSeconds,
                        intervals = stall.Intervals,
                        p99_over_median = stall.P99OverMedian,
                        long_prompt_ttft_s = stall.LongPromptTtftSeconds,
                    },
                }, CliParsing.Json));
            }
            return 0;
        });
        return command;
    }
}
