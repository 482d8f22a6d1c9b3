using System.CommandLine;
using System.Text.Json;
using MimoSharp.Tensors.Storage;
using MimoSharp.Tokenization;

namespace MimoSharp.Cli.Commands;

/// <summary>`mimo tokenize` and `mimo detokenize`: the model's tokenizer on its own (DIR may hold only the tokenizer files).</summary>
internal static class TokenizeCommand
{
    public static Command Create(TextWriter output)
    {
        var model = new Option<string>("--model") { Description = "Directory with tokenizer.json", Required = true };
        var text = new Option<string?>("--text") { Description = "Text to tokenize" };
        var file = new Option<string?>("--file") { Description = "File whose text to tokenize" };
        var json = new Option<bool>("--json") { Description = "Print {\"ids\": [...], \"tokens\": [...]}" };
        var command = new Command("tokenize", "Turn text into token ids") { model, text, file, json };
        command.SetAction(parse =>
        {
            string? t = parse.GetValue(text), f = parse.GetValue(file);
            if ((t is null) == (f is null))
            {
                throw new ArgumentException("give exactly one of --text TEXT or --file FILE");
            }
            string input = t ?? InputFile.ReadText(f!, "a UTF-8 text file", 256L << 20, message => new ArgumentException($"--file {message}"));
            MimoTokenizer tokenizer = MimoTokenizer.Load(parse.GetValue(model)!);
            IReadOnlyList<int> ids = tokenizer.Encode(input);
            string[] pieces = ids.Select(id => tokenizer.IdToToken(id) ?? "").ToArray();
            if (parse.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(new { ids, tokens = pieces }, CliParsing.Json));
            }
            else
            {
                output.WriteLine(string.Join(",", ids));
                output.WriteLine(string.Join(" ", pieces.Select(p => JsonSerializer.Serialize(p, CliParsing.Json))));
                output.WriteLine($"{ids.Count} tokens");
            }
            return 0;
        });
        return command;
    }

    public static Command CreateDetokenize(TextWriter output)
    {
        var model = new Option<string>("--model") { Description = "Directory with tokenizer.json", Required = true };
        var ids = new Option<string>("--ids") { Description = "Comma-separated token ids", Required = true };
        var skipSpecial = new Option<bool>("--skip-special") { Description = "Leave out special tokens" };
        var command = new Command("detokenize", "Turn token ids back into text") { model, ids, skipSpecial };
        command.SetAction(parse =>
        {
            MimoTokenizer tokenizer = MimoTokenizer.Load(parse.GetValue(model)!);
            int[] values = CliParsing.ParseIds(parse.GetValue(ids)!);
            foreach (int id in values)
            {
                if (id >= tokenizer.VocabularySize)
                {
                    throw new ArgumentException($"--ids: {id} is outside the tokenizer's vocabulary [0, {tokenizer.VocabularySize})");
                }
            }
            output.WriteLine(tokenizer.Decode(values, parse.GetValue(skipSpecial)));
            return 0;
        });
        return command;
    }
}
