using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using MimoSharp.Tensors.Storage;
using MimoSharp.Tokenization;
using MimoSharp.Tokenization.Templates;

namespace MimoSharp.Cli.Commands;

/// <summary>`mimo template`: the prompt the model's chat template renders for a conversation.</summary>
internal static class TemplateCommand
{
    public static Command Create(TextWriter output)
    {
        var model = new Option<string>("--model") { Description = "Directory with tokenizer_config.json (or chat_template.jinja)", Required = true };
        var messages = new Option<string>("--messages") { Description = "JSON file: a list of {\"role\", \"content\", ...} messages", Required = true };
        var tools = new Option<string?>("--tools") { Description = "JSON file: a list of OpenAI tool definitions" };
        var thinking = new Option<bool>("--thinking") { Description = "Pass enable_thinking=true" };
        var noPrompt = new Option<bool>("--no-generation-prompt") { Description = "Leave out the assistant generation prompt" };
        var command = new Command("template", "Render a conversation with the model's chat template") { model, messages, tools, thinking, noPrompt };
        command.SetAction(parse =>
        {
            MimoTokenizer tokenizer = MimoTokenizer.Load(parse.GetValue(model)!);
            JsonArray conversation = ReadArray(parse.GetValue(messages)!, "--messages");
            JsonArray? toolList = parse.GetValue(tools) is string t ? ReadArray(t, "--tools") : null;
            var extra = new Dictionary<string, JsonNode?> { ["enable_thinking"] = parse.GetValue(thinking) };
            string rendered = tokenizer.ChatTemplate is string source
                ? ChatTemplate.Parse(source).Render(conversation, toolList, !parse.GetValue(noPrompt), extra)
                : ChatMl.Render(conversation.Select(m => new ChatMessage(m?["role"]?.GetValue<string>() ?? "", m?["content"]?.GetValue<string>() ?? "")).ToList(),
                    !parse.GetValue(noPrompt), parse.GetValue(thinking));
            output.Write(rendered);
            return 0;
        });
        return command;
    }

    private static JsonArray ReadArray(string path, string option)
    {
        string text = InputFile.ReadText(path, "a JSON file", 64L << 20, message => new ArgumentException($"{option} {message}"));
        try
        {
            return JsonNode.Parse(text) as JsonArray ?? throw new ArgumentException($"{option} {path}: expected a JSON array");
        }
        catch (JsonException ex)
        {
            throw new ArgumentException($"{option} {path}: invalid JSON: {InputFile.DescribeJsonError(ex)}");
        }
    }
}
