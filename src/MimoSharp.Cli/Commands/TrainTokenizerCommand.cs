using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using MimoSharp.Tokenization.Training;

namespace MimoSharp.Cli.Commands;

/// <summary>`mimo train-tokenizer`: byte-level BPE (Hugging Face's algorithm and merge order) on text files.</summary>
internal static class TrainTokenizerCommand
{
    public static Command Create(TextWriter output)
    {
        var input = new Option<string[]>("--input") { Description = "Text files to train on (repeat the option or give several)", Required = true, AllowMultipleArgumentsPerToken = true };
        var dir = new Option<string>("--output") { Description = "Directory to write tokenizer.json and tokenizer_config.json into", Required = true };
        var vocab = new Option<int>("--vocab-size") { Description = "Ids in all: byte tokens, merges and the control tokens", DefaultValueFactory = _ => 8192 };
        var byLine = new Option<bool>("--by-line") { Description = "Pre-tokenize each line on its own (as Hugging Face's Tokenizer.train(files) reads files); default: each file is one text" };
        var command = new Command("train-tokenizer", "Train a byte-level BPE tokenizer (Qwen2 pre-tokenizer, Hugging Face merge order) with the ChatML, thinking and tool-call tokens")
        {
            input, dir, vocab, byLine,
        };
        command.SetAction(parse =>
        {
            string[] files = parse.GetValue(input)!;
            var texts = new List<string>();
            foreach (string file in files)
            {
                if (!File.Exists(file))
                {
                    throw new ArgumentException($"--input {file}: file not found");
                }
                string text = File.ReadAllText(file);
                if (parse.GetValue(byLine))
                {
                    texts.AddRange(SplitLines(text));
                }
                else
                {
                    texts.Add(text);
                }
            }
            var clock = Stopwatch.StartNew();
            WordCounts words = WordCounts.Count(texts, Environment.ProcessorCount);
            double countSeconds = clock.Elapsed.TotalSeconds;
            BpeVocabulary vocabulary = TrainedTokenizer.Train(words, parse.GetValue(vocab));
            double trainSeconds = clock.Elapsed.TotalSeconds - countSeconds;
            string outDir = parse.GetValue(dir)!;
            TrainedTokenizer.Write(outDir, vocabulary);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{CliParsing.FormatBytes(words.Bytes)} of text, {words.Counts.Count} distinct words: {vocabulary.Merges.Count} merges, {vocabulary.Tokens.Count + TrainedTokenizer.AddedTokens.Count} ids (counting {countSeconds:F2} s, merging {trainSeconds:F2} s); wrote {outDir}"));
            return 0;
        });
        return command;
    }

    /// <summary>Lines with their line ending kept ("a\nb" gives "a\n", "b").</summary>
    internal static IEnumerable<string> SplitLines(string text)
    {
        int start = 0;
        while (start < text.Length)
        {
            int end = text.IndexOf('\n', start);
            end = end < 0 ? text.Length : end + 1;
            yield return text[start..end];
            start = end;
        }
    }
}
