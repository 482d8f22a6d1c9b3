using System.CommandLine;
using System.Text.Json;
using MimoSharp.Models;
using MimoSharp.Runtime.Generation;

namespace MimoSharp.Cli.Commands;

/// <summary>`mimo generate`: greedy continuation of token ids.</summary>
internal static class GenerateCommand
{
    public static Command Create(TextWriter output)
    {
        var model = new Option<string>("--model") { Description = "Model directory", Required = true };
        var ids = new Option<string>("--ids") { Description = "Comma-separated prompt token ids", Required = true };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Tokens to generate", DefaultValueFactory = _ => 16 };
        var json = new Option<bool>("--json") { Description = "Print {\"ids\": [...], timings} as JSON" };
        var threads = new Option<int?>("--threads") { Description = "Kernel threads (default: one per core)" };
        var window = LogitsCommand.WindowOption();
        var command = new Command("generate", "Continue a prompt greedily") { model, ids, maxTokens, json, threads, window };
        command.SetAction(parse =>
        {
            int[] prompt = CliParsing.ParseIds(parse.GetValue(ids)!);
            int n = parse.GetValue(maxTokens);
            if (n < 0)
            {
                throw new ArgumentException($"--max-tokens must be 0 or more, got {n}");
            }
            using var m = MimoModel.Load(parse.GetValue(model)!, new ModelLoadOptions { Threads = parse.GetValue(threads), WindowConvention = parse.GetValue(window) });
            GreedyResult result = new GreedyDecoder(m).Generate(prompt, n, m.Config.EosTokenIds.ToHashSet());
            if (parse.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(new
                {
                    ids = result.Ids,
                    prompt_tokens = result.PromptTokens,
                    generated_tokens = result.Ids.Length,
                    prefill_seconds = result.PrefillTime.TotalSeconds,
                    decode_seconds = result.DecodeTime.TotalSeconds,
                    prefill_tokens_per_s = result.PrefillTokensPerSecond,
                    decode_tokens_per_s = result.DecodeTokensPerSecond,
                }));
            }
            else
            {
                output.WriteLine(string.Join(",", result.Ids));
                output.WriteLine($"prefill {result.PromptTokens} tokens at {result.PrefillTokensPerSecond:F1} tok/s, decode {result.Ids.Length} tokens at {result.DecodeTokensPerSecond:F1} tok/s");
            }
            return 0;
        });
        return command;
    }
}
