using System.CommandLine;
using System.Text.Json;
using MimoSharp.Models;
using MimoSharp.Runtime.Generation;
using MimoSharp.Runtime.Sampling;
using MimoSharp.Tokenization;

namespace MimoSharp.Cli.Commands;

/// <summary>`mimo generate`: continue a prompt, streaming tokens, optionally with MTP speculative decoding.</summary>
internal static class GenerateCommand
{
    public static Command Create(TextWriter output)
    {
        var model = CliParsing.ModelOption("Model directory");
        var ids = new Option<string?>("--ids") { Description = "Comma-separated prompt token ids" };
        var promptText = new Option<string?>("--prompt") { Description = "Prompt text (needs the model's tokenizer.json)" };
        var chat = new Option<bool>("--chat") { Description = "Wrap --prompt as a user turn of the chat template" };
        var thinking = new Option<bool>("--thinking") { Description = "With --chat: let the model think first (<think>...</think>)" };
        var stop = new Option<string[]>("--stop") { Description = "Stop strings (repeatable)", AllowMultipleArgumentsPerToken = false };
        var maxTokens = new Option<int?>("--max-tokens") { Description = "Tokens to generate (default: the preset's, else 16)" };
        var draftTokens = new Option<int>("--draft-tokens") { Description = "MTP draft tokens per step, 0..3 (0 = plain decoding)", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print {\"ids\": [...], timings} as JSON" };
        var threads = new Option<int?>("--threads") { Description = "Kernel threads (default: one per core)" };
        var window = LogitsCommand.WindowOption();
        var checkTensors = CliParsing.CheckTensorsOption();
        var sampling = new SamplingFlags();
        var command = new Command("generate", "Continue a prompt, streaming the generated ids (greedy unless sampling flags say otherwise)") { model, ids, promptText, chat, thinking, stop, maxTokens, draftTokens, json, threads, window, checkTensors };
        sampling.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            string? idText = parse.GetValue(ids), text = parse.GetValue(promptText);
            if ((idText is null) == (text is null))
            {
                throw new ArgumentException("give exactly one of --ids 1,2,3 or --prompt TEXT");
            }
            if (parse.GetValue(chat) && text is null)
            {
                throw new ArgumentException("--chat wraps --prompt TEXT; it cannot be used with --ids");
            }
            if (parse.GetValue(thinking) && !parse.GetValue(chat))
            {
                throw new ArgumentException("--thinking asks the chat template to let the model think; it needs --chat (and --prompt TEXT)");
            }
            int[]? givenIds = idText is not null ? CliParsing.ParseIds(idText) : null;
            SamplingOptions samplingOptions = sampling.Build(parse);
            sampling.NoteOverrides(parse, parse.InvocationConfiguration.Error);
            int n = parse.GetValue(maxTokens) ?? (sampling.PresetGiven(parse) ? samplingOptions.MaxTokens : 16);
            if (n < 0)
            {
                throw new ArgumentException($"--max-tokens must be 0 or more, got {n}");
            }
            int drafts = parse.GetValue(draftTokens);
            if (drafts is < 0 or > 3)
            {
                throw new ArgumentException($"--draft-tokens must be 0..3, got {drafts}");
            }
            string dir = CliParsing.ModelDirectory(parse, model);
            using var m = MimoModel.Load(dir, new ModelLoadOptions { Threads = parse.GetValue(threads), WindowConvention = parse.GetValue(window), CheckTensors = parse.GetValue(checkTensors) });
            // Without tokenizer.json (random and test models), text falls back to byte tokens.
            MimoTokenizer? tokenizer = text is not null || MimoTokenizer.Exists(dir) ? CliParsing.LoadTokenizer(dir, m) : null;
            if (text is not null && parse.GetValue(chat))
            {
                text = new ChatPrompt(tokenizer!).Render([new ChatMessage("user", text)], parse.GetValue(thinking));
            }
            int[] prompt = text is not null ? tokenizer!.Encode(text).ToArray() : givenIds!;
            string[] stops = parse.GetValue(stop) ?? [];
            if (stops.Length > 0 && tokenizer is null)
            {
                throw new ArgumentException("--stop needs the model's tokenizer.json to turn ids into text");
            }
            var stopIds = m.Config.EosTokenIds.ToHashSet();
            if (tokenizer is not null)
            {
                stopIds.UnionWith(tokenizer.EosIds);
            }
            var request = new GenerationRequest
            {
                PromptIds = prompt,
                MaxTokens = n,
                DraftTokens = drafts,
                Sampler = new Sampler(samplingOptions, m.VocabSize, prompt.Length, tokenizer?.VocabularySize),
                StopTokenIds = stopIds,
                // With --ids too: a model that ships a tokenizer gives its text (in --json) and honours --stop.
                Text = tokenizer is not null ? new TokenizerTextStream(tokenizer, stops) : null,
            };
            var shownText = new System.Text.StringBuilder();
            bool asJson = parse.GetValue(json);
            var generated = new List<int>();
            GenerationEvent? last = null;
            await foreach (GenerationEvent e in new Generator(m).GenerateAsync(request, cancellationToken))
            {
                if (e.IsFinal)
                {
                    last = e;
                    break;
                }
                generated.Add(e.Token);
                shownText.Append(e.Text);
                if (!asJson)
                {
                    output.Write(text is not null ? e.Text : generated.Count == 1 ? $"{e.Token}" : $",{e.Token}");
                    output.Flush();
                }
            }
            GenerationUsage usage = last!.Usage!;
            shownText.Append(last.Text);
            if (!asJson && text is not null)
            {
                output.Write(last.Text);
            }
            if (asJson)
            {
                output.WriteLine(JsonSerializer.Serialize(new
                {
                    ids = generated,
                    text = request.Text is not null ? shownText.ToString() : null,
                    finish_reason = last.Finish.ToString().ToLowerInvariant(),
                    prompt_tokens = usage.PromptTokens,
                    generated_tokens = usage.CompletionTokens,
                    prefill_seconds = usage.PrefillTime.TotalSeconds,
                    decode_seconds = usage.DecodeTime.TotalSeconds,
                    // null when nothing was timed (--max-tokens 0 runs no forward; one token has no decode interval).
                    prefill_tokens_per_s = Rate(usage.PromptTokens, usage.PrefillTime),
                    decode_tokens_per_s = Rate(usage.CompletionTokens - 1, usage.DecodeTime),
                    draft_tokens = Math.Min(drafts, m.MtpHeads),
                    mean_acceptance_length = usage.MeanAcceptanceLength,
                    head_acceptance_rates = usage.HeadAcceptanceRates,
                }, CliParsing.Json));
            }
            else
            {
                output.WriteLine();
                output.WriteLine($"[{last.Finish.ToString().ToLowerInvariant()}] prefill {usage.PromptTokens} tokens{RateText(usage.PromptTokens, usage.PrefillTime)}, " +
                    $"decode {usage.CompletionTokens} tokens{RateText(usage.CompletionTokens - 1, usage.DecodeTime)}" +
                    (drafts > 0 ? $", acceptance length {usage.MeanAcceptanceLength:F2}" : ""));
            }
            return 0;
        });
        return command;
    }

    /// <summary>Tokens per second, or null when no time was measured for them.</summary>
    internal static double? Rate(int tokens, TimeSpan time) => tokens > 0 && time > TimeSpan.Zero ? tokens / time.TotalSeconds : null;

    private static string RateText(int tokens, TimeSpan time) => Rate(tokens, time) is double rate ? $" at {rate:F1} tok/s" : " (not timed)";
}
