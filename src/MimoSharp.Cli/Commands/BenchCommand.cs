using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using MimoSharp.Models;
using MimoSharp.Models.Loading;
using MimoSharp.Runtime.Generation;
using MimoSharp.Tensors.Kernels;

namespace MimoSharp.Cli.Commands;

/// <summary>`mimo bench`: prefill and decode tokens/s (with and without MTP drafts), bytes per token, bandwidth, peak memory.</summary>
internal static class BenchCommand
{
    public static Command Create(TextWriter output)
    {
        var model = CliParsing.ModelOption("Model directory");
        var threads = new Option<int?>("--threads") { Description = "Kernel threads (default: one per core)" };
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "Prompt length", DefaultValueFactory = _ => 512 };
        var genTokens = new Option<int>("--gen-tokens") { Description = "Tokens to generate", DefaultValueFactory = _ => 128 };
        var drafts = new Option<string>("--draft-tokens") { Description = "Draft tokens per step, 0..3; a comma list runs each", DefaultValueFactory = _ => "0,3" };
        var repetitions = new Option<int>("--repetitions") { Description = "Runs per configuration", DefaultValueFactory = _ => 3 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var residency = new Option<WeightResidency>("--weights") { Description = "Read the weights into memory, map them, or Auto (read when they fit in half the memory)", DefaultValueFactory = _ => WeightResidency.Auto };
        var isa = new Option<KernelIsa>("--isa") { Description = "Kernel path: Scalar, Vector128, Vector256 or Vector512 (default Auto: the widest this machine has)", DefaultValueFactory = _ => KernelIsa.Auto };
        var exact = new Option<bool>("--exact-activations") { Description = "Q8_0 / Q4_0: keep activations float (the float dot product of the dequantized weights) instead of quantizing them to int8 per group of 32" };
        var command = new Command("bench", "Measure prefill and decode throughput") { model, threads, promptTokens, genTokens, drafts, repetitions, residency, isa, exact, json };
        command.SetAction(parse =>
        {
            int[] draftCounts = CliParsing.ParseIds(parse.GetValue(drafts)!, "--draft-tokens");
            foreach (int d in draftCounts)
            {
                if (d > 3)
                {
                    throw new ArgumentException($"--draft-tokens: {d} is outside 0..3");
                }
            }
            // Resolving throws, naming the widest supported path, when the machine lacks the one asked for.
            var kernels = new KernelMode(KernelIsas.Resolve(parse.GetValue(isa)), parse.GetValue(exact));
            using var m = MimoModel.Load(CliParsing.ModelDirectory(parse, model), new ModelLoadOptions { Threads = parse.GetValue(threads), Residency = parse.GetValue(residency), Kernels = kernels });
            long bytesPerToken = m.WeightBytesPerToken;
            var results = draftCounts.Select(d => Benchmark.Run(m, parse.GetValue(promptTokens), parse.GetValue(genTokens), d, parse.GetValue(repetitions))).ToList();
            long peak = Process.GetCurrentProcess().PeakWorkingSet64;
            // After the runs (and after reading the peak): the probe's buffer is not the model's memory.
            double machineBandwidth = MemoryProbe.ReadBandwidth(m.Pool);
            long checkpointBytes = Checkpoint.FileBytes(CliParsing.ModelDirectory(parse, model));
            if (parse.GetValue(json))
            {
                BenchmarkResult first = results[0];
                var (prefill, prefillSd) = BenchmarkResult.Stats(first.PrefillTokensPerSecond);
                var (decode, decodeSd) = BenchmarkResult.Stats(first.DecodeTokensPerSecond);
                output.WriteLine(JsonSerializer.Serialize(new
                {
                    threads = parse.GetValue(threads) ?? Environment.ProcessorCount,
                    prompt_tokens = first.PromptTokens,
                    gen_tokens = first.GeneratedTokens,
                    draft_tokens = first.DraftTokens,
                    prefill_tokens_per_s = prefill,
                    prefill_tokens_per_s_sd = prefillSd,
                    decode_tokens_per_s = decode,
                    decode_tokens_per_s_sd = decodeSd,
                    weight_bytes_per_token = bytesPerToken,
                    decode_bandwidth_bytes_per_s = decode * bytesPerToken,
                    machine_read_bandwidth_bytes_per_s = machineBandwidth,
                    weight_residency = m.Residency.ToString().ToLowerInvariant(),
                    kernel_isa = m.Kernels.Isa.ToString(),
                    exact_activations = m.Kernels.ExactActivations,
                    peak_resident_bytes = peak,
                    checkpoint_bytes = checkpointBytes,
                    runs = results.Select(r => new
                    {
                        draft_tokens = r.DraftTokens,
                        prefill_tokens_per_s = BenchmarkResult.Stats(r.PrefillTokensPerSecond).Mean,
                        decode_tokens_per_s = BenchmarkResult.Stats(r.DecodeTokensPerSecond).Mean,
                        decode_tokens_per_s_sd = BenchmarkResult.Stats(r.DecodeTokensPerSecond).StdDev,
                        mean_acceptance_length = r.MeanAcceptanceLength,
                        head_acceptance_rates = r.HeadAcceptanceRates,
                    }),
                }, CliParsing.Json));
                return 0;
            }
            output.WriteLine($"weights read per decoded token: {CliParsing.FormatBytes(bytesPerToken)}; checkpoint {CliParsing.FormatBytes(checkpointBytes)} ({m.Residency.ToString().ToLowerInvariant()}); peak resident {CliParsing.FormatBytes(peak)}");
            output.WriteLine($"machine read bandwidth ({m.Pool.ThreadCount} threads): {machineBandwidth / 1e9:F1} GB/s; kernels {m.Kernels.Isa}{(m.Kernels.ExactActivations ? " (exact activations)" : "")}");
            foreach (BenchmarkResult r in results)
            {
                var (prefill, prefillSd) = BenchmarkResult.Stats(r.PrefillTokensPerSecond);
                var (decode, decodeSd) = BenchmarkResult.Stats(r.DecodeTokensPerSecond);
                output.WriteLine($"draft {r.DraftTokens}: prefill {r.PromptTokens} tok at {prefill:F1} ± {prefillSd:F1} tok/s; decode {r.GeneratedTokens} tok at {decode:F1} ± {decodeSd:F1} tok/s " +
                    $"({decode * bytesPerToken / 1e9:F1} GB/s, {decode * bytesPerToken / machineBandwidth:P0} of the machine's); acceptance length {r.MeanAcceptanceLength:F2}" +
                    (r.DraftTokens > 0 ? $", per head {string.Join(" ", r.HeadAcceptanceRates.Select(a => a.ToString("F2")))}" : ""));
            }
            return 0;
        });
        return command;
    }
}
