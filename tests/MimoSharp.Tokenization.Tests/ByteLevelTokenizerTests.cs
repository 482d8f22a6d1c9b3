using System.Text;

namespace MimoSharp.Tokenization.Tests;

public sealed class ByteLevelTokenizerTests
{
    private static readonly Lazy<MimoTokenizer> s_tokenizer = new(() =>
    {
        string dir = Path.Combine(Path.GetTempPath(), $"mimosharp-tok-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        ByteLevelTokenizerWriter.Write(dir, 512);
        return MimoTokenizer.Load(dir);
    });

    private static MimoTokenizer Tokenizer => s_tokenizer.Value;

    [Theory]
    [InlineData("Hello, world!")]
    [InlineData("  leading spaces\tand\ttabs\r\nCRLF")]
    [InlineData("中文测试 日本語")]
    [InlineData("emoji 👍🏽 and combining é (e\u0301 composes under NFC)")]
    [InlineData("")]
    public void EncodesToTheUtf8BytesAndDecodesBack(string text)
    {
        IReadOnlyList<int> ids = Tokenizer.Encode(text);
        byte[] expected = Encoding.UTF8.GetBytes(text.Normalize(NormalizationForm.FormC));
        Assert.Equal(expected.Select(b => (int)b), ids);
        Assert.Equal(text.Normalize(NormalizationForm.FormC), Tokenizer.Decode(ids));
    }

    [Fact]
    public void ControlTokensInTheTextBecomeTheirIds()
    {
        IReadOnlyList<int> ids = Tokenizer.Encode("<|im_start|>user\nhi<|im_end|>");
        int start = Tokenizer.TokenToId("<|im_start|>")!.Value, end = Tokenizer.TokenToId("<|im_end|>")!.Value;
        Assert.Equal([start, .. "user\nhi"u8.ToArray().Select(b => (int)b), end], ids);
        Assert.True(Tokenizer.IsSpecial(end));
        Assert.Contains(end, Tokenizer.EosIds);
        Assert.Equal("user\nhi", Tokenizer.Decode(ids, skipSpecialTokens: true));
    }

    [Fact]
    public void StreamingNeverShowsABrokenCharacter()
    {
        string text = "a€b👍";
        var stream = new StreamingDetokenizer(Tokenizer);
        var pieces = Tokenizer.Encode(text).Select(stream.Push).ToList();
        pieces.Add(stream.Flush());
        Assert.Equal(text, string.Concat(pieces));
        Assert.All(pieces, p => Assert.DoesNotContain('\uFFFD', p));
        Assert.Equal(["a", "", "", "€", "b", "", "", "", "👍", ""], pieces);
    }

    [Fact]
    public void StopStringsAreCaughtAcrossTokensAndNotShown()
    {
        var stream = new StreamingDetokenizer(Tokenizer, ["STOP"]);
        var shown = new StringBuilder();
        foreach (int id in Tokenizer.Encode("abc STOx STOP tail"))
        {
            shown.Append(stream.Push(id));
            if (stream.Stopped)
            {
                break;
            }
        }
        Assert.True(stream.Stopped);
        Assert.Equal("abc STOx ", shown.ToString());
        Assert.Equal("STOP", stream.MatchedStop);
    }

    [Fact]
    public void HeldPrefixIsReleasedAtTheEnd()
    {
        var stream = new StreamingDetokenizer(Tokenizer, ["STOP"]);
        string shown = string.Concat(Tokenizer.Encode("ends with ST").Select(stream.Push)) + stream.Flush();
        Assert.Equal("ends with ST", shown);
        Assert.False(stream.Stopped);
    }

    [Fact]
    public void ReasoningIsSplitFromContentAcrossChunkBoundaries()
    {
        var splitter = new ReasoningSplitter();
        var reasoning = new StringBuilder();
        var content = new StringBuilder();
        foreach (string chunk in new[] { "<thi", "nk>let me ", "think</th", "ink>The answer", " is 4." })
        {
            (string r, string c) = splitter.Push(chunk);
            reasoning.Append(r);
            content.Append(c);
        }
        (string fr, string fc) = splitter.Flush();
        Assert.Equal("let me think", reasoning.Append(fr).ToString());
        Assert.Equal("The answer is 4.", content.Append(fc).ToString());
    }

    [Theory]
    [InlineData("<think>|\nhmm</think>answer")]
    [InlineData("<th|ink>\nhmm</think>answer")]
    [InlineData("\nhmm</think>answer")]
    public void StartingInReasoningAcceptsAnOpeningTagOrNone(string chunkList)
    {
        string[] chunks = chunkList.Split('|');
        var splitter = new ReasoningSplitter(startInReasoning: true);
        string reasoning = "", content = "";
        foreach (string chunk in chunks)
        {
            (string r, string c) = splitter.Push(chunk);
            reasoning += r;
            content += c;
        }
        (string fr, string fc) = splitter.Flush();
        Assert.Equal("\nhmm", reasoning + fr);
        Assert.Equal("answer", content + fc);
    }

    [Fact]
    public void ChatMlRendersTurnsAndTheGenerationPrompt()
    {
        string prompt = ChatMl.Render([new ChatMessage("system", "Be brief."), new ChatMessage("user", "Hi")]);
        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n", prompt);
        Assert.EndsWith("<|im_start|>assistant\n", ChatMl.Render([new ChatMessage("user", "Hi")], enableThinking: true));
        Assert.Throws<ArgumentException>(() => ChatMl.Render([new ChatMessage("narrator", "x")]));
    }

    [Fact]
    public void MissingOrUnsupportedTokenizerFilesAreReported()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"mimosharp-tok-bad-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        Assert.Contains("no tokenizer.json", Assert.Throws<TokenizerException>(() => MimoTokenizer.Load(dir)).Message);
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}");
        var ex = Assert.Throws<TokenizerException>(() => MimoTokenizer.Load(dir));
        Assert.Contains("Unigram", ex.Message);
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), "{ not json");
        Assert.Contains("invalid JSON", Assert.Throws<TokenizerException>(() => MimoTokenizer.Load(dir)).Message);
    }
}
