using System.Text.Json.Nodes;
using MimoSharp.Tokenization.Templates;

namespace MimoSharp.Tokenization;

/// <summary>
/// Renders a conversation as the model expects it: with the model's own Jinja chat template when its
/// tokenizer files ship one, else ChatML. enable_thinking is passed as the template variable
/// (MiMo's template treats it as off unless set).
/// </summary>
public sealed class ChatPrompt
{
    private readonly ChatTemplate? _template;

    public ChatPrompt(MimoTokenizer tokenizer)
    {
        _template = tokenizer.ChatTemplate is string source ? ChatTemplate.Parse(source) : null;
    }

    /// <summary>True when the model's own template is used (false: ChatML fallback).</summary>
    public bool UsesModelTemplate => _template is not null;

    public string Render(IReadOnlyList<ChatMessage> messages, bool enableThinking, JsonArray? tools = null, bool addGenerationPrompt = true)
    {
        if (_template is null)
        {
            return ChatMl.Render(messages, addGenerationPrompt, enableThinking);
        }
        var array = new JsonArray(messages.Select(m => (JsonNode)new JsonObject { ["role"] = m.Role, ["content"] = m.Content }).ToArray());
        return _template.Render(array, tools, addGenerationPrompt, new Dictionary<string, JsonNode?> { ["enable_thinking"] = enableThinking });
    }
}
