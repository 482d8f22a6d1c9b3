namespace MimoSharp.Tokenization;

/// <summary>One turn of a conversation.</summary>
public sealed record ChatMessage(string Role, string Content);

/// <summary>
/// ChatML prompts (spec §5): <c>&lt;|im_start|&gt;{role}\n{content}&lt;|im_end|&gt;\n</c> per turn and
/// <c>&lt;|im_start|&gt;assistant\n</c> as the generation prompt. With thinking off, an empty
/// <c>&lt;think&gt;\n\n&lt;/think&gt;\n\n</c> follows the generation prompt (the Qwen3 template's
/// convention, which MiMo's follows: enable_thinking defaults to off). Used until the model's own
/// Jinja template can be rendered.
/// </summary>
public static class ChatMl
{
    public static string Render(IEnumerable<ChatMessage> messages, bool addGenerationPrompt = true, bool enableThinking = false)
    {
        var text = new System.Text.StringBuilder();
        foreach (ChatMessage message in messages)
        {
            if (message.Role is not ("system" or "user" or "assistant" or "tool"))
            {
                throw new ArgumentException($"unknown chat role \"{message.Role}\"; expected system, user, assistant or tool");
            }
            text.Append("<|im_start|>").Append(message.Role).Append('\n').Append(message.Content).Append("<|im_end|>\n");
        }
        if (addGenerationPrompt)
        {
            text.Append("<|im_start|>assistant\n");
            if (!enableThinking)
            {
                text.Append("<think>\n\n</think>\n\n");
            }
        }
        return text.ToString();
    }
}
