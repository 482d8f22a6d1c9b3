using System.Text.Json.Nodes;

namespace MimoSharp.Tokenization.Tests;

public sealed class ToolCallParserTests
{
    private static readonly JsonArray s_tools = (JsonArray)JsonNode.Parse("""
        [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}, "days": {"type": "integer"}, "celsius": {"type": "boolean"},
            "threshold": {"type": "number"}, "options": {"type": "object"}, "tags": {"type": "array"}}}}}]
        """)!;

    private static (string Text, List<ToolCall> Calls) Feed(ToolCallParser parser, IEnumerable<string> chunks)
    {
        var text = new System.Text.StringBuilder();
        var calls = new List<ToolCall>();
        foreach (string chunk in chunks)
        {
            (string t, IReadOnlyList<ToolCall> c) = parser.Push(chunk);
            text.Append(t);
            calls.AddRange(c);
        }
        text.Append(parser.Flush());
        return (text.ToString(), calls);
    }

    private static IEnumerable<string> InPieces(string text, int size) =>
        Enumerable.Range(0, (text.Length + size - 1) / size).Select(i => text.Substring(i * size, Math.Min(size, text.Length - i * size)));

    private const string Call = "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n</parameter>\n" +
        "<parameter=celsius>\ntrue\n</parameter>\n<parameter=threshold>\n0.5\n</parameter>\n<parameter=options>\n{\"units\": \"metric\"}\n</parameter>\n" +
        "<parameter=tags>\n[\"a\", \"b\"]\n</parameter>\n</function>\n</tool_call>";

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(1000)]
    public void ParsesATypedCallStreamedInAnyPieces(int pieceSize)
    {
        (string text, List<ToolCall> calls) = Feed(new ToolCallParser(s_tools), InPieces("Let me check. " + Call + " Done.", pieceSize));
        Assert.Equal("Let me check.  Done.", text);
        ToolCall call = Assert.Single(calls);
        Assert.Equal("get_weather", call.Name);
        Assert.True(JsonNode.DeepEquals(
            JsonNode.Parse("""{"city": "Paris", "days": 3, "celsius": true, "threshold": 0.5, "options": {"units": "metric"}, "tags": ["a", "b"]}"""),
            JsonNode.Parse(call.ArgumentsJson)), call.ArgumentsJson);
    }

    [Fact]
    public void SeveralCallsPerTurnGetDistinctIds()
    {
        (string _, List<ToolCall> calls) = Feed(new ToolCallParser(s_tools), [Call, "\n", Call.Replace("Paris", "Oslo")]);
        Assert.Equal(2, calls.Count);
        Assert.NotEqual(calls[0].Id, calls[1].Id);
        Assert.Contains("Oslo", calls[1].ArgumentsJson);
    }

    [Fact]
    public void ACallInsideThinkIsStillReported()
    {
        (string text, List<ToolCall> calls) = Feed(new ToolCallParser(s_tools), ["<think>I should call it ", Call, "</think>ok"]);
        Assert.Single(calls);
        Assert.Equal("<think>I should call it </think>ok", text);
    }

    [Theory]
    [InlineData("<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</function>\n</tool_call>")]
    [InlineData("<tool_call>\nnot xml at all\n</tool_call>")]
    [InlineData("<tool_call>\n<function=f>\nstray<parameter=a>\n1\n</parameter>\n</function>\n</tool_call>")]
    public void MalformedCallsComeBackAsText(string malformed)
    {
        (string text, List<ToolCall> calls) = Feed(new ToolCallParser(s_tools), [malformed]);
        Assert.Empty(calls);
        Assert.Equal(malformed, text);
    }

    [Fact]
    public void AnUnfinishedCallIsReturnedAtTheEnd()
    {
        (string text, List<ToolCall> calls) = Feed(new ToolCallParser(), ["before <tool_call>\n<function=x>"]);
        Assert.Empty(calls);
        Assert.Equal("before <tool_call>\n<function=x>", text);
    }

    [Fact]
    public void UntypedValuesThatDoNotParseStayStrings()
    {
        string call = "<tool_call>\n<function=get_weather>\n<parameter=days>\nthree\n</parameter>\n<parameter=unknown>\n42\n</parameter>\n</function>\n</tool_call>";
        ToolCall parsed = Assert.Single(Feed(new ToolCallParser(s_tools), [call]).Calls);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"days": "three", "unknown": "42"}"""), JsonNode.Parse(parsed.ArgumentsJson)));
    }
}
