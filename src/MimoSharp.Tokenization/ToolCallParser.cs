using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace MimoSharp.Tokenization;

/// <summary>A parsed tool call: the function name and its arguments as an OpenAI-style JSON object string.</summary>
public sealed record ToolCall(string Id, string Name, string ArgumentsJson);

/// <summary>
/// Finds MiMo / Qwen3-Coder XML tool calls in streamed assistant text:
/// <c>&lt;tool_call&gt;\n&lt;function=NAME&gt;\n&lt;parameter=ARG&gt;\nVALUE\n&lt;/parameter&gt;\n&lt;/function&gt;\n&lt;/tool_call&gt;</c>.
/// Text outside calls passes through (a partial "&lt;tool_call&gt;" is held until it is known); each
/// complete call becomes a <see cref="ToolCall"/> whose values are typed by the tool's JSON schema
/// (string, number, integer, boolean, object, array). A call that does not parse is returned as
/// plain text rather than lost. Run it on the raw text, before the reasoning split, so that a call
/// written inside &lt;think&gt; is still reported.
/// </summary>
public sealed partial class ToolCallParser
{
    private const string Open = "<tool_call>";
    private const string Close = "</tool_call>";

    private readonly IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>> _parameterTypes;
    private readonly StringBuilder _pending = new();
    private bool _inCall;
    private int _count;

    [GeneratedRegex(@"^\s*<function=([^>\n]+)>(.*)</function>\s*$", RegexOptions.Singleline)]
    private static partial Regex FunctionPattern();

    [GeneratedRegex(@"<parameter=([^>\n]+)>(.*?)</parameter>", RegexOptions.Singleline)]
    private static partial Regex ParameterPattern();

    /// <param name="tools">OpenAI tool definitions (<c>[{"type":"function","function":{"name":..,"parameters":{..}}}]</c>), for value types; may be null.</param>
    public ToolCallParser(JsonArray? tools = null)
    {
        var types = new Dictionary<string, IReadOnlyDictionary<string, string>>(StringComparer.Ordinal);
        foreach (JsonNode? tool in tools ?? [])
        {
            JsonNode? function = tool?["function"] ?? tool;
            string? name = function?["name"]?.GetValue<string>();
            if (name is null)
            {
                continue;
            }
            var parameters = new Dictionary<string, string>(StringComparer.Ordinal);
            if (function?["parameters"]?["properties"] is JsonObject properties)
            {
                foreach ((string parameter, JsonNode? schema) in properties)
                {
                    parameters[parameter] = schema?["type"] is JsonValue type && type.TryGetValue(out string? t) ? t : "string";
                }
            }
            types[name] = parameters;
        }
        _parameterTypes = types;
    }

    /// <summary>Feeds text; returns the plain text that is now certain and the calls completed by it.</summary>
    public (string Text, IReadOnlyList<ToolCall> Calls) Push(string chunk)
    {
        _pending.Append(chunk);
        var text = new StringBuilder();
        var calls = new List<ToolCall>();
        while (true)
        {
            string all = _pending.ToString();
            if (!_inCall)
            {
                int open = all.IndexOf(Open, StringComparison.Ordinal);
                if (open < 0)
                {
                    int hold = HeldPrefix(all, Open);
                    text.Append(all, 0, all.Length - hold);
                    _pending.Remove(0, all.Length - hold);
                    break;
                }
                text.Append(all, 0, open);
                _pending.Remove(0, open);
                _inCall = true;
                continue;
            }
            int close = all.IndexOf(Close, StringComparison.Ordinal);
            if (close < 0)
            {
                break; // the call is still being written
            }
            string body = all[Open.Length..close];
            _pending.Remove(0, close + Close.Length);
            _inCall = false;
            if (TryParse(body) is { } call)
            {
                calls.Add(call);
            }
            else
            {
                text.Append(Open).Append(body).Append(Close); // malformed: keep it as text
            }
        }
        return (text.ToString(), calls);
    }

    /// <summary>At the end: an unfinished call is returned as text.</summary>
    public string Flush()
    {
        string rest = _pending.ToString();
        _pending.Clear();
        _inCall = false;
        return rest;
    }

    private static int HeldPrefix(string text, string tag)
    {
        for (int length = Math.Min(tag.Length - 1, text.Length); length > 0; length--)
        {
            if (text.AsSpan(text.Length - length).SequenceEqual(tag.AsSpan(0, length)))
            {
                return length;
            }
        }
        return 0;
    }

    private ToolCall? TryParse(string body)
    {
        Match function = FunctionPattern().Match(body);
        if (!function.Success)
        {
            return null;
        }
        string name = function.Groups[1].Value.Trim();
        string inner = function.Groups[2].Value;
        _parameterTypes.TryGetValue(name, out IReadOnlyDictionary<string, string>? types);
        var arguments = new JsonObject();
        int consumed = 0;
        foreach (Match parameter in ParameterPattern().Matches(inner))
        {
            if (inner[consumed..parameter.Index].Trim().Length > 0)
            {
                return null; // stray text between parameters
            }
            consumed = parameter.Index + parameter.Length;
            string key = parameter.Groups[1].Value.Trim();
            string raw = TrimOneNewline(parameter.Groups[2].Value);
            string type = types is not null && types.TryGetValue(key, out string? t) ? t : "string";
            arguments[key] = TypedValue(raw, type);
        }
        if (inner[consumed..].Trim().Length > 0)
        {
            return null;
        }
        return new ToolCall($"call_{_count++}", name, arguments.ToJsonString());
    }

    private static string TrimOneNewline(string value)
    {
        if (value.StartsWith('\n'))
        {
            value = value[1..];
        }
        if (value.EndsWith('\n'))
        {
            value = value[..^1];
        }
        return value;
    }

    /// <summary>The value as the schema types it; text that does not parse as that type stays a string.</summary>
    private static JsonNode? TypedValue(string raw, string type)
    {
        string trimmed = raw.Trim();
        switch (type)
        {
            case "integer" when long.TryParse(trimmed, NumberStyles.Integer, CultureInfo.InvariantCulture, out long l):
                return JsonValue.Create(l);
            case "number" when double.TryParse(trimmed, NumberStyles.Float, CultureInfo.InvariantCulture, out double d):
                return JsonValue.Create(d);
            case "boolean" when trimmed is "true" or "True" or "false" or "False":
                return JsonValue.Create(trimmed is "true" or "True");
            case "object" or "array" or "null":
                try
                {
                    return JsonNode.Parse(trimmed);
                }
                catch (JsonException)
                {
                    return JsonValue.Create(raw);
                }
            default:
                return JsonValue.Create(raw);
        }
    }
}
