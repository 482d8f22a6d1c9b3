using System.Globalization;

namespace MimoSharp.Tokenization.Templates;

internal abstract class Expr
{
    public int Line { get; init; }

    public abstract object? Eval(JinjaContext context);

    protected TemplateException Error(string message) => new($"line {Line}: {message}");
}

internal sealed class LiteralExpr(object? value) : Expr
{
    public override object? Eval(JinjaContext context) => value;
}

internal sealed class NameExpr(string name) : Expr
{
    public string Name => name;

    public override object? Eval(JinjaContext context) => context.Get(name);
}

internal sealed class ListExpr(List<Expr> items) : Expr
{
    public override object? Eval(JinjaContext context) => items.Select(i => i.Eval(context)).ToList();
}

internal sealed class DictExpr(List<(Expr Key, Expr Value)> entries) : Expr
{
    public override object? Eval(JinjaContext context) =>
        entries.ToDictionary(e => JinjaValues.Str(e.Key.Eval(context)), e => e.Value.Eval(context));
}

internal sealed class AttributeExpr(Expr target, string name) : Expr
{
    public override object? Eval(JinjaContext context) => Members.Get(target.Eval(context), name, Line);
}

internal sealed class IndexExpr(Expr target, Expr index) : Expr
{
    public override object? Eval(JinjaContext context)
    {
        object? value = target.Eval(context);
        object? key = index.Eval(context);
        switch (value, key)
        {
            case (List<object?> list, long i):
                long at = i < 0 ? list.Count + i : i;
                return at >= 0 && at < list.Count ? list[(int)at] : Undefined.Instance;
            case (string s, long i):
                long c = i < 0 ? s.Length + i : i;
                return c >= 0 && c < s.Length ? s[(int)c].ToString() : Undefined.Instance;
            case (_, string name):
                return Members.Get(value, name, Line);
            case (null or Undefined, _):
                return Undefined.Instance;
            default:
                throw Error($"cannot index a {JinjaValues.TypeName(value)} with a {JinjaValues.TypeName(key)}");
        }
    }
}

internal sealed class SliceExpr(Expr target, Expr? start, Expr? stop, Expr? step) : Expr
{
    public override object? Eval(JinjaContext context)
    {
        object? value = target.Eval(context);
        long? Get(Expr? e) => e?.Eval(context) switch { long l => l, null or Undefined => null, object other => throw Error($"slice bounds must be integers, got {JinjaValues.TypeName(other)}") };
        long? a = Get(start), b = Get(stop), s = Get(step) ?? 1;
        if (s == 0)
        {
            throw Error("slice step cannot be zero");
        }
        int count = value switch { List<object?> l => l.Count, string str => str.Length, _ => throw Error($"cannot slice a {JinjaValues.TypeName(value)}") };
        var indices = new List<int>();
        if (s > 0)
        {
            long from = Clamp(a ?? 0, count, false), to = Clamp(b ?? count, count, false);
            for (long i = from; i < to; i += s.Value)
            {
                indices.Add((int)i);
            }
        }
        else
        {
            long from = Clamp(a ?? count - 1, count, true), to = b is null ? -1 : Clamp(b.Value, count, true);
            for (long i = from; i > to; i += s.Value)
            {
                indices.Add((int)i);
            }
        }
        return value is string text ? string.Concat(indices.Select(i => text[i])) : indices.Select(i => ((List<object?>)value!)[i]).ToList();
    }

    private static long Clamp(long index, int count, bool backwards)
    {
        if (index < 0)
        {
            index += count;
        }
        return backwards ? Math.Clamp(index, -1, count - 1) : Math.Clamp(index, 0, count);
    }
}

internal sealed class CallExpr(Expr target, List<Expr> args, List<(string Name, Expr Value)> kwargs) : Expr
{
    public override object? Eval(JinjaContext context)
    {
        object? callee = target.Eval(context);
        if (callee is not JinjaCallable function)
        {
            string what = target is NameExpr n ? $"\"{n.Name}\"" : "this expression";
            throw Error(callee is Undefined ? $"{what} is not defined" : $"{what} is a {JinjaValues.TypeName(callee)}, not something callable");
        }
        try
        {
            return function(args.Select(a => a.Eval(context)).ToList(), kwargs.ToDictionary(k => k.Name, k => k.Value.Eval(context)));
        }
        catch (TemplateException ex) when (!ex.Message.StartsWith("line ", StringComparison.Ordinal))
        {
            throw Error(ex.Message);
        }
    }
}

internal sealed class FilterExpr(Expr target, string name, List<Expr> args, List<(string Name, Expr Value)> kwargs) : Expr
{
    public override object? Eval(JinjaContext context)
    {
        object? value = target.Eval(context);
        List<object?> a = args.Select(x => x.Eval(context)).ToList();
        Dictionary<string, object?> k = kwargs.ToDictionary(x => x.Name, x => x.Value.Eval(context));
        try
        {
            return Filters.Apply(name, value, a, k);
        }
        catch (TemplateException ex) when (!ex.Message.StartsWith("line ", StringComparison.Ordinal))
        {
            throw Error(ex.Message);
        }
    }
}

internal sealed class TestExpr(Expr target, string name, List<Expr> args, bool negated) : Expr
{
    public override object? Eval(JinjaContext context)
    {
        object? value = target.Eval(context);
        List<object?> a = args.Select(x => x.Eval(context)).ToList();
        bool result = name switch
        {
            "defined" => value is not Undefined,
            "undefined" => value is Undefined,
            "none" => value is null,
            "string" => value is string,
            "number" => value is long or double,
            "integer" => value is long,
            "float" => value is double,
            "boolean" => value is bool,
            "true" => value is true,
            "false" => value is false,
            "mapping" => value is Dictionary<string, object?> or Namespace,
            "iterable" => value is List<object?> or Dictionary<string, object?> or string,
            "sequence" => value is List<object?> or string,
            "callable" => value is JinjaCallable,
            "odd" => value is long l && l % 2 != 0,
            "even" => value is long e && e % 2 == 0,
            "equalto" or "eq" or "==" => JinjaValues.AreEqual(value, a.ElementAtOrDefault(0)),
            "ne" or "!=" => !JinjaValues.AreEqual(value, a.ElementAtOrDefault(0)),
            "in" => Operators.Contains(a.ElementAtOrDefault(0), value, Line),
            _ => throw Error($"unknown test \"{name}\""),
        };
        return result != negated;
    }
}

internal sealed class UnaryExpr(string op, Expr operand) : Expr
{
    public override object? Eval(JinjaContext context)
    {
        object? value = operand.Eval(context);
        return op switch
        {
            "not" => !JinjaValues.Truthy(value),
            "-" => value switch { long l => (object)(-l), double d => -d, _ => throw Error($"cannot negate a {JinjaValues.TypeName(value)}") },
            _ => value,
        };
    }
}

internal sealed class BinaryExpr(string op, Expr left, Expr right) : Expr
{
    public override object? Eval(JinjaContext context)
    {
        if (op == "and")
        {
            object? l = left.Eval(context);
            return JinjaValues.Truthy(l) ? right.Eval(context) : l;
        }
        if (op == "or")
        {
            object? l = left.Eval(context);
            return JinjaValues.Truthy(l) ? l : right.Eval(context);
        }
        object? a = left.Eval(context), b = right.Eval(context);
        return op switch
        {
            "==" => JinjaValues.AreEqual(a, b),
            "!=" => !JinjaValues.AreEqual(a, b),
            "in" => Operators.Contains(b, a, Line),
            "not in" => !Operators.Contains(b, a, Line),
            "<" or ">" or "<=" or ">=" => Operators.Compare(op, a, b, Line),
            "~" => JinjaValues.Str(a) + JinjaValues.Str(b),
            _ => Operators.Arithmetic(op, a, b, Line),
        };
    }
}

internal sealed class ConditionalExpr(Expr condition, Expr then, Expr? otherwise) : Expr
{
    public override object? Eval(JinjaContext context) =>
        JinjaValues.Truthy(condition.Eval(context)) ? then.Eval(context) : otherwise?.Eval(context) ?? Undefined.Instance;
}

internal static class Operators
{
    public static bool Contains(object? container, object? item, int line) => container switch
    {
        string s when item is string sub => s.Contains(sub, StringComparison.Ordinal),
        List<object?> list => list.Any(x => JinjaValues.AreEqual(x, item)),
        Dictionary<string, object?> dict => item is string key && dict.ContainsKey(key),
        null or Undefined => false,
        _ => throw new TemplateException($"line {line}: \"in\" needs a string, list or mapping on its right, got {JinjaValues.TypeName(container)}"),
    };

    public static bool Compare(string op, object? a, object? b, int line)
    {
        int order;
        if (JinjaValues.IsNumber(a) && JinjaValues.IsNumber(b))
        {
            order = JinjaValues.ToDouble(a).CompareTo(JinjaValues.ToDouble(b));
        }
        else if (a is string x && b is string y)
        {
            order = string.CompareOrdinal(x, y);
        }
        else
        {
            throw new TemplateException($"line {line}: cannot compare {JinjaValues.TypeName(a)} with {JinjaValues.TypeName(b)}");
        }
        return op switch { "<" => order < 0, ">" => order > 0, "<=" => order <= 0, _ => order >= 0 };
    }

    public static object? Arithmetic(string op, object? a, object? b, int line)
    {
        if (op == "+" && a is string s1 && b is string s2)
        {
            return s1 + s2;
        }
        if (op == "+" && a is List<object?> l1 && b is List<object?> l2)
        {
            return l1.Concat(l2).ToList();
        }
        if (op == "*" && a is string rep && b is long times)
        {
            return string.Concat(Enumerable.Repeat(rep, (int)Math.Max(0, times)));
        }
        if (!JinjaValues.IsNumber(a) || !JinjaValues.IsNumber(b))
        {
            throw new TemplateException($"line {line}: cannot apply \"{op}\" to {JinjaValues.TypeName(a)} and {JinjaValues.TypeName(b)}");
        }
        if (a is long x && b is long y && op is "+" or "-" or "*" or "//" or "%" or "**")
        {
            return op switch
            {
                "+" => x + y,
                "-" => x - y,
                "*" => x * y,
                "//" => y == 0 ? throw new TemplateException($"line {line}: integer division by zero") : (long)Math.Floor((double)x / y),
                "%" => y == 0 ? throw new TemplateException($"line {line}: modulo by zero") : ((x % y) + y) % y,
                _ => (long)Math.Pow(x, y),
            };
        }
        double p = JinjaValues.ToDouble(a), q = JinjaValues.ToDouble(b);
        return op switch
        {
            "+" => p + q,
            "-" => p - q,
            "*" => p * q,
            "/" => p / q,
            "//" => Math.Floor(p / q),
            "%" => p - q * Math.Floor(p / q),
            "**" => Math.Pow(p, q),
            _ => throw new TemplateException($"line {line}: unknown operator \"{op}\""),
        };
    }
}

/// <summary>Attributes and methods of values: dict keys, namespace fields, and the string/dict methods chat templates call.</summary>
internal static class Members
{
    public static object? Get(object? value, string name, int line)
    {
        switch (value)
        {
            case Dictionary<string, object?> dict:
                if (dict.TryGetValue(name, out object? v))
                {
                    return v;
                }
                return name switch
                {
                    "items" => Method((_, _) => dict.Select(p => (object?)new List<object?> { p.Key, p.Value }).ToList()),
                    "keys" => Method((_, _) => dict.Keys.Cast<object?>().ToList()),
                    "values" => Method((_, _) => dict.Values.ToList()),
                    "get" => Method((a, _) => dict.TryGetValue(JinjaValues.Str(a[0]), out object? g) ? g : a.Count > 1 ? a[1] : null),
                    _ => Undefined.Instance,
                };
            case Namespace ns:
                return ns.Values.TryGetValue(name, out object? n) ? n : Undefined.Instance;
            case string s:
                return StringMethod(s, name, line);
            case List<object?> list when name == "append":
                return Method((a, _) => { list.Add(a[0]); return null; });
            default:
                return Undefined.Instance;
        }
    }

    private static JinjaCallable Method(Func<List<object?>, Dictionary<string, object?>, object?> body) => (a, k) => body(a, k);

    private static object? StringMethod(string s, string name, int line)
    {
        string? Chars(List<object?> a) => a.Count > 0 && a[0] is string c ? c : null;
        return name switch
        {
            "startswith" => Method((a, _) => a[0] is List<object?> options ? options.Any(o => s.StartsWith(JinjaValues.Str(o), StringComparison.Ordinal)) : s.StartsWith(JinjaValues.Str(a[0]), StringComparison.Ordinal)),
            "endswith" => Method((a, _) => a[0] is List<object?> options ? options.Any(o => s.EndsWith(JinjaValues.Str(o), StringComparison.Ordinal)) : s.EndsWith(JinjaValues.Str(a[0]), StringComparison.Ordinal)),
            "strip" => Method((a, _) => Chars(a) is string c ? s.Trim(c.ToCharArray()) : s.Trim()),
            "lstrip" => Method((a, _) => Chars(a) is string c ? s.TrimStart(c.ToCharArray()) : s.TrimStart()),
            "rstrip" => Method((a, _) => Chars(a) is string c ? s.TrimEnd(c.ToCharArray()) : s.TrimEnd()),
            "upper" => Method((_, _) => s.ToUpperInvariant()),
            "lower" => Method((_, _) => s.ToLowerInvariant()),
            "title" => Method((_, _) => CultureInfo.InvariantCulture.TextInfo.ToTitleCase(s.ToLowerInvariant())),
            "capitalize" => Method((_, _) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant()),
            "replace" => Method((a, _) => s.Replace(JinjaValues.Str(a[0]), JinjaValues.Str(a[1]), StringComparison.Ordinal)),
            "split" => Method((a, _) => Split(s, a)),
            "join" => Method((a, _) => string.Join(s, ((List<object?>)a[0]!).Select(JinjaValues.Str))),
            "find" => Method((a, _) => (long)s.IndexOf(JinjaValues.Str(a[0]), StringComparison.Ordinal)),
            "count" => Method((a, _) => (long)((s.Length - s.Replace(JinjaValues.Str(a[0]), "", StringComparison.Ordinal).Length) / Math.Max(1, JinjaValues.Str(a[0]).Length))),
            _ => throw new TemplateException($"line {line}: strings have no method \"{name}\""),
        };
    }

    private static List<object?> Split(string s, List<object?> a)
    {
        string? separator = a.Count > 0 && a[0] is string sep ? sep : null;
        int max = a.Count > 1 && a[1] is long m ? (int)m : -1;
        string[] parts = separator is null
            ? s.Split((char[]?)null, max < 0 ? int.MaxValue : max + 1, StringSplitOptions.RemoveEmptyEntries)
            : s.Split(separator, max < 0 ? int.MaxValue : max + 1);
        return parts.Cast<object?>().ToList();
    }
}

internal static class Filters
{
    public static object? Apply(string name, object? value, List<object?> args, Dictionary<string, object?> kwargs)
    {
        object? Arg(int i, string key, object? fallback) => i < args.Count ? args[i] : kwargs.TryGetValue(key, out object? v) ? v : fallback;
        return name switch
        {
            "tojson" => JinjaValues.ToJson(value, Arg(0, "indent", null) is long indent ? (int)indent : null),
            "trim" => JinjaValues.Str(value).Trim(),
            "length" or "count" => value switch
            {
                string s => (long)s.Length,
                List<object?> l => (long)l.Count,
                Dictionary<string, object?> d => (long)d.Count,
                _ => throw new TemplateException($"filter \"{name}\" needs a string, list or mapping, got {JinjaValues.TypeName(value)}"),
            },
            "string" => JinjaValues.Str(value),
            "upper" => JinjaValues.Str(value).ToUpperInvariant(),
            "lower" => JinjaValues.Str(value).ToLowerInvariant(),
            "capitalize" => JinjaValues.Str(value) is { Length: > 0 } c ? char.ToUpperInvariant(c[0]) + c[1..].ToLowerInvariant() : "",
            "title" => CultureInfo.InvariantCulture.TextInfo.ToTitleCase(JinjaValues.Str(value).ToLowerInvariant()),
            "safe" => value,
            "join" => string.Join(JinjaValues.Str(Arg(0, "d", "")), AsList(value, name).Select(JinjaValues.Str)),
            "default" or "d" => value is Undefined || (JinjaValues.Truthy(Arg(1, "boolean", false)) && !JinjaValues.Truthy(value)) ? Arg(0, "default_value", "") : value,
            "first" => AsList(value, name).FirstOrDefault(Undefined.Instance),
            "last" => AsList(value, name).LastOrDefault(Undefined.Instance),
            "list" => AsList(value, name),
            "reverse" => value is string rs ? new string(rs.Reverse().ToArray()) : Enumerable.Reverse(AsList(value, name)).ToList(),
            "items" => value is Dictionary<string, object?> dict ? dict.Select(p => (object?)new List<object?> { p.Key, p.Value }).ToList() : throw new TemplateException($"filter \"items\" needs a mapping, got {JinjaValues.TypeName(value)}"),
            "int" => value switch { long l => l, double d => (long)d, string s when long.TryParse(s.Trim(), out long p) => p, _ => Arg(0, "default", 0L) },
            "float" => value switch { long l => (double)l, double d => d, string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double p) => p, _ => Arg(0, "default", 0.0) },
            "abs" => value switch { long l => (object)Math.Abs(l), double d => Math.Abs(d), _ => throw new TemplateException($"filter \"abs\" needs a number, got {JinjaValues.TypeName(value)}") },
            "replace" => JinjaValues.Str(value).Replace(JinjaValues.Str(args[0]), JinjaValues.Str(args[1]), StringComparison.Ordinal),
            "unique" => AsList(value, name).Aggregate(new List<object?>(), (acc, x) => { if (!acc.Any(y => JinjaValues.AreEqual(x, y))) { acc.Add(x); } return acc; }),
            "map" => AsList(value, name).Select(x => kwargs.TryGetValue("attribute", out object? attr) ? Members.Get(x, JinjaValues.Str(attr), 0) : Apply(JinjaValues.Str(args[0]), x, args.Skip(1).ToList(), [])).ToList(),
            "selectattr" or "rejectattr" => AsList(value, name).Where(x => SelectAttr(x, args) == (name == "selectattr")).ToList(),
            _ => throw new TemplateException($"unknown filter \"{name}\""),
        };
    }

    private static bool SelectAttr(object? item, List<object?> args)
    {
        object? attr = Members.Get(item, JinjaValues.Str(args[0]), 0);
        if (args.Count == 1)
        {
            return JinjaValues.Truthy(attr);
        }
        string test = JinjaValues.Str(args[1]);
        object? operand = args.ElementAtOrDefault(2);
        return test switch
        {
            "defined" => attr is not Undefined,
            "undefined" => attr is Undefined,
            "none" => attr is null,
            "equalto" or "eq" or "==" => JinjaValues.AreEqual(attr, operand),
            "ne" or "!=" => !JinjaValues.AreEqual(attr, operand),
            "string" => attr is string,
            _ => throw new TemplateException($"selectattr test \"{test}\" is not supported"),
        };
    }

    private static List<object?> AsList(object? value, string filter) => value switch
    {
        List<object?> list => list,
        string s => s.Select(c => (object?)c.ToString()).ToList(),
        Dictionary<string, object?> d => d.Keys.Cast<object?>().ToList(),
        null or Undefined => [],
        _ => throw new TemplateException($"filter \"{filter}\" needs a sequence, got {JinjaValues.TypeName(value)}"),
    };
}
