using System.Text.Json.Nodes;
using MimoSharp.Tokenization.Templates;
using MimoSharp.Tokenization.Training;

namespace MimoSharp.Tokenization.Tests;

/// <summary>The files a trained tokenizer ships: the byte-level writer's layout and the MiMo-style chat template.</summary>
public sealed class TrainedTokenizerTests
{
    private static readonly ChatTemplate s_template = ChatTemplate.Parse(TrainedTokenizer.ChatTemplate);

    public static TheoryData<int> TemplateCases()
    {
        var data = new TheoryData<int>();
        int count = JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.TokenizerData, "trained-template-cases.json")))!["cases"]!.AsArray().Count;
        for (int i = 0; i < count; i++)
        {
            data.Add(i);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(TemplateCases))]
    public void TemplateRendersAsHuggingFacesJinja(int index)
    {
        // Goldens: tools/tokenizer-oracle/make_trained_template_goldens.mjs (@huggingface/jinja) on the template the trained tokenizer ships.
        JsonNode item = JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.TokenizerData, "trained-template-cases.json")))!["cases"]![index]!;
        string shipped = JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.TokenizerData, "trained", "tokenizer_config.json")))!["chat_template"]!.GetValue<string>();
        Assert.Equal(TrainedTokenizer.ChatTemplate, shipped);
        var variables = item["variables"]!.AsObject().ToDictionary(p => p.Key, p => p.Value?.DeepClone());
        Assert.Equal(item["rendered"]!.GetValue<string>(), s_template.Render(variables));
    }

    [Fact]
    public void RandomModelsTokenizerIsTheOneHuggingFaceLoaded()
    {
        // testdata/tokenizer/byte-level was loaded by HF tokenizers (make_bpe_goldens.mjs); HF refuses a
        // ByteLevel decoder without add_prefix_space, so the writer must keep producing this exact file.
        string dir = Path.Combine(Path.GetTempPath(), $"mimosharp-bytelevel-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        ByteLevelTokenizerWriter.Write(dir, 512);
        Assert.Equal(File.ReadAllText(Path.Combine(TestPaths.TokenizerData, "byte-level", "tokenizer.json")), File.ReadAllText(Path.Combine(dir, "tokenizer.json")));
        var decoder = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "tokenizer.json")))!["decoder"]!;
        Assert.False(decoder["add_prefix_space"]!.GetValue<bool>());
    }

    [Fact]
    public void ToolCallsRenderInMimosXmlFormAndParseBack()
    {
        var tools = JsonNode.Parse("""[{"type":"function","function":{"name":"calculator","description":"Evaluates arithmetic","parameters":{"type":"object","properties":{"expression":{"type":"string"}},"required":["expression"]}}}]""")!.AsArray();
        var messages = JsonNode.Parse("""
            [{"role":"user","content":"What is 17 * 23?"},
             {"role":"assistant","content":"","tool_calls":[{"type":"function","function":{"name":"calculator","arguments":{"expression":"17 * 23"}}}]},
             {"role":"tool","content":"391"},
             {"role":"assistant","content":"17 * 23 = 391."}]
            """)!.AsArray();
        string text = s_template.Render(messages, tools, addGenerationPrompt: false);
        Assert.Contains("<|im_start|>assistant\n<tool_call>\n<function=calculator>\n<parameter=expression>\n17 * 23\n</parameter>\n</function>\n</tool_call><|im_end|>\n", text);
        Assert.Contains("<|im_start|>user\n<tool_response>\n391\n</tool_response><|im_end|>\n", text);
        Assert.EndsWith("<|im_start|>assistant\n<think>\n\n</think>\n\n17 * 23 = 391.<|im_end|>\n", text);

        var parser = new ToolCallParser(tools);
        // The assistant's turn (the system prompt shows the format with an example call first).
        int start = text.IndexOf("<|im_start|>assistant\n<tool_call>", StringComparison.Ordinal) + "<|im_start|>assistant\n".Length;
        int end = text.IndexOf("</tool_call>", start, StringComparison.Ordinal) + "</tool_call>".Length;
        (_, IReadOnlyList<ToolCall> calls) = parser.Push(text[start..end]);
        ToolCall call = Assert.Single(calls);
        Assert.Equal("calculator", call.Name);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"expression":"17 * 23"}"""), JsonNode.Parse(call.ArgumentsJson)));
    }

    [Theory]
    [InlineData(false, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")]
    [InlineData(true, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")]
    public void ThinkingIsOffUnlessAskedFor(bool thinking, string expected)
    {
        var messages = JsonNode.Parse("""[{"role":"user","content":"hi"}]""")!.AsArray();
        Assert.Equal(expected, s_template.Render(messages, extra: new Dictionary<string, JsonNode?> { ["enable_thinking"] = thinking }));
        if (!thinking)
        {
            Assert.Equal(expected, s_template.Render(messages));
        }
    }

    [Fact]
    public void ReasoningIsRenderedInsideThink()
    {
        var messages = JsonNode.Parse("""[{"role":"user","content":"2+2?"},{"role":"assistant","content":"4","reasoning_content":"2 + 2 = 4"}]""")!.AsArray();
        Assert.Equal("<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n2 + 2 = 4\n</think>\n\n4<|im_end|>\n", s_template.Render(messages, addGenerationPrompt: false));
    }
}
