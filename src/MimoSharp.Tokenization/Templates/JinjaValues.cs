using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace MimoSharp.Tokenization.Templates;

/// <summary>The value of a name that is not defined: renders empty, is falsy, and `is defined` is false.</summary>
internal sealed class Undefined
{
    public static readonly Undefined Instance = new();
}

/// <summary>namespace(...): a mutable bag that `set ns.attr = ...` can write from inside loops.</summary>
internal sealed class Namespace(Dictionary<string, object?> values)
{
    public Dictionary<string, object?> Values { get; } = values;
}

/// <summary>Something callable from a template: a global function, a macro, or a bound method.</summary>
internal delegate object? JinjaCallable(List<object?> args, Dictionary<string, object?> kwargs);

/// <summary>Python-flavoured value semantics used by templates: truthiness, equality, str(), repr(), tojson.</summary>
internal static class JinjaValues
{
    public static object? FromJson(JsonNode? node) => node switch
    {
        null => null,
        JsonObject o => o.ToDictionary(p => p.Key, p => FromJson(p.Value)),
        JsonArray a => a.Select(FromJson).ToList(),
        JsonValue v when v.TryGetValue(out bool b) => b,
        JsonValue v when v.TryGetValue(out string? s) => s,
        JsonValue v when v.TryGetValue(out long l) => l,
        JsonValue v when v.TryGetValue(out double d) => d,
        JsonValue v => v.ToJsonString(),
        _ => null,
    };

    public static bool Truthy(object? value) => value switch
    {
        null or Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> list => list.Count > 0,
        Dictionary<string, object?> dict => dict.Count > 0,
        _ => true,
    };

    public static bool AreEqual(object? a, object? b)
    {
        if (a is Undefined || b is Undefined)
        {
            return a is Undefined && b is Undefined;
        }
        if (IsNumber(a) && IsNumber(b))
        {
            return ToDouble(a) == ToDouble(b);
        }
        return (a, b) switch
        {
            (null, null) => true,
            (string x, string y) => x == y,
            (List<object?> x, List<object?> y) => x.Count == y.Count && x.Zip(y).All(p => AreEqual(p.First, p.Second)),
            (Dictionary<string, object?> x, Dictionary<string, object?> y) => x.Count == y.Count && x.All(p => y.TryGetValue(p.Key, out object? v) && AreEqual(p.Value, v)),
            _ => Equals(a, b),
        };
    }

    public static bool IsNumber(object? v) => v is long or double || v is bool;

    public static double ToDouble(object? v) => v switch
    {
        long l => l,
        double d => d,
        bool b => b ? 1 : 0,
        _ => throw new TemplateException($"expected a number, got {TypeName(v)}"),
    };

    public static string TypeName(object? v) => v switch
    {
        null => "none",
        Undefined => "undefined",
        bool => "boolean",
        long => "integer",
        double => "float",
        string => "string",
        List<object?> => "list",
        Dictionary<string, object?> => "dict",
        _ => v.GetType().Name,
    };

    /// <summary>Python str(): what {{ value }} prints.</summary>
    public static string Str(object? value) => value switch
    {
        null => "None",
        Undefined => "",
        string s => s,
        _ => Repr(value),
    };

    /// <summary>Python repr().</summary>
    public static string Repr(object? value) => value switch
    {
        null => "None",
        Undefined => "",
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => FormatDouble(d),
        string s => "'" + s.Replace("\\", "\\\\").Replace("'", "\\'").Replace("\n", "\\n") + "'",
        List<object?> list => "[" + string.Join(", ", list.Select(Repr)) + "]",
        Dictionary<string, object?> dict => "{" + string.Join(", ", dict.Select(p => Repr(p.Key) + ": " + Repr(p.Value))) + "}",
        Namespace => "<Namespace>",
        _ => value.ToString() ?? "",
    };

    private static string FormatDouble(double d)
    {
        if (double.IsInfinity(d))
        {
            return d > 0 ? "inf" : "-inf";
        }
        string r = d.ToString("R", CultureInfo.InvariantCulture);
        return r.Contains('.') || r.Contains('E') || r.Contains("NaN") ? r.Replace("E+", "e+").Replace("E-", "e-") : r + ".0";
    }

    /// <summary>Hugging Face's tojson: json.dumps(ensure_ascii=False) with Python's default ", " / ": " separators, or indent.</summary>
    public static string ToJson(object? value, int? indent)
    {
        var text = new StringBuilder();
        WriteJson(text, value, indent, 0);
        return text.ToString();
    }

    private static void WriteJson(StringBuilder text, object? value, int? indent, int depth)
    {
        switch (value)
        {
            case null or Undefined:
                text.Append("null");
                break;
            case bool b:
                text.Append(b ? "true" : "false");
                break;
            case long l:
                text.Append(l.ToString(CultureInfo.InvariantCulture));
                break;
            case double d:
                text.Append(FormatDouble(d));
                break;
            case string s:
                WriteJsonString(text, s);
                break;
            case List<object?> list:
                WriteContainer(text, '[', ']', list.Count, indent, depth, (i, sb) => WriteJson(sb, list[i], indent, depth + 1));
                break;
            case Dictionary<string, object?> dict:
                var entries = dict.ToList();
                WriteContainer(text, '{', '}', entries.Count, indent, depth, (i, sb) =>
                {
                    WriteJsonString(sb, entries[i].Key);
                    sb.Append(": ");
                    WriteJson(sb, entries[i].Value, indent, depth + 1);
                });
                break;
            default:
                WriteJsonString(text, Str(value));
                break;
        }
    }

    private static void WriteContainer(StringBuilder text, char open, char close, int count, int? indent, int depth, Action<int, StringBuilder> item)
    {
        text.Append(open);
        if (count == 0)
        {
            text.Append(close);
            return;
        }
        for (int i = 0; i < count; i++)
        {
            if (indent is int n)
            {
                text.Append(i == 0 ? "\n" : ",\n").Append(' ', n * (depth + 1));
            }
            else if (i > 0)
            {
                text.Append(", ");
            }
            item(i, text);
        }
        if (indent is int m)
        {
            text.Append('\n').Append(' ', m * depth);
        }
        text.Append(close);
    }

    private static void WriteJsonString(StringBuilder text, string s)
    {
        text.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': text.Append("\\\""); break;
                case '\\': text.Append("\\\\"); break;
                case '\n': text.Append("\\n"); break;
                case '\r': text.Append("\\r"); break;
                case '\t': text.Append("\\t"); break;
                case '\b': text.Append("\\b"); break;
                case '\f': text.Append("\\f"); break;
                default:
                    if (c < 0x20)
                    {
                        text.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        text.Append(c);
                    }
                    break;
            }
        }
        text.Append('"');
    }
}
