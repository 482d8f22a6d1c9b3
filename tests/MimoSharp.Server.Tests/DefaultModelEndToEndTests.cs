using System.ClientModel;
using System.Text.Json;
using Anthropic;
using Anthropic.Models.Messages;
using OpenAI;
using OpenAI.Chat;

namespace MimoSharp.Server.Tests;

/// <summary>
/// The trained default model (models/default) behind a real <c>mimo serve</c>, driven by the OpenAI and
/// Anthropic SDKs: answers in words, and tool calls in MiMo's XML form that the server turns into OpenAI
/// <c>tool_calls</c> (the chat stage of its training taught it a calculator tool). Greedy, so the outputs
/// repeat run to run.
/// </summary>
public sealed class DefaultModelEndToEndTests : IAsyncLifetime
{
    private const string Name = "mimo-default";
    private MimoServer _server = null!;

    private static string ModelDirectory => Path.Combine(TestPaths.Root, "models", "default");

    public async Task InitializeAsync()
    {
        _server = await MimoServer.StartAsync(new ServerOptions { ModelDirectory = ModelDirectory, Port = 0, ServedModelName = Name, Log = TextWriter.Null });
        await _server.Ready;
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private ChatClient OpenAI() => new(Name, new ApiKeyCredential("unused"),
        new OpenAIClientOptions { Endpoint = new Uri(_server.BaseUrl, "v1"), NetworkTimeout = TimeSpan.FromSeconds(120) });

    private static readonly ChatTool s_calculator = ChatTool.CreateFunctionTool("calculator",
        "Evaluate an arithmetic expression of integers with + - * / and parentheses.",
        BinaryData.FromString("""{"type": "object", "properties": {"expression": {"type": "string", "description": "The expression, e.g. (12 + 30) * 4"}}, "required": ["expression"]}"""));

    [Fact]
    public async Task TheModelCallsTheCalculatorThroughOpenAIToolCalls()
    {
        var options = new ChatCompletionOptions { Temperature = 0f, MaxOutputTokenCount = 64, Tools = { s_calculator } };
        ChatCompletion completion = (await OpenAI().CompleteChatAsync([new UserChatMessage("Use the calculator to work out 417 * 38.")], options)).Value;
        Assert.Equal(ChatFinishReason.ToolCalls, completion.FinishReason);
        ChatToolCall call = Assert.Single(completion.ToolCalls);
        Assert.Equal("calculator", call.FunctionName);
        using JsonDocument arguments = JsonDocument.Parse(call.FunctionArguments.ToString());
        string expression = arguments.RootElement.GetProperty("expression").GetString()!;
        // A 17M-parameter model copies numbers imperfectly: what is checked is the call's form, an expression.
        Assert.Matches(@"^\s*\d+\s*[-+*/]\s*\d+\s*$", expression);

        // Streamed, the same call arrives as tool_calls deltas: the first names the function.
        var names = new List<string>();
        var argumentText = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (StreamingChatCompletionUpdate update in OpenAI().CompleteChatStreamingAsync([new UserChatMessage("Use the calculator to work out 417 * 38.")], options))
        {
            foreach (StreamingChatToolCallUpdate delta in update.ToolCallUpdates)
            {
                if (delta.FunctionName is not null)
                {
                    names.Add(delta.FunctionName);
                }
                argumentText.Append(delta.FunctionArgumentsUpdate?.ToString());
            }
            finish = update.FinishReason ?? finish;
        }
        Assert.Equal(["calculator"], names);
        Assert.Equal(ChatFinishReason.ToolCalls, finish);
        Assert.Equal(arguments.RootElement.GetRawText().Replace(" ", ""), argumentText.ToString().Replace(" ", ""));
    }

    [Fact]
    public async Task TheModelAnswersAQuestionInWordsThroughBothApis()
    {
        var options = new ChatCompletionOptions { Temperature = 0f, MaxOutputTokenCount = 48 };
        ChatCompletion completion = (await OpenAI().CompleteChatAsync([new UserChatMessage("What does \"harbor\" mean?")], options)).Value;
        string text = completion.Content[0].Text;
        Assert.True(text.Count(char.IsLetter) >= 10, $"expected an answer in words, got \"{text}\"");
        Assert.DoesNotContain("<|im_", text);

        var anthropic = new AnthropicClient { ApiKey = "unused", BaseUrl = _server.BaseUrl.ToString().TrimEnd('/'), MaxRetries = 0 };
        Message message = await anthropic.Messages.Create(new MessageCreateParams
        {
            Model = Name,
            MaxTokens = 48,
            Messages = [new UserMessageParam("What does \"harbor\" mean?")],
        });
        Assert.True(message.Content.Count > 0);
        Assert.True(message.Usage.OutputTokens > 0);
    }
}
