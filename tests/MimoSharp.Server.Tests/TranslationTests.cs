using System.Text;
using System.Text.Json.Nodes;
using MimoSharp.Runtime.Generation;
using MimoSharp.Tokenization;

namespace MimoSharp.Server.Tests;

/// <summary>
/// Tool-call and reasoning translation on recorded token streams: the ids of a known answer go through
/// the same detokenizer and parser the server uses, grouped 1 token per step (plain decoding) and 4 per
/// step (MTP), and the OpenAI deltas and Anthropic events they become are checked for shape and content.
/// </summary>
public sealed class TranslationTests
{
    private const string Answer =
        "<think>The user wants weather; call the tool.</think>Let me check." +
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>" +
        "<tool_call>\n<function=get_time>\n<parameter=zone>\nCET\n</parameter>\n</function>\n</tool_call>";

    private static readonly JsonArray Tools = JsonNode.Parse("""
        [{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}}}}},
         {"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"zone":{"type":"string"}}}}}]
        """)!.AsArray();

    private static readonly MimoTokenizer Tokenizer = MakeTokenizer();

    private static MimoTokenizer MakeTokenizer()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"mimosharp-translation-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        ByteLevelTokenizerWriter.Write(dir, 512);
        return MimoTokenizer.Load(dir);
    }

    /// <summary>The recorded stream's parts, one list per decoding step of <paramref name="perStep"/> tokens.</summary>
    private static List<List<OutputPart>> Steps(string answer, int perStep, bool startInReasoning = false)
    {
        IReadOnlyList<int> ids = Tokenizer.Encode(answer);
        if (answer.Contains("<tool_call>", StringComparison.Ordinal))
        {
            Assert.Contains(Tokenizer.TokenToId("<tool_call>")!.Value, ids); // control tokens are single ids, as the model writes them
        }
        var text = new TokenizerTextStream(Tokenizer);
        var parser = new AssistantParser(Tools, parseTools: true, startInReasoning);
        var steps = new List<List<OutputPart>>();
        for (int i = 0; i < ids.Count; i += perStep)
        {
            var step = new List<OutputPart>();
            foreach (int id in ids.Skip(i).Take(perStep))
            {
                step.AddRange(parser.Push(text.Push(id)));
            }
            steps.Add(step);
        }
        steps[^1].AddRange(parser.Push(text.Flush()));
        steps[^1].AddRange(parser.Flush());
        return steps;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public void OpenAIDeltasCarryReasoningTextAndToolCalls(int perStep)
    {
        var builder = new OpenAIDeltaBuilder();
        var content = new StringBuilder();
        var reasoning = new StringBuilder();
        var calls = new Dictionary<int, (string Id, string Name, StringBuilder Arguments)>();
        foreach (List<OutputPart> step in Steps(Answer, perStep))
        {
            foreach (JsonObject delta in builder.Deltas(step))
            {
                // Each delta is one chunk: one entry per index.
                if (delta["tool_calls"] is JsonArray entries)
                {
                    var indices = entries.Select(e => e!["index"]!.GetValue<int>()).ToList();
                    Assert.Equal(indices.Count, indices.Distinct().Count());
                    foreach (JsonNode? entry in entries)
                    {
                        int index = entry!["index"]!.GetValue<int>();
                        if (!calls.ContainsKey(index))
                        {
                            // The first delta of a call: index, id, type, name and empty arguments.
                            Assert.StartsWith("call_", entry["id"]!.GetValue<string>());
                            Assert.Equal("function", entry["type"]!.GetValue<string>());
                            Assert.Equal("", entry["function"]!["arguments"]!.GetValue<string>());
                            calls[index] = (entry["id"]!.GetValue<string>(), entry["function"]!["name"]!.GetValue<string>(), new StringBuilder());
                        }
                        else
                        {
                            Assert.Null(entry["id"]);
                            calls[index].Arguments.Append(entry["function"]!["arguments"]!.GetValue<string>());
                        }
                    }
                }
                content.Append(delta["content"]?.GetValue<string>());
                reasoning.Append(delta["reasoning_content"]?.GetValue<string>());
            }
        }
        Assert.Equal("The user wants weather; call the tool.", reasoning.ToString());
        Assert.Equal("Let me check.", content.ToString());
        Assert.Equal(2, calls.Count);
        Assert.Equal("get_weather", calls[0].Name);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"city":"Paris","days":3}"""), JsonNode.Parse(calls[0].Arguments.ToString())), calls[0].Arguments.ToString());
        Assert.Equal("get_time", calls[1].Name);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"zone":"CET"}"""), JsonNode.Parse(calls[1].Arguments.ToString())));
        Assert.NotEqual(calls[0].Id, calls[1].Id);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public void AnthropicEventsFormWellNestedBlocks(int perStep)
    {
        var builder = new AnthropicEventBuilder();
        var events = new List<(string Event, JsonObject Data)>();
        foreach (List<OutputPart> step in Steps(Answer, perStep))
        {
            events.AddRange(builder.Events(step));
        }
        events.AddRange(builder.Finish());
        int open = -1;
        string? openType = null;
        bool signed = false;
        var blocks = new List<(string Type, StringBuilder Body, string? Name)>();
        foreach ((string name, JsonObject data) in events)
        {
            Assert.Equal(name, data["type"]!.GetValue<string>());
            int index = data["index"]!.GetValue<int>();
            switch (name)
            {
                case "content_block_start":
                    Assert.Equal(-1, open); // one block at a time
                    Assert.Equal(blocks.Count, index); // indices count up from 0
                    open = index;
                    openType = data["content_block"]!["type"]!.GetValue<string>();
                    blocks.Add((openType, new StringBuilder(), data["content_block"]!["name"]?.GetValue<string>()));
                    signed = false;
                    break;
                case "content_block_delta":
                    Assert.Equal(open, index);
                    JsonNode delta = data["delta"]!;
                    string type = delta["type"]!.GetValue<string>();
                    Assert.False(signed, "nothing follows the signature");
                    switch (type)
                    {
                        case "thinking_delta": Assert.Equal("thinking", openType); blocks[index].Body.Append(delta["thinking"]!.GetValue<string>()); break;
                        case "text_delta": Assert.Equal("text", openType); blocks[index].Body.Append(delta["text"]!.GetValue<string>()); break;
                        case "input_json_delta": Assert.Equal("tool_use", openType); blocks[index].Body.Append(delta["partial_json"]!.GetValue<string>()); break;
                        case "signature_delta": Assert.Equal("thinking", openType); signed = true; Assert.NotEmpty(delta["signature"]!.GetValue<string>()); break;
                        default: Assert.Fail($"unexpected delta {type}"); break;
                    }
                    break;
                case "content_block_stop":
                    Assert.Equal(open, index);
                    if (openType == "thinking")
                    {
                        Assert.True(signed, "a thinking block gets a signature_delta before it stops");
                    }
                    open = -1;
                    break;
            }
        }
        Assert.Equal(-1, open);
        Assert.Equal(["thinking", "text", "tool_use", "tool_use"], blocks.Select(b => b.Type));
        Assert.Equal("The user wants weather; call the tool.", blocks[0].Body.ToString());
        Assert.Equal("Let me check.", blocks[1].Body.ToString());
        Assert.Equal("get_weather", blocks[2].Name);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"city":"Paris","days":3}"""), JsonNode.Parse(blocks[2].Body.ToString())));
        Assert.Equal("get_time", blocks[3].Name);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public void PromptOpenedReasoningAndSplitTagsAreHandled(int perStep)
    {
        // The prompt ended in <think>: the model continues inside it; the tag's bytes may also arrive spelt out.
        List<List<OutputPart>> steps = Steps("weighing options\n</think>\n\nAnswer: 42 </thi", perStep, startInReasoning: true);
        var all = steps.SelectMany(s => s).ToList();
        Assert.Equal("weighing options\n", string.Concat(all.OfType<ReasoningPart>().Select(p => p.Text)));
        Assert.Equal("\n\nAnswer: 42 </thi", string.Concat(all.OfType<TextPart>().Select(p => p.Text)));
    }

    [Fact]
    public void AnUnfinishedToolCallComesBackAsText()
    {
        var all = Steps("ok <tool_call>\n<function=get_weather>\n<parameter=city>\nPar", 4).SelectMany(s => s).ToList();
        Assert.Empty(all.OfType<ToolCallPart>());
        Assert.Equal("ok <tool_call>\n<function=get_weather>\n<parameter=city>\nPar", string.Concat(all.OfType<TextPart>().Select(p => p.Text)));
    }
}
