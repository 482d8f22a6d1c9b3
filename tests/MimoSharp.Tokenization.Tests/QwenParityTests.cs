using System.Text.Json;

namespace MimoSharp.Tokenization.Tests;

/// <summary>
/// The real Qwen3 tokenizer.json against ids from an independent implementation (transformers.js via
/// @lenml/tokenizers), produced by tools/tokenizer-oracle/make_goldens.mjs.
/// </summary>
public sealed class QwenParityTests
{
    private static readonly Lazy<MimoTokenizer> s_tokenizer = new(() => MimoTokenizer.Load(TestPaths.Qwen3TokenizerDirectory));

    public static TheoryData<int> CaseIndices()
    {
        var data = new TheoryData<int>();
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestPaths.TokenizerData, "qwen3-parity.json")));
        for (int i = 0; i < doc.RootElement.GetProperty("cases").GetArrayLength(); i++)
        {
            data.Add(i);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(CaseIndices))]
    public void IdsMatchTheIndependentImplementation(int index)
    {
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestPaths.TokenizerData, "qwen3-parity.json")));
        JsonElement item = doc.RootElement.GetProperty("cases")[index];
        string text = item.GetProperty("text").GetString()!;
        int[] expected = item.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        IReadOnlyList<int> actual = s_tokenizer.Value.Encode(text);
        Assert.Equal(expected, actual);
        Assert.Equal(text.Normalize(System.Text.NormalizationForm.FormC), s_tokenizer.Value.Decode(actual));
    }

    [Fact]
    public void ReadsEosAndTemplateFromTheConfig()
    {
        MimoTokenizer tokenizer = s_tokenizer.Value;
        Assert.Contains(tokenizer.TokenToId("<|im_end|>")!.Value, tokenizer.EosIds);
        Assert.NotNull(tokenizer.ChatTemplate);
        Assert.Equal(151643, tokenizer.TokenToId("<|endoftext|>"));
    }
}
