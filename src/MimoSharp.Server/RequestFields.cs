using System.Text.Json;
using System.Text.Json.Nodes;

namespace MimoSharp.Server;

/// <summary>Typed reads of request JSON; a wrong type is a 400 that names the field and what was expected.</summary>
internal static class RequestFields
{
    public static string Describe(JsonNode? node) => node switch
    {
        null => "null",
        JsonObject => "an object",
        JsonArray => "an array",
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.String => "a string",
            JsonValueKind.Number => "a number",
            JsonValueKind.True or JsonValueKind.False => "a boolean",
            _ => "null",
        },
        _ => "a value",
    };

    public static string Join(string path, string name) => path.Length == 0 ? name : $"{path}.{name}";

    public static JsonNode? Get(JsonObject o, string name) => o.TryGetPropertyValue(name, out JsonNode? v) ? v : null;

    public static string? OptString(JsonObject o, string name, string path = "")
    {
        JsonNode? v = Get(o, name);
        if (v is null)
        {
            return null;
        }
        return v is JsonValue value && value.GetValueKind() == JsonValueKind.String
            ? value.GetValue<string>()
            : throw ApiException.BadRequest(Join(path, name), $"expected a string, got {Describe(v)}");
    }

    public static string ReqString(JsonObject o, string name, string path = "") =>
        OptString(o, name, path) ?? throw ApiException.BadRequest(Join(path, name), "this field is required (a string)");

    public static double? OptNumber(JsonObject o, string name, string path = "")
    {
        JsonNode? v = Get(o, name);
        if (v is null)
        {
            return null;
        }
        return v is JsonValue value && value.GetValueKind() == JsonValueKind.Number && double.IsFinite(value.GetValue<double>())
            ? value.GetValue<double>()
            : throw ApiException.BadRequest(Join(path, name), $"expected a number, got {Describe(v)}");
    }

    public static long? OptInteger(JsonObject o, string name, string path = "")
    {
        JsonNode? v = Get(o, name);
        if (v is null)
        {
            return null;
        }
        if (v is JsonValue value && value.GetValueKind() == JsonValueKind.Number)
        {
            double d = value.GetValue<double>();
            if (d == Math.Floor(d) && Math.Abs(d) < 9e15)
            {
                return (long)d;
            }
        }
        throw ApiException.BadRequest(Join(path, name), $"expected an integer, got {Describe(v)}{(v is JsonValue ? $" {v.ToJsonString()}" : "")}");
    }

    public static bool? OptBool(JsonObject o, string name, string path = "")
    {
        JsonNode? v = Get(o, name);
        if (v is null)
        {
            return null;
        }
        return v is JsonValue value && value.GetValueKind() is JsonValueKind.True or JsonValueKind.False
            ? value.GetValue<bool>()
            : throw ApiException.BadRequest(Join(path, name), $"expected a boolean, got {Describe(v)}");
    }

    public static JsonArray? OptArray(JsonObject o, string name, string path = "")
    {
        JsonNode? v = Get(o, name);
        return v is null ? null : v as JsonArray ?? throw ApiException.BadRequest(Join(path, name), $"expected an array, got {Describe(v)}");
    }

    public static JsonObject? OptObject(JsonObject o, string name, string path = "")
    {
        JsonNode? v = Get(o, name);
        return v is null ? null : v as JsonObject ?? throw ApiException.BadRequest(Join(path, name), $"expected an object, got {Describe(v)}");
    }

    public static JsonObject AsObject(JsonNode? node, string path) =>
        node as JsonObject ?? throw ApiException.BadRequest(path, $"expected an object, got {Describe(node)}");

    /// <summary>A string, or a list of strings (stop, stop_sequences).</summary>
    public static List<string> StringOrList(JsonObject o, string name, string path = "")
    {
        JsonNode? v = Get(o, name);
        var result = new List<string>();
        if (v is null)
        {
            return result;
        }
        if (v is JsonValue s && s.GetValueKind() == JsonValueKind.String)
        {
            result.Add(s.GetValue<string>());
            return result;
        }
        if (v is not JsonArray list)
        {
            throw ApiException.BadRequest(Join(path, name), $"expected a string or an array of strings, got {Describe(v)}");
        }
        for (int i = 0; i < list.Count; i++)
        {
            result.Add(list[i] is JsonValue item && item.GetValueKind() == JsonValueKind.String
                ? item.GetValue<string>()
                : throw ApiException.BadRequest($"{Join(path, name)}[{i}]", $"expected a string, got {Describe(list[i])}"));
        }
        return result;
    }
}
