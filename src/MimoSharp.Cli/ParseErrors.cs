using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using MimoSharp.Models;

namespace MimoSharp.Cli;

/// <summary>
/// The parser's errors in the words of the flags: "--temperature: "abc" is not a number", never a CLR
/// type name; and the bounds every command shares (--threads), checked before any work.
/// </summary>
internal static class ParseErrors
{
    public static List<string> Describe(ParseResult parse)
    {
        var problems = new List<string>();
        foreach (ParseError error in parse.Errors)
        {
            problems.Add(Describe(error));
        }
        if (problems.Count == 0)
        {
            CheckThreads(parse, problems);
        }
        return problems;
    }

    private static string Describe(ParseError error)
    {
        SymbolResult? symbol = error.SymbolResult;
        while (symbol is not null and not OptionResult)
        {
            symbol = symbol.Parent;
        }
        if (symbol is OptionResult option && option.Tokens.Count > 0 && error.Message.StartsWith("Cannot parse argument", StringComparison.Ordinal))
        {
            string flag = option.Option.Name;
            string value = option.Tokens[^1].Value;
            return $"{flag}: \"{value}\" is not {Expected(option.Option.ValueType)}";
        }
        if (symbol is OptionResult missing && missing.Tokens.Count == 0 && error.Message.Contains("Required argument missing", StringComparison.Ordinal))
        {
            return $"{missing.Option.Name} needs a value: {Expected(missing.Option.ValueType)}";
        }
        // The parser's own words for unknown flags and missing required options name the flag already.
        return StripClrNames(error.Message.Trim());
    }

    /// <summary>What a flag of <paramref name="type"/> takes, in words.</summary>
    public static string Expected(Type type)
    {
        Type t = Nullable.GetUnderlyingType(type) ?? type;
        if (t.IsEnum)
        {
            return $"one of {string.Join(", ", Enum.GetNames(t))}";
        }
        return t switch
        {
            _ when t == typeof(int) => "an integer in -2147483648..2147483647",
            _ when t == typeof(long) => "an integer",
            _ when t == typeof(ulong) => "a non-negative integer in 0..18446744073709551615",
            _ when t == typeof(float) || t == typeof(double) => "a number (such as 0.7)",
            _ when t == typeof(bool) => "true or false",
            _ => "a value of the right form",
        };
    }

    /// <summary>Bound shared by every command that loads a model: more threads than this only adds contention (and OS threads).</summary>
    public static int MaxThreads => ModelLoadOptions.MaxThreads;

    private static void CheckThreads(ParseResult parse, List<string> problems)
    {
        foreach (SymbolResult child in parse.CommandResult.Children)
        {
            if (child is OptionResult { Option.Name: "--threads" } option && option.Tokens.Count > 0)
            {
                string text = option.Tokens[^1].Value;
                if (int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int threads) && (threads < 1 || threads > MaxThreads))
                {
                    problems.Add($"--threads is {threads}; expected 1..{MaxThreads} (4 per core on this machine of {Environment.ProcessorCount})");
                }
            }
        }
    }

    /// <summary>An exception's message for the user: ArgumentException's "(Parameter 'x')" suffix and "Actual value was" line dropped.</summary>
    public static string MessageOf(Exception ex)
    {
        string message = ex.Message;
        if (ex is ArgumentException { ParamName: string name })
        {
            message = message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal);
        }
        int actual = message.IndexOf("\nActual value was", StringComparison.Ordinal);
        if (actual < 0)
        {
            actual = message.IndexOf(Environment.NewLine + "Actual value was", StringComparison.Ordinal);
        }
        if (actual >= 0)
        {
            message = message[..actual];
        }
        return StripClrNames(message.Trim());
    }

    private static string StripClrNames(string message) =>
        System.Text.RegularExpressions.Regex.Replace(message, @"'?System\.Nullable`1\[System\.(\w+)\]'?|'?System\.(Int32|Int64|UInt64|Single|Double|Boolean|String)'?|'?MimoSharp\.[\w.]+\.(\w+)'?",
            m => (m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Success ? m.Groups[2].Value : m.Groups[3].Value) switch
            {
                "Int32" or "Int64" or "UInt64" => "an integer",
                "Single" or "Double" => "a number",
                "Boolean" => "true or false",
                "String" => "text",
                var other => other,
            });
}
