using System.CommandLine;
using System.Diagnostics;
using MimoSharp.Models;
using MimoSharp.Runtime.Generation;
using MimoSharp.Runtime.Sampling;
using MimoSharp.Tokenization;

namespace MimoSharp.Cli.Commands;

/// <summary>
/// `mimo chat`: an interactive conversation with history and streaming; thinking is shown apart from
/// the answer. Commands: /reset, /thinking on|off, /preset NAME, /exit.
/// </summary>
internal static class ChatCommand
{
    public static Command Create(TextWriter output, TextReader input)
    {
        var model = CliParsing.ModelOption();
        var system = new Option<string?>("--system") { Description = "System prompt" };
        var thinkingOption = new Option<bool>("--thinking") { Description = "Start with thinking on" };
        var draftTokens = new Option<int>("--draft-tokens") { Description = "MTP draft tokens per step, 0..3", DefaultValueFactory = _ => 0 };
        var threads = new Option<int?>("--threads") { Description = "Kernel threads" };
        var maxTokens = new Option<int?>("--max-tokens") { Description = "Longest answer (default: the preset's)" };
        var window = LogitsCommand.WindowOption();
        var checkTensors = CliParsing.CheckTensorsOption();
        var sampling = new SamplingFlags();
        var command = new Command("chat", "Chat with a model in the terminal") { model, system, thinkingOption, draftTokens, threads, maxTokens, window, checkTensors };
        sampling.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            string dir = CliParsing.ModelDirectory(parse, model);
            if (!File.Exists(Path.Combine(dir, "config.json")))
            {
                throw new ArgumentException($"{dir}: no config.json; expected a model directory");
            }
            int drafts = parse.GetValue(draftTokens);
            if (drafts is < 0 or > 3)
            {
                throw new ArgumentException($"--draft-tokens must be 0..3, got {drafts}");
            }
            output.Write($"loading {dir} ... ");
            output.Flush();
            long start = Stopwatch.GetTimestamp();
            SamplingOptions samplingOptions = sampling.PresetGiven(parse) ? sampling.Build(parse) : sampling.Build(parse, "chat");
            sampling.NoteOverrides(parse, parse.InvocationConfiguration.Error);
            using var m = MimoModel.Load(dir, new ModelLoadOptions { Threads = parse.GetValue(threads), WindowConvention = parse.GetValue(window), CheckTensors = parse.GetValue(checkTensors) });
            MimoTokenizer tokenizer = CliParsing.LoadTokenizer(dir, m);
            bool byteLevel = !MimoTokenizer.Exists(dir);
            output.WriteLine($"ready in {Stopwatch.GetElapsedTime(start).TotalSeconds:F1} s ({m.Config.NumHiddenLayers} layers, {m.MtpHeads} MTP heads). /reset, /thinking on|off, /preset NAME, /exit");
            if (byteLevel)
            {
                output.WriteLine("(no tokenizer.json in the model directory: text is spelt byte by byte, as for random test models)");
            }

            var chatPrompt = new ChatPrompt(tokenizer);
            var generator = new Generator(m);
            var history = new List<ChatMessage>();
            if (parse.GetValue(system) is string systemPrompt)
            {
                history.Add(new ChatMessage("system", systemPrompt));
            }
            bool thinking = parse.GetValue(thinkingOption);
            if (parse.GetValue(maxTokens) is int limit)
            {
                samplingOptions = samplingOptions with { MaxTokens = limit };
            }
            var stopIds = m.Config.EosTokenIds.ToHashSet();
            stopIds.UnionWith(tokenizer.EosIds);

            while (!cancellationToken.IsCancellationRequested)
            {
                output.Write("> ");
                output.Flush();
                string? line = input.ReadLine();
                if (line is null || line.Trim() == "/exit")
                {
                    break;
                }
                if (line.StartsWith('/'))
                {
                    string[] words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    switch (words[0])
                    {
                        case "/reset":
                            history.RemoveAll(h => h.Role != "system");
                            output.WriteLine("(conversation cleared)");
                            break;
                        case "/thinking" when words.Length == 2 && words[1] is "on" or "off":
                            thinking = words[1] == "on";
                            output.WriteLine($"(thinking {words[1]})");
                            break;
                        case "/preset" when words.Length == 2:
                            try
                            {
                                samplingOptions = SamplingPresets.Get(words[1]) with { MaxTokens = parse.GetValue(maxTokens) ?? SamplingPresets.Get(words[1]).MaxTokens };
                                output.WriteLine($"(preset {words[1]}: temperature {samplingOptions.Temperature}, top-p {samplingOptions.TopP}, max {samplingOptions.MaxTokens})");
                            }
                            catch (ArgumentException ex)
                            {
                                output.WriteLine($"({ex.Message})");
                            }
                            break;
                        default:
                            output.WriteLine("(commands: /reset, /thinking on|off, /preset NAME, /exit)");
                            break;
                    }
                    continue;
                }
                if (line.Length == 0)
                {
                    continue;
                }
                history.Add(new ChatMessage("user", line));
                string prompt = chatPrompt.Render(history, thinking);
                int[] ids = tokenizer.Encode(prompt).ToArray();
                int room = m.Config.MaxPositionEmbeddings - ids.Length;
                if (room <= 0)
                {
                    output.WriteLine($"(the conversation is {ids.Length} tokens, beyond the context of {m.Config.MaxPositionEmbeddings}; /reset to start over)");
                    history.RemoveAt(history.Count - 1);
                    continue;
                }
                var request = new GenerationRequest
                {
                    PromptIds = ids,
                    MaxTokens = Math.Min(samplingOptions.MaxTokens, room),
                    DraftTokens = drafts,
                    Sampler = new Sampler(samplingOptions, m.VocabSize, ids.Length, tokenizer.VocabularySize),
                    StopTokenIds = stopIds,
                    Text = new TokenizerTextStream(tokenizer, skipSpecialTokens: false),
                };
                // With thinking off nothing is shown as thinking (no label), even if the model writes <think> tags.
                ReasoningSplitter? splitter = thinking ? new ReasoningSplitter(startInReasoning: true) : null;
                var answer = new System.Text.StringBuilder();
                bool shownThinkingLabel = false;
                GenerationUsage? usage = null;
                void Show(string text)
                {
                    (string reasoning, string content) = splitter?.Push(text) ?? ("", text);
                    if (reasoning.Length > 0)
                    {
                        if (!shownThinkingLabel)
                        {
                            output.Write("[thinking] ");
                            shownThinkingLabel = true;
                        }
                        output.Write(CliParsing.TerminalSafe(reasoning));
                    }
                    if (content.Length > 0)
                    {
                        if (shownThinkingLabel && answer.Length == 0)
                        {
                            output.Write("\n[answer] ");
                        }
                        answer.Append(content);
                        output.Write(CliParsing.TerminalSafe(content));
                    }
                    output.Flush();
                }
                await foreach (GenerationEvent e in generator.GenerateAsync(request, cancellationToken))
                {
                    Show(e.Text);
                    usage = e.Usage ?? usage;
                }
                (string restReasoning, string restContent) = splitter?.Flush() ?? ("", "");
                output.Write(CliParsing.TerminalSafe(restReasoning + restContent));
                answer.Append(restContent);
                history.Add(new ChatMessage("assistant", answer.ToString().Trim()));
                output.WriteLine();
                if (usage is not null)
                {
                    output.WriteLine($"({usage.CompletionTokens} tokens, {usage.DecodeTokensPerSecond:F1} tok/s)");
                }
            }
            return 0;
        });
        return command;
    }
}
