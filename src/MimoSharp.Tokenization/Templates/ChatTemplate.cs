using System.Text;
using System.Text.Json.Nodes;

namespace MimoSharp.Tokenization.Templates;

/// <summary>
/// A Hugging Face chat template (Jinja) compiled once and rendered per conversation, with the
/// variables apply_chat_template passes: messages, tools, add_generation_prompt, the special tokens,
/// and extra keyword arguments such as enable_thinking. The Jinja subset is the one chat templates
/// use; anything else fails to parse with the construct and line named.
/// </summary>
public sealed class ChatTemplate
{
    private readonly List<Node> _nodes;

    private ChatTemplate(List<Node> nodes) => _nodes = nodes;

    public static ChatTemplate Parse(string source) => new(new JinjaParser(JinjaLexer.Tokenize(source)).ParseTemplate());

    /// <summary>Renders with the given variables (JSON values: messages, tools, flags...).</summary>
    public string Render(IReadOnlyDictionary<string, JsonNode?> variables)
    {
        var globals = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["raise_exception"] = (JinjaCallable)((args, _) => throw new TemplateException($"the template raised: {JinjaValues.Str(args.FirstOrDefault())}")),
            ["namespace"] = (JinjaCallable)((_, kwargs) => new Namespace(new Dictionary<string, object?>(kwargs))),
            ["range"] = (JinjaCallable)((args, _) => Range(args)),
            ["strftime_now"] = (JinjaCallable)((args, _) => DateTime.Now.ToString(ConvertStrftime(JinjaValues.Str(args[0])), System.Globalization.CultureInfo.InvariantCulture)),
        };
        foreach ((string name, JsonNode? value) in variables)
        {
            globals[name] = JinjaValues.FromJson(value);
        }
        var output = new StringBuilder();
        Node.RenderAll(_nodes, new JinjaContext(globals), output);
        return output.ToString();
    }

    /// <summary>apply_chat_template's variables.</summary>
    public string Render(JsonArray messages, JsonArray? tools = null, bool addGenerationPrompt = true, IReadOnlyDictionary<string, JsonNode?>? extra = null,
        string? bosToken = null, string? eosToken = null)
    {
        var variables = new Dictionary<string, JsonNode?>(StringComparer.Ordinal)
        {
            ["messages"] = messages.DeepClone(),
            ["add_generation_prompt"] = addGenerationPrompt,
        };
        if (tools is not null)
        {
            variables["tools"] = tools.DeepClone();
        }
        if (bosToken is not null)
        {
            variables["bos_token"] = bosToken;
        }
        if (eosToken is not null)
        {
            variables["eos_token"] = eosToken;
        }
        foreach ((string key, JsonNode? value) in extra ?? new Dictionary<string, JsonNode?>())
        {
            variables[key] = value?.DeepClone();
        }
        return Render(variables);
    }

    private static List<object?> Range(List<object?> args)
    {
        long start = 0, stop, step = 1;
        if (args.Count == 1)
        {
            stop = (long)args[0]!;
        }
        else
        {
            start = (long)args[0]!;
            stop = (long)args[1]!;
            step = args.Count > 2 ? (long)args[2]! : 1;
        }
        var result = new List<object?>();
        for (long i = start; step > 0 ? i < stop : i > stop; i += step)
        {
            result.Add(i);
        }
        return result;
    }

    private static string ConvertStrftime(string format) => format
        .Replace("%Y", "yyyy").Replace("%m", "MM").Replace("%d", "dd").Replace("%B", "MMMM").Replace("%b", "MMM")
        .Replace("%A", "dddd").Replace("%a", "ddd").Replace("%H", "HH").Replace("%M", "mm").Replace("%S", "ss");
}
