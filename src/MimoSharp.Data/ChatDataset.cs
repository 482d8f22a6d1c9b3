using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace MimoSharp.Data;

/// <summary>
/// One chat conversation for the chat stage. <paramref name="Source"/>/<paramref name="Document"/> name
/// what it was derived from, which decides its split: a conversation made from a held-out document is
/// held out too. <paramref name="Tools"/> are the OpenAI tool definitions the prompt offers.
/// </summary>
public sealed record ChatExample(string Kind, string Source, string Document, JsonArray Messages, JsonArray? Tools = null);

/// <summary>
/// The chat stage's conversations, from data derivable here: manual-page NAME lines, WordNet glosses
/// and Python docstrings as question and answer; synthetic arithmetic with exact answers, half of it
/// with a &lt;think&gt; trace of the working; and calculator tool calls in MiMo's XML form (the tool's
/// result computed here), rendered by the tokenizer's chat template.
/// </summary>
public static partial class ChatDataset
{
    public static JsonArray CalculatorTools() => JsonNode.Parse("""
        [{"type": "function", "function": {"name": "calculator", "description": "Evaluate an arithmetic expression of integers with + - * / and parentheses.",
          "parameters": {"type": "object", "properties": {"expression": {"type": "string", "description": "The expression, e.g. (12 + 30) * 4"}}, "required": ["expression"]}}}]
        """)!.AsArray();

    /// <summary>A man page's NAME line: the command(s) and what they do.</summary>
    public sealed record ManEntry(string Document, string Command, string Section, string Description);

    /// <summary>A WordNet synset: its words, part of speech and gloss.</summary>
    public sealed record Definition(string Document, string Word, string PartOfSpeech, string Gloss);

    /// <summary>A top-level Python function or class and the first paragraph of its docstring.</summary>
    public sealed record Docstring(string Document, string QualifiedName, bool IsClass, string Summary);

    /// <summary>Parses "ls - list directory contents" (or "a, b \- c") from a converted page.</summary>
    public static ManEntry? ParseManName(string document, string pageText)
    {
        if (Troff.NameLine(pageText) is not string line)
        {
            return null;
        }
        int dash = line.IndexOf(" - ", StringComparison.Ordinal);
        if (dash <= 0)
        {
            return null;
        }
        string command = line[..dash].Split(',')[0].Trim();
        string description = line[(dash + 3)..].Trim().TrimEnd('.');
        string section = Path.GetFileName(Path.GetDirectoryName(document) ?? "man1").Replace("man", "", StringComparison.Ordinal);
        bool plain = command.Length is > 0 and <= 40 && !command.Contains(' ') && description.Length is >= 8 and <= 200;
        return plain ? new ManEntry(document, command, section, description) : null;
    }

    [GeneratedRegex("^(def|class) ([A-Za-z]\\w*)\\b[^\\n]*:[ \\t]*\\n[ \\t]+[rRuU]?\"\"\"(.*?)(?:\\n[ \\t]*\\n|\"\"\")", RegexOptions.Multiline | RegexOptions.Singleline)]
    private static partial Regex TopLevelDocstring();

    /// <summary>The top-level functions and classes of a module with a docstring (the first paragraph).</summary>
    public static IEnumerable<Docstring> ParseDocstrings(string document, string source)
    {
        string module = document.EndsWith("/__init__.py", StringComparison.Ordinal) ? document[..^12] : document.EndsWith(".py", StringComparison.Ordinal) ? document[..^3] : document;
        module = module.Replace('/', '.');
        foreach (Match m in TopLevelDocstring().Matches(source))
        {
            string summary = Regex.Replace(m.Groups[3].Value, @"\s+", " ").Trim();
            if (summary.Length is >= 16 and <= 400 && !summary.Contains("\"\"\"", StringComparison.Ordinal) && !m.Groups[2].Value.StartsWith('_'))
            {
                yield return new Docstring(document, $"{module}.{m.Groups[2].Value}", m.Groups[1].Value == "class", summary);
            }
        }
    }

    private static JsonArray Conversation(params (string Role, string Content, string? Reasoning)[] turns)
    {
        var messages = new JsonArray();
        foreach ((string role, string content, string? reasoning) in turns)
        {
            var message = new JsonObject { ["role"] = role, ["content"] = content };
            if (reasoning is not null)
            {
                message["reasoning_content"] = reasoning;
            }
            messages.Add(message);
        }
        return messages;
    }

    private static T Pick<T>(Random random, IReadOnlyList<T> items) => items[random.Next(items.Count)];

    public static ChatExample FromMan(ManEntry entry, Random random)
    {
        string question = Pick(random, [$"What does the {entry.Command} command do?", $"What is {entry.Command}?", $"Explain {entry.Command} in one line.", $"What is `{entry.Command}` used for?", $"man {entry.Command}: what is it?"]);
        string what = entry.Section switch { "1" or "6" or "8" => "command", "2" => "system call", "3" => "library function", "4" => "device or special file", "5" => "file format", _ => "manual page" };
        string answer = $"{entry.Command} is a {what} (manual section {entry.Section}): {entry.Description}.";
        return new ChatExample("man", "man-pages", entry.Document, Conversation(("user", question, null), ("assistant", answer, null)));
    }

    public static ChatExample FromDefinition(Definition d, Random random, JsonArray? tools = null)
    {
        string question = Pick(random, [$"What does \"{d.Word}\" mean?", $"Define {d.Word}.", $"What is the meaning of the word \"{d.Word}\"?", $"What is a definition of {d.Word}?", $"{d.Word}: what does it mean?"]);
        string gloss = d.Gloss;
        int example = gloss.IndexOf("; \"", StringComparison.Ordinal);
        string answer = example > 0
            ? $"\"{d.Word}\" ({d.PartOfSpeech}) means {gloss[..example]}. For example: {gloss[(example + 2)..].Replace("; \"", " \"", StringComparison.Ordinal)}"
            : $"\"{d.Word}\" ({d.PartOfSpeech}) means {gloss}.";
        return new ChatExample(tools is null ? "definition" : "definition+tools", "wordnet", d.Document, Conversation(("user", question, null), ("assistant", answer, null)), tools);
    }

    public static ChatExample FromDocstring(Docstring d, Random random)
    {
        string what = d.IsClass ? "class" : "function";
        string question = Pick(random, [$"What does the Python {what} {d.QualifiedName} do?", $"In Python, what is {d.QualifiedName}?", $"Explain {d.QualifiedName} from the Python standard library.", $"What is {d.QualifiedName}() for?"]);
        string answer = $"{d.QualifiedName} is a {what} in Python's standard library. Its documentation says: {d.Summary}";
        return new ChatExample("docstring", "python-stdlib", d.Document, Conversation(("user", question, null), ("assistant", answer, null)));
    }

    /// <summary>"a op b" with its exact value; with <paramref name="think"/>, a trace that works it out by place value.</summary>
    public static ChatExample Arithmetic(Random random, bool think)
    {
        char op = "+-*"[random.Next(3)];
        long a = Number(random, op == '*' ? 1 + random.Next(3) : 1 + random.Next(4));
        long b = Number(random, op == '*' ? 1 + random.Next(2) : 1 + random.Next(4));
        long value = Apply(a, op, b);
        string expression = $"{a} {op} {b}";
        string question = Pick(random, [$"What is {expression}?", $"Compute {expression}.", $"{expression} = ?", $"Calculate {expression}.", $"What is {a} {OpWord(op)} {b}?"]);
        string answer = $"{expression} = {value}.";
        string? reasoning = think ? Trace(a, op, b) : null;
        return new ChatExample(think ? "arithmetic+think" : "arithmetic", "synthetic", $"arith/{a}{op}{b}", Conversation(("user", question, null), ("assistant", answer, reasoning)));
    }

    private static string OpWord(char op) => op switch { '+' => "plus", '-' => "minus", _ => "times" };

    private static long Number(Random random, int digits) => digits == 1 ? random.Next(10) : random.NextInt64((long)Math.Pow(10, digits - 1), (long)Math.Pow(10, digits));

    private static long Apply(long a, char op, long b) => op switch
    {
        '+' => a + b,
        '-' => a - b,
        '*' => a * b,
        '/' => a / b,
        _ => throw new ArgumentException($"unknown operator {op}"),
    };

    /// <summary>b split by place value (258 = 200 + 50 + 8), highest first, zeros left out.</summary>
    private static List<long> PlaceParts(long b)
    {
        var parts = new List<long>();
        for (long unit = 1; unit <= Math.Max(1, b); unit *= 10)
        {
            long digit = b / unit % 10;
            if (digit != 0)
            {
                parts.Insert(0, digit * unit);
            }
        }
        return parts.Count == 0 ? [0] : parts;
    }

    internal static string Trace(long a, char op, long b)
    {
        var lines = new List<string>();
        List<long> parts = PlaceParts(b);
        if (op == '*')
        {
            if (parts.Count == 1)
            {
                lines.Add($"{a} * {b} = {a * b}.");
            }
            else
            {
                lines.Add($"Split {b} by place value: {b} = {string.Join(" + ", parts)}.");
                lines.Add($"{a} * {b} = {string.Join(" + ", parts.Select(p => $"{a} * {p}"))}.");
                lines.AddRange(parts.Select(p => $"{a} * {p} = {a * p}."));
                long sum = a * parts[0];
                foreach (long p in parts.Skip(1))
                {
                    lines.Add($"{sum} + {a * p} = {sum + a * p}.");
                    sum += a * p;
                }
            }
        }
        else
        {
            lines.Add($"Split {b} by place value: {b} = {string.Join(" + ", parts)}.");
            long running = a;
            foreach (long p in parts)
            {
                long next = Apply(running, op, p);
                lines.Add($"{running} {op} {p} = {next}.");
                running = next;
            }
        }
        lines.Add($"So {a} {op} {b} = {Apply(a, op, b)}.");
        return string.Join("\n", lines);
    }

    /// <summary>A calculator call: the question, the XML tool call, the tool's result and the final answer.</summary>
    public static (ChatExample Call, ChatExample Answered) ToolCall(Random random)
    {
        (string expression, long value) = Expression(random);
        string question = Pick(random, [$"What is {expression}?", $"Please calculate {expression}.", $"Use the calculator to work out {expression}.", $"I need the value of {expression}.", $"Compute {expression} exactly."]);
        var call = new JsonObject
        {
            ["role"] = "assistant",
            ["content"] = "",
            ["tool_calls"] = new JsonArray(new JsonObject { ["type"] = "function", ["function"] = new JsonObject { ["name"] = "calculator", ["arguments"] = new JsonObject { ["expression"] = expression } } }),
        };
        string result = value.ToString(CultureInfo.InvariantCulture);
        string key = $"tool/{expression}";
        var first = new ChatExample("tool-call", "synthetic", key, new JsonArray(new JsonObject { ["role"] = "user", ["content"] = question }, call.DeepClone()), CalculatorTools());
        var full = new JsonArray(
            new JsonObject { ["role"] = "user", ["content"] = question },
            call,
            new JsonObject { ["role"] = "tool", ["content"] = result },
            new JsonObject { ["role"] = "assistant", ["content"] = Pick(random, [$"{expression} = {result}.", $"The result is {result}.", $"{expression} equals {result}."]) });
        return (first, new ChatExample("tool-answer", "synthetic", key, full, CalculatorTools()));
    }

    /// <summary>An expression too long for mental arithmetic, and its exact value.</summary>
    internal static (string Expression, long Value) Expression(Random random)
    {
        switch (random.Next(4))
        {
            case 0:
            {
                long a = Number(random, 3 + random.Next(3)), b = Number(random, 2 + random.Next(3));
                return ($"{a} * {b}", a * b);
            }
            case 1:
            {
                long q = Number(random, 2 + random.Next(3)), b = Number(random, 2 + random.Next(2)) + 1;
                return ($"{q * b} / {b}", q);
            }
            case 2:
            {
                long a = Number(random, 2 + random.Next(3)), b = Number(random, 2 + random.Next(3)), c = Number(random, 1 + random.Next(3));
                char op = "+-"[random.Next(2)];
                return ($"({a} {op} {b}) * {c}", Apply(a, op, b) * c);
            }
            default:
            {
                long a = Number(random, 4 + random.Next(3)), b = Number(random, 4 + random.Next(3)), c = Number(random, 2 + random.Next(3));
                return ($"{a} + {b} - {c}", a + b - c);
            }
        }
    }
}
