using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using MimoSharp.Tokenization;

namespace MimoSharp.Server;

/// <summary>A piece of the assistant's answer as it streams: reasoning, answer text, or a complete tool call.</summary>
public abstract record OutputPart;

public sealed record ReasoningPart(string Text) : OutputPart;

public sealed record TextPart(string Text) : OutputPart;

public sealed record ToolCallPart(ToolCall Call) : OutputPart;

/// <summary>
/// Splits streamed assistant text into parts: MiMo XML tool calls first (on the raw text, so a call
/// written inside &lt;think&gt; is still found), then reasoning versus answer text.
/// </summary>
public sealed class AssistantParser
{
    private readonly ToolCallParser? _tools;
    private readonly ReasoningSplitter _reasoning;

    /// <param name="tools">OpenAI-shaped tool definitions (for value types); null or <paramref name="parseTools"/> false: no tool parsing.</param>
    /// <param name="startInReasoning">The prompt opened a &lt;think&gt; block the model continues.</param>
    public AssistantParser(JsonArray? tools, bool parseTools, bool startInReasoning)
    {
        _tools = parseTools ? new ToolCallParser(tools) : null;
        _reasoning = new ReasoningSplitter(startInReasoning);
    }

    public int ToolCalls { get; private set; }

    public List<OutputPart> Push(string text)
    {
        var parts = new List<OutputPart>();
        if (text.Length == 0)
        {
            return parts;
        }
        if (_tools is null)
        {
            Split(text, parts);
            return parts;
        }
        (string plain, IReadOnlyList<ToolCall> calls) = _tools.Push(text);
        Split(plain, parts);
        foreach (ToolCall call in calls)
        {
            parts.Add(new ToolCallPart(call with { Id = NewCallId() }));
            ToolCalls++;
        }
        return parts;
    }

    /// <summary>At the end: whatever was held back (an unfinished tool call comes back as text).</summary>
    public List<OutputPart> Flush()
    {
        var parts = new List<OutputPart>();
        if (_tools is not null)
        {
            Split(_tools.Flush(), parts);
        }
        (string reasoning, string content) = _reasoning.Flush();
        Add(parts, reasoning, content);
        return parts;
    }

    private void Split(string text, List<OutputPart> parts)
    {
        if (text.Length > 0)
        {
            (string reasoning, string content) = _reasoning.Push(text);
            Add(parts, reasoning, content);
        }
    }

    private static void Add(List<OutputPart> parts, string reasoning, string content)
    {
        if (reasoning.Length > 0)
        {
            parts.Add(new ReasoningPart(reasoning));
        }
        if (content.Length > 0)
        {
            parts.Add(new TextPart(content));
        }
    }

    /// <summary>Ids unique across requests, as clients key tool results by them.</summary>
    public static string NewCallId() => "call_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
}

/// <summary>
/// Turns one decoding step's parts into OpenAI <c>delta</c> objects: text and reasoning of the step
/// share a delta; a tool call takes two (the first with index, id, type, name and empty arguments,
/// the next with the arguments), so a chunk never holds two entries for one index.
/// </summary>
public sealed class OpenAIDeltaBuilder
{
    private int _nextIndex;

    public int ToolCalls => _nextIndex;

    public List<JsonObject> Deltas(IReadOnlyList<OutputPart> parts)
    {
        var deltas = new List<JsonObject>();
        var content = new StringBuilder();
        var reasoning = new StringBuilder();
        void FlushText()
        {
            if (content.Length == 0 && reasoning.Length == 0)
            {
                return;
            }
            var delta = new JsonObject();
            if (reasoning.Length > 0)
            {
                delta["reasoning_content"] = reasoning.ToString();
            }
            if (content.Length > 0)
            {
                delta["content"] = content.ToString();
            }
            deltas.Add(delta);
            content.Clear();
            reasoning.Clear();
        }
        foreach (OutputPart part in parts)
        {
            switch (part)
            {
                case TextPart t:
                    content.Append(t.Text);
                    break;
                case ReasoningPart r:
                    reasoning.Append(r.Text);
                    break;
                case ToolCallPart c:
                    FlushText();
                    int index = _nextIndex++;
                    deltas.Add(new JsonObject
                    {
                        ["tool_calls"] = new JsonArray(new JsonObject
                        {
                            ["index"] = index,
                            ["id"] = c.Call.Id,
                            ["type"] = "function",
                            ["function"] = new JsonObject { ["name"] = c.Call.Name, ["arguments"] = "" },
                        }),
                    });
                    deltas.Add(new JsonObject
                    {
                        ["tool_calls"] = new JsonArray(new JsonObject
                        {
                            ["index"] = index,
                            ["function"] = new JsonObject { ["arguments"] = c.Call.ArgumentsJson },
                        }),
                    });
                    break;
            }
        }
        FlushText();
        return deltas;
    }
}

/// <summary>
/// Turns parts into Anthropic stream events (content_block_start / _delta / _stop per block): thinking
/// blocks get a signature_delta before they stop, tool calls become tool_use blocks with one
/// input_json_delta.
/// </summary>
public sealed class AnthropicEventBuilder
{
    private enum Block { None, Thinking, Text }

    private Block _open = Block.None;
    private int _index = -1;
    private readonly StringBuilder _thinking = new();

    public int ToolUses { get; private set; }

    public List<(string Event, JsonObject Data)> Events(IReadOnlyList<OutputPart> parts)
    {
        var events = new List<(string, JsonObject)>();
        foreach (OutputPart part in parts)
        {
            switch (part)
            {
                case ReasoningPart r:
                    Open(Block.Thinking, events);
                    _thinking.Append(r.Text);
                    events.Add(Delta(new JsonObject { ["type"] = "thinking_delta", ["thinking"] = r.Text }));
                    break;
                case TextPart t:
                    Open(Block.Text, events);
                    events.Add(Delta(new JsonObject { ["type"] = "text_delta", ["text"] = t.Text }));
                    break;
                case ToolCallPart c:
                    Close(events);
                    _index++;
                    ToolUses++;
                    events.Add(("content_block_start", new JsonObject
                    {
                        ["type"] = "content_block_start",
                        ["index"] = _index,
                        ["content_block"] = new JsonObject { ["type"] = "tool_use", ["id"] = ToolUseId(c.Call.Id), ["name"] = c.Call.Name, ["input"] = new JsonObject() },
                    }));
                    events.Add(Delta(new JsonObject { ["type"] = "input_json_delta", ["partial_json"] = c.Call.ArgumentsJson }));
                    events.Add(("content_block_stop", new JsonObject { ["type"] = "content_block_stop", ["index"] = _index }));
                    break;
            }
        }
        return events;
    }

    /// <summary>Closes the open block (at the end of the message).</summary>
    public List<(string Event, JsonObject Data)> Finish()
    {
        var events = new List<(string, JsonObject)>();
        Close(events);
        return events;
    }

    /// <summary>Anthropic ids look like toolu_...; the same call keeps the same id.</summary>
    public static string ToolUseId(string callId) => callId.StartsWith("call_", StringComparison.Ordinal) ? "toolu_" + callId[5..] : callId;

    /// <summary>
    /// A thinking block's signature: clients hand it back with the block in the next turn. It is a
    /// digest of the text, not a cryptographic attestation (the server does not check it).
    /// </summary>
    public static string Signature(string thinking) => Convert.ToBase64String(SHA256.HashData(Encoding.UTF8.GetBytes(thinking)));

    private (string, JsonObject) Delta(JsonObject delta) =>
        ("content_block_delta", new JsonObject { ["type"] = "content_block_delta", ["index"] = _index, ["delta"] = delta });

    private void Open(Block block, List<(string, JsonObject)> events)
    {
        if (_open == block)
        {
            return;
        }
        Close(events);
        _index++;
        _open = block;
        JsonObject start = block == Block.Thinking
            ? new JsonObject { ["type"] = "thinking", ["thinking"] = "", ["signature"] = "" }
            : new JsonObject { ["type"] = "text", ["text"] = "" };
        events.Add(("content_block_start", new JsonObject { ["type"] = "content_block_start", ["index"] = _index, ["content_block"] = start }));
    }

    private void Close(List<(string, JsonObject)> events)
    {
        if (_open == Block.None)
        {
            return;
        }
        if (_open == Block.Thinking)
        {
            events.Add(Delta(new JsonObject { ["type"] = "signature_delta", ["signature"] = Signature(_thinking.ToString()) }));
            _thinking.Clear();
        }
        events.Add(("content_block_stop", new JsonObject { ["type"] = "content_block_stop", ["index"] = _index }));
        _open = Block.None;
    }
}
