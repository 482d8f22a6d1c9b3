using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using MimoSharp.Models;
using MimoSharp.Tokenization;
using MimoSharp.Training;

namespace MimoSharp.Cli.Commands;

/// <summary>`mimo eval`: held-out tokens, bytes, NLL per token and bits per byte of a text file under a model.</summary>
internal static class EvalCommand
{
    public static Command Create(TextWriter output)
    {
        var model = CliParsing.ModelOption("Model directory (config.json, safetensors, tokenizer.json)");
        var file = new Option<string>("--file") { Description = "UTF-8 text file to score", Required = true };
        var json = new Option<bool>("--json") { Description = "Print {\"tokens\":..,\"bytes\":..,\"nll_per_token\":..,\"bits_per_byte\":..}" };
        var context = new Option<int?>("--context") { Description = "Tokens per scored window (default: max_position_embeddings, at most 2048)" };
        var threads = new Option<int?>("--threads") { Description = "Kernel threads (default: one per core)" };
        var command = new Command("eval", "Score a text: tokens, bytes, NLL per token and bits per byte") { model, file, json, context, threads };
        command.SetAction(parse =>
        {
            string path = parse.GetValue(file)!;
            if (!File.Exists(path))
            {
                throw new ArgumentException($"--file {path}: not found");
            }
            string dir = CliParsing.ModelDirectory(parse, model);
            if (!MimoTokenizer.Exists(dir))
            {
                throw new ArgumentException($"--model {dir}: has no tokenizer.json; eval needs the model's tokenizer");
            }
            string text;
            try
            {
                text = File.ReadAllText(path, new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true));
            }
            catch (System.Text.DecoderFallbackException)
            {
                throw new ArgumentException($"--file {path}: is not valid UTF-8 text");
            }
            using var m = MimoModel.Load(dir, new ModelLoadOptions { Threads = parse.GetValue(threads) });
            MimoTokenizer tokenizer = MimoTokenizer.Load(dir);
            int window = parse.GetValue(context) ?? Math.Min(2048, m.Config.MaxPositionEmbeddings > 0 ? m.Config.MaxPositionEmbeddings : 2048);
            TextEvaluation e = HeldOutEvaluator.Evaluate(m, tokenizer, text, window);
            if (parse.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
                {
                    ["tokens"] = e.Tokens, ["bytes"] = e.Bytes, ["nll_per_token"] = e.NllPerToken, ["bits_per_byte"] = e.BitsPerByte,
                }));
            }
            else
            {
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{path}: {e.Tokens} tokens, {e.Bytes} bytes, NLL {e.NllPerToken:F4} nats/token, {e.BitsPerByte:F4} bits/byte"));
            }
            return 0;
        });
        return command;
    }
}
