using System.Text.Json;
using MimoSharp.Tensors.Storage;
using MimoSharp.Cli.Commands;

namespace MimoSharp.Cli.Tests;

public sealed class CliTests
{
    private static string Fixture => TestPaths.TinyRandom;

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Program.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private static string Temp(string name)
    {
        string dir = Path.Combine(Path.GetTempPath(), $"mimosharp-cli-{Environment.ProcessId}-{name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }

    [Fact]
    public void LogitsCommandWritesTheFixtureLogits()
    {
        string dir = Temp("logits");
        int[] ids = Npy.Read(Path.Combine(Fixture, "ids.npy")).ToInt32s();
        string main = Path.Combine(dir, "main.npy"), mtp = Path.Combine(dir, "mtp.npy");
        var (code, _, err) = Run("logits", "--model", Path.Combine(Fixture, "model"), "--ids", string.Join(",", ids), "--output", main, "--mtp-output", mtp);
        Assert.True(code == 0, err);

        foreach ((string ours, string reference) in new[] { (main, "logits.npy"), (mtp, "mtp_logits.npy") })
        {
            NpyArray actual = Npy.Read(ours), expected = Npy.Read(Path.Combine(Fixture, reference));
            Assert.Equal(expected.Shape, actual.Shape);
            double largest = expected.Values.Max(Math.Abs);
            double worst = expected.Values.Zip(actual.Values).Max(p => Math.Abs(p.First - p.Second));
            Assert.True(worst <= 1e-4 * largest, $"{reference}: {worst} vs {largest}");
        }
    }

    [Fact]
    public void GenerateJsonGivesTheGreedyContinuation()
    {
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixture, "case.json")));
        string ids = string.Join(",", doc.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()));
        int[] greedy = doc.RootElement.GetProperty("greedy").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var (code, output, err) = Run("generate", "--model", Path.Combine(Fixture, "model"), "--ids", ids, "--max-tokens", greedy.Length.ToString(), "--json");
        Assert.True(code == 0, err);
        using JsonDocument result = JsonDocument.Parse(output);
        Assert.Equal(greedy, result.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray());
        Assert.True(result.RootElement.GetProperty("decode_tokens_per_s").GetDouble() > 0);
    }

    [Fact]
    public void CreateRandomThenGenerate()
    {
        string dir = Temp("random");
        var (code, _, err) = Run("create-random", "--output", dir, "--preset", "tiny", "--shard-mb", "1");
        Assert.True(code == 0, err);
        Assert.True(File.Exists(Path.Combine(dir, "model.safetensors.index.json")));
        (code, string output, err) = Run("generate", "--model", dir, "--ids", "1,2,3", "--max-tokens", "4", "--json");
        Assert.True(code == 0, err);
        using JsonDocument result = JsonDocument.Parse(output);
        Assert.Equal(4, result.RootElement.GetProperty("ids").GetArrayLength());
    }

    [Theory]
    [InlineData("q8_0")]
    [InlineData("q4_0")]
    [InlineData("fp8")]
    public void QuantizeWritesACheckpointThatGenerates(string type)
    {
        string source = Temp("quantize-source"), target = Path.Combine(Temp("quantize"), type);
        Assert.Equal(0, Run("create-random", "--output", source, "--preset", "tiny").Code);
        var (code, output, err) = Run("quantize", "--model", source, "--output", target, "--type", type);
        Assert.True(code == 0, err);
        Assert.Contains("tensors quantized", output);
        Assert.True(File.Exists(Path.Combine(target, "tokenizer.json")), "the tokenizer is copied along");
        (code, output, err) = Run("generate", "--model", target, "--prompt", "hi", "--max-tokens", "3", "--json");
        Assert.True(code == 0, err);
        Assert.Equal(3, JsonDocument.Parse(output).RootElement.GetProperty("generated_tokens").GetInt32());
    }

    [Fact]
    public void BenchJsonReportsThroughputBytesBandwidthAndMemory()
    {
        var (code, output, err) = Run("bench", "--model", Path.Combine(Fixture, "model"), "--prompt-tokens", "8", "--gen-tokens", "4",
            "--repetitions", "2", "--draft-tokens", "0,1", "--weights", "map", "--threads", "2", "--json");
        Assert.True(code == 0, err);
        JsonElement root = JsonDocument.Parse(output).RootElement;
        foreach (string key in new[] { "prefill_tokens_per_s", "decode_tokens_per_s", "weight_bytes_per_token", "peak_resident_bytes", "machine_read_bandwidth_bytes_per_s", "checkpoint_bytes" })
        {
            Assert.True(root.GetProperty(key).GetDouble() > 0, $"{key} should be positive");
        }
        Assert.Equal("map", root.GetProperty("weight_residency").GetString());
        Assert.Equal(2, root.GetProperty("runs").GetArrayLength());
        Assert.True(root.GetProperty("peak_resident_bytes").GetInt64() > root.GetProperty("checkpoint_bytes").GetInt64());
    }

    [Fact]
    public void BenchRefusesMoreDraftTokensThanHeads()
    {
        var (code, _, err) = Run("bench", "--model", Path.Combine(Fixture, "model"), "--draft-tokens", "4");
        Assert.NotEqual(0, code);
        Assert.Contains("0..3", err);
    }

    [Fact]
    public void BenchBatchAlternatesTheStreamCountsForEachRoundAndSummarisesThem()
    {
        var (code, output, err) = Run("bench-batch", "--model", Path.Combine(Fixture, "model"), "--streams", "1,2", "--rounds", "2",
            "--prompt-tokens", "4", "--gen-tokens", "6", "--conversation-tokens", "0", "--long-prompt-tokens", "0", "--threads", "2", "--json");
        Assert.True(code == 0, err);
        JsonElement root = JsonDocument.Parse(output).RootElement;
        Assert.Equal(2, root.GetProperty("rounds").GetInt32());
        // Measured in the order 1, 2, 1, 2; every figure positive.
        Assert.Equal([1, 2, 1, 2], root.GetProperty("throughput").EnumerateArray().Select(t => t.GetProperty("streams").GetInt32()).ToArray());
        Assert.All(root.GetProperty("throughput").EnumerateArray(), t =>
        {
            Assert.True(t.GetProperty("decode_tokens_per_s").GetDouble() > 0);
            Assert.True(t.GetProperty("span_tokens_per_s").GetDouble() > 0);
        });
        JsonElement[] summary = root.GetProperty("summary").EnumerateArray().ToArray();
        Assert.Equal([1, 2], summary.Select(c => c.GetProperty("streams").GetInt32()).ToArray());
        Assert.Equal(1.0, summary[0].GetProperty("speedup_over_first").GetDouble(), 12);
        double[] twoStreams = root.GetProperty("throughput").EnumerateArray().Where(t => t.GetProperty("streams").GetInt32() == 2)
            .Select(t => t.GetProperty("decode_tokens_per_s").GetDouble()).ToArray();
        Assert.Equal(twoStreams.Average(), summary[1].GetProperty("decode_tokens_per_s").GetDouble(), 9);
    }

    [Fact]
    public void BenchBatchRefusesRoundsBelowOne()
    {
        var (code, _, err) = Run("bench-batch", "--model", Path.Combine(Fixture, "model"), "--rounds", "0");
        Assert.NotEqual(0, code);
        Assert.Contains("--rounds", err);
    }

    [Fact]
    public void QuantizeRefusesAnUnknownType()
    {
        var (code, _, err) = Run("quantize", "--model", Path.Combine(Fixture, "model"), "--output", Temp("q"), "--type", "q2_k");
        Assert.NotEqual(0, code);
        Assert.Contains("q2_k", err);
        Assert.Contains("q8_0, q4_0 or fp8", err);
    }

    [Fact]
    public void InspectOnTheFlashConfigAloneReportsItsSize()
    {
        string dir = Temp("flash");
        Assert.Equal(0, Run("create-random", "--output", dir, "--preset", "flash", "--config-only").Code);
        Assert.False(File.Exists(Path.Combine(dir, "model.safetensors")));
        var (code, output, err) = Run("inspect", "--model", dir, "--json", "--context", "262144");
        Assert.True(code == 0, err);
        using JsonDocument doc = JsonDocument.Parse(output);
        JsonElement r = doc.RootElement;
        Assert.InRange(r.GetProperty("total_parameters").GetInt64(), 305e9, 312e9);
        Assert.InRange(r.GetProperty("active_parameters").GetInt64(), 14.5e9, 16e9);
        Assert.Equal(9 * 4 * (192 + 128) * 2, r.GetProperty("kv_bytes_per_token_global_bf16").GetInt64());
        Assert.Equal(9, r.GetProperty("global_layers").GetInt32());
    }

    [Fact]
    public void InspectOnTheFixtureCountsItsMtpHeads()
    {
        var (code, output, err) = Run("inspect", "--model", Path.Combine(Fixture, "model"), "--json");
        Assert.True(code == 0, err);
        using JsonDocument doc = JsonDocument.Parse(output);
        Assert.Equal(3, doc.RootElement.GetProperty("mtp_heads").GetInt32());
        Assert.True(doc.RootElement.GetProperty("mtp_heads_from_checkpoint").GetBoolean());
        Assert.True(doc.RootElement.GetProperty("bytes_by_dtype").GetProperty("F8_E4M3").GetInt64() > 0);
    }

    [Theory]
    [InlineData("1,x,3", "item 2 \"x\" is not a token id; expected an integer in 0..2147483647")]
    [InlineData("1,2,99999", "token id 99999 is outside the vocabulary [0, 320)")]
    public void BadIdsGiveAClearError(string ids, string message)
    {
        var (code, _, err) = Run("generate", "--model", Path.Combine(Fixture, "model"), "--ids", ids);
        Assert.Equal(1, code);
        Assert.Contains(message, err);
    }

    [Fact]
    public void MissingModelDirectoryGivesAClearError()
    {
        var (code, _, err) = Run("generate", "--model", "/nonexistent/model", "--ids", "1");
        Assert.Equal(1, code);
        Assert.Contains("/nonexistent/model", err);
        Assert.Contains("not found", err);
    }

    [Fact]
    public void PromptLongerThanTheContextIsRefused()
    {
        string dir = Temp("shortctx");
        string config = File.ReadAllText(Path.Combine(Fixture, "model", "config.json")).Replace("\"max_position_embeddings\": 262144", "\"max_position_embeddings\": 4");
        File.WriteAllText(Path.Combine(dir, "config.json"), config);
        foreach (string f in Directory.GetFiles(Path.Combine(Fixture, "model"), "*.safetensors*"))
        {
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        }
        File.Copy(Path.Combine(Fixture, "model", "model.safetensors.index.json"), Path.Combine(dir, "model.safetensors.index.json"), overwrite: true);
        var (code, _, err) = Run("generate", "--model", dir, "--ids", "1,2,3", "--max-tokens", "5");
        Assert.Equal(1, code);
        Assert.Contains("exceeds the context of 4 tokens", err);
    }
}

public sealed class TextCommandTests
{
    private static (int Code, string Out, string Err) Run(string input, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Program.Run(args, output, error, new StringReader(input));
        return (code, output.ToString(), error.ToString());
    }

    private static readonly Lazy<string> s_tiny = new(() =>
    {
        string dir = Path.Combine(Path.GetTempPath(), $"mimosharp-cli-text-{Environment.ProcessId}");
        Assert.Equal(0, Run("", "create-random", "--output", dir, "--preset", "tiny").Code);
        return dir;
    });

    /// <summary>The golden fixture model with a byte-level tokenizer added beside it.</summary>
    private static readonly Lazy<string> s_fixture = new(() =>
    {
        string dir = Path.Combine(Path.GetTempPath(), $"mimosharp-cli-fixture-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        foreach (string file in Directory.GetFiles(TestPaths.TinyRandomModel))
        {
            File.Copy(file, Path.Combine(dir, Path.GetFileName(file)), overwrite: true);
        }
        MimoSharp.Tokenization.ByteLevelTokenizerWriter.Write(dir, 320);
        return dir;
    });

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    public void GenerateFromTextWithTheChatTemplate(int drafts)
    {
        var (code, output, err) = Run("", "generate", "--model", s_tiny.Value, "--prompt", "Hello", "--chat", "--max-tokens", "6", "--json", "--draft-tokens", drafts.ToString(), "--temperature", "0.7", "--seed", "4");
        Assert.True(code == 0, err);
        using var doc = System.Text.Json.JsonDocument.Parse(output);
        Assert.True(doc.RootElement.GetProperty("ids").GetArrayLength() is >= 1 and <= 6);
        Assert.Equal(System.Text.Json.JsonValueKind.String, doc.RootElement.GetProperty("text").ValueKind);
        // "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n" in byte tokens.
        Assert.Equal(1 + 5 + 5 + 1 + 1 + 1 + 10 + 1 + 2 + 1 + 2, doc.RootElement.GetProperty("prompt_tokens").GetInt32());
    }

    [Fact]
    public void ChatRunsAConversationWithCommands()
    {
        string script = "hello\n/thinking on\nhow are you?\n/preset code\n/preset nope\n/reset\n/exit\n";
        var (code, output, err) = Run(script, "chat", "--model", s_fixture.Value, "--max-tokens", "5", "--seed", "2");
        Assert.True(code == 0, err);
        Assert.Contains("ready in", output);
        Assert.Contains("(thinking on)", output);
        Assert.Contains("[thinking]", output);
        Assert.Contains("(preset code: temperature 0.6, top-p 0.9, max 5)", output);
        Assert.Contains("unknown sampling preset \"nope\"", output);
        Assert.Contains("(conversation cleared)", output);
        Assert.Equal(2, output.Split("tok/s)").Length - 1);
    }

    [Fact]
    public void GenerateOnTheFixtureWithText()
    {
        var (code, output, err) = Run("", "generate", "--model", s_fixture.Value, "--prompt", "abc", "--max-tokens", "4", "--json");
        Assert.True(code == 0, err);
        Assert.Contains("\"ids\"", output);
    }

    [Fact]
    public void AMissingDefaultModelIsNamedWithWhereItWasLookedFor()
    {
        string empty = Directory.CreateTempSubdirectory("mimo-nodefault").FullName;
        var ex = Assert.Throws<ArgumentException>(() => CliParsing.ModelDirectory(null, empty));
        Assert.Contains($"{empty} has no config.json", ex.Message);
        Assert.Contains("Pass --model DIR", ex.Message);
        Assert.Equal("given", CliParsing.ModelDirectory("given", empty));
    }

    [Fact]
    public void ChatAndTextGenerateRunOnTheFixtureAsShipped()
    {
        // The fixture has no tokenizer.json: text falls back to byte tokens (its vocabulary is 320).
        var (code, output, err) = Run("hello\n/exit\n", "chat", "--model", TestPaths.TinyRandomModel, "--max-tokens", "4");
        Assert.True(code == 0, err);
        Assert.Contains("byte by byte", output);
        Assert.Contains("tok/s)", output);
        (code, output, err) = Run("", "generate", "--model", TestPaths.TinyRandomModel, "--prompt", "hi", "--max-tokens", "3", "--json");
        Assert.True(code == 0, err);
        Assert.Contains("\"text\"", output);
    }

    [Fact]
    public void AVocabularyTooSmallForBytesIsAClearError()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"mimosharp-cli-smallvocab-{Guid.NewGuid():N}");
        Assert.Equal(0, Run("", "create-random", "--output", dir, "--config", WriteConfig(dir)).Code);
        var (code, _, err) = Run("", "generate", "--model", dir, "--prompt", "hi");
        Assert.Equal(1, code);
        Assert.Contains("byte-level tokenizer needs", err);
    }

    private static string WriteConfig(string dir)
    {
        string path = dir + "-config.json";
        File.WriteAllText(path, File.ReadAllText(Path.Combine(TestPaths.TinyRandomModel, "config.json")).Replace("\"vocab_size\": 320", "\"vocab_size\": 100"));
        return path;
    }
}

public sealed class TokenizeCommandTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        return (Program.Run(args, output, error), output.ToString(), error.ToString());
    }

    [Fact]
    public void TokenizeAndDetokenizeRoundTripWithOnlyTokenizerFiles()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"mimosharp-cli-tok-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        MimoSharp.Tokenization.ByteLevelTokenizerWriter.Write(dir, 512);
        var (code, output, err) = Run("tokenize", "--model", dir, "--text", "hi <|im_end|>", "--json");
        Assert.True(code == 0, err);
        using var doc = System.Text.Json.JsonDocument.Parse(output);
        int[] ids = doc.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal([104, 105, 32, 258], ids);
        Assert.Contains("\"<|im_end|>\"", output);
        (code, output, err) = Run("detokenize", "--model", dir, "--ids", string.Join(",", ids));
        Assert.True(code == 0, err);
        Assert.Equal("hi <|im_end|>", output.TrimEnd('\n', '\r'));
        (code, _, err) = Run("detokenize", "--model", dir, "--ids", "9999");
        Assert.Equal(1, code);
        Assert.Contains("outside the tokenizer's vocabulary", err);
    }
}

public sealed class TemplateCommandTests
{
    [Fact]
    public void RendersWithTheModelsTemplateLikeTheReferenceEngine()
    {
        string dir = TestPaths.Qwen3TokenizerDirectory;
        var cases = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.TokenizerData, "qwen3-template-cases.json")))!["cases"]!.AsArray();
        var golden = cases.First(c => c!["name"]!.GetValue<string>() == "system_and_user+no_thinking+prompt")!;
        string messages = Path.Combine(Path.GetTempPath(), $"mimosharp-messages-{Guid.NewGuid():N}.json");
        File.WriteAllText(messages, golden["variables"]!["messages"]!.ToJsonString());

        var output = new StringWriter();
        var error = new StringWriter();
        int code = Program.Run(["template", "--model", dir, "--messages", messages], output, error);
        Assert.True(code == 0, error.ToString());
        Assert.Equal(golden["rendered"]!.GetValue<string>(), output.ToString());

        code = Program.Run(["template", "--model", dir, "--messages", Path.Combine(dir, "no-such-messages.json")], output, error);
        Assert.Equal(1, code);
        Assert.Contains("file not found", error.ToString());
    }
}
