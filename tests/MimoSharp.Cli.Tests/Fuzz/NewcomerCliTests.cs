using System.Text.Json;
using MimoSharp.Cli.Commands;

namespace MimoSharp.Cli.Tests.Fuzz;

/// <summary>Issue 11, class 4: the CLI a newcomer meets.</summary>
public sealed class NewcomerCliTests
{
    [Fact]
    public void TerminalSafeEscapesControlBytesButKeepsNewlinesAndTabs()
    {
        Assert.Equal("a\\x1B[2Jb\\x0Dc\\x08\\x00\\x7F\\x9B\nd\te", CliParsing.TerminalSafe("a\u001b[2Jb\rc\b\0\u007f\u009b\nd\te"));
        Assert.Equal("plain text, ünïcode 漢字", CliParsing.TerminalSafe("plain text, ünïcode 漢字"));
    }

    [Fact]
    public void ChatWritesNoRawControlBytesAndNoThinkingLabelWhenThinkingIsOff()
    {
        // A random byte-level model sampled at temperature 1 writes control bytes (ids 0..31 are bytes 0..31) within a few dozen tokens.
        string model = FuzzKit.CopyOfModel("chat");
        var input = new StringReader("hello\nagain\n/exit\n");
        FuzzKit.Outcome outcome = FuzzKit.Run(input, "chat", "--model", model, "--temperature", "1", "--seed", "3", "--max-tokens", "64");
        Assert.True(outcome.Code == 0, outcome.Err);
        Assert.DoesNotContain(outcome.Out, c => c < 0x20 && c != '\n' && c != '\t' || c is >= '\u007f' and <= '\u009f');
        Assert.Contains("\\x", outcome.Out); // the escapes are there instead
        Assert.DoesNotContain("[thinking]", outcome.Out);
    }

    [Fact]
    public void ChatTakesTheWindowConventionAndSystemPrompt()
    {
        string model = FuzzKit.CopyOfModel("chat-flags");
        FuzzKit.Outcome outcome = FuzzKit.Run(new StringReader("/exit\n"), "chat", "--model", model, "--window-convention", "SGLang", "--system", "be brief");
        Assert.True(outcome.Code == 0, outcome.Err);
    }

    [Fact]
    public void GenerateIdsJsonGivesTextWhenTheModelShipsATokenizer()
    {
        string model = FuzzKit.CopyOfModel("ids-text");
        FuzzKit.Outcome outcome = FuzzKit.Run("generate", "--model", model, "--ids", "104,105", "--max-tokens", "4", "--json");
        Assert.True(outcome.Code == 0, outcome.Err);
        JsonElement root = JsonDocument.Parse(outcome.Out).RootElement;
        int[] ids = root.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        string? text = root.GetProperty("text").GetString();
        Assert.NotNull(text);
        // Independent of the streaming detokenizer: the tokenizer's own decode of the same ids.
        var tokenizer = MimoSharp.Tokenization.MimoTokenizer.Load(model);
        Assert.Equal(tokenizer.Decode(ids, false), text);
    }

    [Fact]
    public void MaxTokensZeroReportsNoRate()
    {
        string model = FuzzKit.CopyOfModel("zero");
        FuzzKit.Outcome outcome = FuzzKit.Run("generate", "--model", model, "--ids", "1,2", "--max-tokens", "0", "--json");
        Assert.True(outcome.Code == 0, outcome.Err);
        JsonElement root = JsonDocument.Parse(outcome.Out).RootElement;
        Assert.Equal(JsonValueKind.Null, root.GetProperty("prefill_tokens_per_s").ValueKind);
        Assert.Equal(JsonValueKind.Null, root.GetProperty("decode_tokens_per_s").ValueKind);
        FuzzKit.Outcome text = FuzzKit.Run("generate", "--model", model, "--ids", "1,2", "--max-tokens", "0");
        Assert.Contains("prefill 2 tokens (not timed)", text.Out);
    }

    [Theory]
    [InlineData("1,,2", "item 2", "is empty")]
    [InlineData("1,2,", "item 3", "is empty")]
    [InlineData("1,-2", "item 2", "an integer in 0..2147483647")]
    [InlineData("1,+2", "item 2", "an integer in 0..2147483647")]
    [InlineData(" ", "is empty", "such as 1,2,3")]
    public void MalformedIdListsAreRefused(string ids, string where, string expected)
    {
        FuzzKit.AssertClearError(FuzzKit.Run("generate", "--model", FuzzKit.CopyOfModel("ids"), "--ids", ids), "--ids", where, expected);
    }

    [Fact]
    public void ThinkingWithoutChatIsRefused()
    {
        FuzzKit.AssertClearError(FuzzKit.Run("generate", "--model", FuzzKit.CopyOfModel("thinking"), "--prompt", "hi", "--thinking"), "--thinking", "needs --chat");
    }

    [Fact]
    public void APresetWithExplicitFlagsSaysTheFlagsWin()
    {
        string model = FuzzKit.CopyOfModel("preset");
        FuzzKit.Outcome outcome = FuzzKit.Run("generate", "--model", model, "--ids", "1", "--preset", "chat", "--temperature", "0.25", "--top-k", "5", "--max-tokens", "1");
        Assert.True(outcome.Code == 0, outcome.Err);
        Assert.Contains("explicit sampling flags win over --preset chat: --temperature 0.25 (the preset's", outcome.Err);
        Assert.Contains("--top-k 5 (the preset's", outcome.Err);
        Assert.DoesNotContain("note:", FuzzKit.Run("generate", "--model", model, "--ids", "1", "--preset", "chat", "--max-tokens", "1").Err);
    }

    [Fact]
    public void LogitsLeavesNoPartialFileAndChecksOutputsFirst()
    {
        string model = FuzzKit.CopyOfModel("logits");
        string dir = FuzzKit.NewDirectory("logits-out");
        string main = Path.Combine(dir, "main.npy");
        FuzzKit.Outcome outcome = FuzzKit.Run("logits", "--model", model, "--ids", "1,2,3", "--output", main, "--mtp-output", Path.Combine(dir, "missing", "mtp.npy"));
        FuzzKit.AssertClearError(outcome, "--mtp-output", "does not exist");
        Assert.False(File.Exists(main), "main.npy must not be left behind");
        // Too few ids for the MTP rows: refused after the load, still nothing written.
        FuzzKit.AssertClearError(FuzzKit.Run("logits", "--model", model, "--ids", "1", "--output", main, "--mtp-output", Path.Combine(dir, "mtp.npy")), "--mtp-output", "needs more than 1 ids");
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir));
        Assert.Equal(0, FuzzKit.Run("logits", "--model", model, "--ids", "1,2,3", "--output", main, "--mtp-output", Path.Combine(dir, "mtp.npy")).Code);
        Assert.Equal(["main.npy", "mtp.npy"], Directory.EnumerateFileSystemEntries(dir).Select(p => Path.GetFileName(p)!).Order().ToArray());
    }

    [Fact]
    public void CreateRandomRefusesToOverwriteAModel()
    {
        string model = FuzzKit.CopyOfModel("overwrite");
        byte[] before = File.ReadAllBytes(FuzzKit.SafetensorsPath(model));
        FuzzKit.AssertClearError(FuzzKit.Run("create-random", "--preset", "tiny", "--output", model, "--seed", "9"), "--output", "already exists and is not empty", "nothing was overwritten");
        Assert.Equal(before, File.ReadAllBytes(FuzzKit.SafetensorsPath(model)));
    }

    [Fact]
    public void ReadmeDocumentsCheckAndTheChatFlags()
    {
        string readme = File.ReadAllText(Path.Combine(TestPaths.Root, "README.md"));
        Assert.Contains("-- check --model", readme);
        Assert.Contains("mimo chat [--model DIR] [--system TEXT]", readme);
        Assert.Contains("gunzip", readme);
    }
}
