using System.ClientModel;
using System.Text;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;

namespace MimoSharp.Server.Tests;

/// <summary>The official OpenAI .NET SDK against the server.</summary>
[Collection(ServerCollection.Name)]
public sealed class OpenAIClientTests(ServerFixture fixture)
{
    private ChatClient Client() => new(ServerFixture.ModelName, new ApiKeyCredential(ServerFixture.ApiKey),
        new OpenAIClientOptions { Endpoint = new Uri(fixture.BaseUrl, "v1"), NetworkTimeout = TimeSpan.FromSeconds(120) });

    /// <summary>Greedy, with the end-of-turn ids banned so the answer runs to max_tokens.</summary>
    private static ChatCompletionOptions Greedy(int maxTokens)
    {
        var options = new ChatCompletionOptions { Temperature = 0f, MaxOutputTokenCount = maxTokens };
        foreach (int eos in ByteLevelIds.EndOfTurn)
        {
            options.LogitBiases[eos] = -100;
        }
        return options;
    }

    [Fact]
    public async Task NonStreamingChatReportsUsageAndLength()
    {
        ChatCompletion completion = (await Client().CompleteChatAsync([new UserChatMessage("Hello there")], Greedy(12))).Value;
        Assert.Equal(ChatFinishReason.Length, completion.FinishReason);
        Assert.Equal(12, completion.Usage.OutputTokenCount);
        Assert.True(completion.Usage.InputTokenCount > 10);
        Assert.Equal(completion.Usage.InputTokenCount + 12, completion.Usage.TotalTokenCount);
        Assert.InRange(completion.Usage.InputTokenDetails.CachedTokenCount, 0, completion.Usage.InputTokenCount);
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
    }

    [Fact]
    public async Task StreamingEqualsNonStreamingAndEndsWithUsage()
    {
        ChatClient client = Client();
        ChatCompletion whole = (await client.CompleteChatAsync([new UserChatMessage("Count to ten")], Greedy(20))).Value;
        var text = new StringBuilder();
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;
        ChatCompletionOptions options = Greedy(20);
        await foreach (StreamingChatCompletionUpdate update in client.CompleteChatStreamingAsync([new UserChatMessage("Count to ten")], options))
        {
            foreach (ChatMessageContentPart part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
            finish ??= update.FinishReason;
            usage ??= update.Usage;
        }
        Assert.Equal(string.Concat(whole.Content.Select(c => c.Text)), text.ToString());
        Assert.Equal(ChatFinishReason.Length, finish);
        // The SDK asks for stream_options.include_usage: the final chunk carries it.
        Assert.NotNull(usage);
        Assert.Equal(20, usage!.OutputTokenCount);
        Assert.Equal(whole.Usage.InputTokenCount, usage.InputTokenCount);
    }

    [Fact]
    public async Task SameSeedSameTextDifferentSeedsDiffer()
    {
        ChatClient client = Client();
        async Task<string> Run(long seed)
        {
            var options = new ChatCompletionOptions { Temperature = 1.0f, TopP = 1f, MaxOutputTokenCount = 24 };
#pragma warning disable OPENAI001
            options.Seed = seed;
#pragma warning restore OPENAI001
            ChatCompletion c = (await client.CompleteChatAsync([new UserChatMessage("Tell me a story")], options)).Value;
            return string.Concat(c.Content.Select(p => p.Text));
        }
        string a = await Run(7), b = await Run(7);
        Assert.Equal(a, b);
        string[] others = [await Run(8), await Run(9), await Run(10)];
        Assert.Contains(others, o => o != a);
    }

    [Fact]
    public async Task StopStringEndsTheAnswerBeforeIt()
    {
        ChatClient client = Client();
        string full = string.Concat((await client.CompleteChatAsync([new UserChatMessage("abc")], Greedy(40))).Value.Content.Select(c => c.Text));
        // A stop string taken from the middle of the greedy answer: the answer ends just before it.
        int cut = full.Length / 2;
        while (cut < full.Length && char.IsSurrogate(full[cut]))
        {
            cut++;
        }
        Assert.True(cut + 2 <= full.Length, $"answer too short: \"{full}\"");
        string stop = full.Substring(cut, 2);
        ChatCompletionOptions options = Greedy(40);
        options.StopSequences.Add(stop);
        ChatCompletion stopped = (await client.CompleteChatAsync([new UserChatMessage("abc")], options)).Value;
        string text = string.Concat(stopped.Content.Select(c => c.Text));
        Assert.Equal(ChatFinishReason.Stop, stopped.FinishReason);
        Assert.Equal(full[..full.IndexOf(stop, StringComparison.Ordinal)], text);
    }

    [Fact]
    public async Task ThinkingOnAndOffChangeThePrompt()
    {
        ChatClient client = Client();
        ChatCompletion off = (await client.CompleteChatAsync([new UserChatMessage("Think about it")], Greedy(4))).Value;
        ChatCompletionOptions on = Greedy(4);
#pragma warning disable OPENAI001
        on.ReasoningEffortLevel = ChatReasoningEffortLevel.Low;
#pragma warning restore OPENAI001
        ChatCompletion thinking = (await client.CompleteChatAsync([new UserChatMessage("Think about it")], on)).Value;
        // Off, MiMo's template closes an empty <think></think> block in the prompt; on, it leaves it to the model.
        Assert.True(off.Usage.InputTokenCount > thinking.Usage.InputTokenCount,
            $"thinking off should render the empty think block: off {off.Usage.InputTokenCount}, on {thinking.Usage.InputTokenCount}");
        var tokenized = await fixture.PostJson("/tokenize", """{"messages":[{"role":"user","content":"Think about it"}],"chat_template_kwargs":{"enable_thinking":true}}""");
        Assert.Equal(thinking.Usage.InputTokenCount, tokenized.Body!["count"]!.GetValue<int>());
    }

    [Fact]
    public async Task LogprobsComeWithEveryToken()
    {
        ChatCompletionOptions options = Greedy(6);
        options.IncludeLogProbabilities = true;
        options.TopLogProbabilityCount = 3;
        ChatCompletion completion = (await Client().CompleteChatAsync([new UserChatMessage("hi")], options)).Value;
        Assert.Equal(6, completion.ContentTokenLogProbabilities.Count);
        foreach (ChatTokenLogProbabilityDetails token in completion.ContentTokenLogProbabilities)
        {
            Assert.True(token.LogProbability <= 0);
            // Up to 3: the random model's padding rows (ids past the tokenizer) are left out.
            Assert.InRange(token.TopLogProbabilities.Count, 1, 3);
            Assert.Equal(token.TopLogProbabilities.OrderByDescending(t => t.LogProbability).Select(t => t.LogProbability), token.TopLogProbabilities.Select(t => t.LogProbability));
            // Greedy: the chosen token is the most likely one.
            Assert.Equal(token.TopLogProbabilities[0].LogProbability, token.LogProbability, 4);
        }
    }

    [Fact]
    public async Task JsonSchemaResponseFormatYieldsMatchingJson()
    {
        var options = new ChatCompletionOptions
        {
            MaxOutputTokenCount = 200,
            Temperature = 1f,
            ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat("answer", BinaryData.FromString("""
                {"type":"object","properties":{"ok":{"type":"boolean"},"color":{"enum":["red","green","blue"]}},"required":["ok","color"],"additionalProperties":false}
                """)),
        };
#pragma warning disable OPENAI001
        options.Seed = 3;
#pragma warning restore OPENAI001
        ChatCompletion completion = (await Client().CompleteChatAsync([new UserChatMessage("Give me JSON")], options)).Value;
        string text = string.Concat(completion.Content.Select(c => c.Text));
        JsonObject parsed = JsonNode.Parse(text)!.AsObject();
        Assert.True(parsed["ok"]!.GetValueKind() is System.Text.Json.JsonValueKind.True or System.Text.Json.JsonValueKind.False, text);
        Assert.Contains(parsed["color"]!.GetValue<string>(), new[] { "red", "green", "blue" });
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
    }

    [Fact]
    public async Task HistoryWithToolCallsAndReasoningIsAccepted()
    {
        ChatTool tool = ChatTool.CreateFunctionTool("get_weather", "Weather of a city",
            BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"""));
        var assistant = new AssistantChatMessage([ChatToolCall.CreateFunctionToolCall("call_1", "get_weather", BinaryData.FromString("""{"city":"Paris"}"""))]);
        ChatMessage[] messages = [new SystemChatMessage("You help."), new UserChatMessage("Weather in Paris?"), assistant, new ToolChatMessage("call_1", "sunny"), new UserChatMessage("And tomorrow?")];
        ChatCompletionOptions options = Greedy(8);
        options.Tools.Add(tool);
        ChatCompletion completion = (await Client().CompleteChatAsync(messages, options)).Value;
        Assert.True(completion.Usage.InputTokenCount > 100);
        Assert.Contains(completion.FinishReason, new[] { ChatFinishReason.Length, ChatFinishReason.Stop, ChatFinishReason.ToolCalls });
    }

    [Fact]
    public async Task RequiredToolChoiceForcesAParsedToolCall()
    {
        ChatTool tool = ChatTool.CreateFunctionTool("lookup", "Look something up",
            BinaryData.FromString("""{"type":"object","properties":{"q":{"type":"string"}}}"""));
        ChatCompletionOptions options = Greedy(60);
        options.Tools.Add(tool);
        options.ToolChoice = ChatToolChoice.CreateRequiredChoice();
        ChatClient client = Client();
        var names = new List<string>();
        await foreach (StreamingChatCompletionUpdate update in client.CompleteChatStreamingAsync([new UserChatMessage("find it")], options))
        {
            foreach (StreamingChatToolCallUpdate call in update.ToolCallUpdates)
            {
                if (call.FunctionName is not null)
                {
                    names.Add(call.FunctionName);
                }
            }
        }
        // The random model writes noise after the forced opening; when it happens to close the call, the SDK sees it.
        ChatCompletion completion = (await client.CompleteChatAsync([new UserChatMessage("find it")], options)).Value;
        if (completion.FinishReason == ChatFinishReason.ToolCalls)
        {
            Assert.Equal("lookup", Assert.Single(completion.ToolCalls).FunctionName);
        }
        else
        {
            Assert.Contains("<function=lookup>", string.Concat(completion.Content.Select(c => c.Text)));
        }
        Assert.All(names, n => Assert.Equal("lookup", n));
    }

    [Fact]
    public async Task ErrorsSurfaceAsClientResultExceptionsWithTheField()
    {
        ChatClient client = Client();
        var tooLong = new ChatCompletionOptions { MaxOutputTokenCount = 5000 };
        var ex = await Assert.ThrowsAsync<ClientResultException>(() => client.CompleteChatAsync([new UserChatMessage("hi")], tooLong));
        Assert.Equal(400, ex.Status);
        Assert.Contains("4096", ex.Message);
        Assert.Contains("5000", ex.Message);
        var wrongModel = new ChatClient("gpt-4o", new ApiKeyCredential(ServerFixture.ApiKey), new OpenAIClientOptions { Endpoint = new Uri(fixture.BaseUrl, "v1") });
        ex = await Assert.ThrowsAsync<ClientResultException>(() => wrongModel.CompleteChatAsync([new UserChatMessage("hi")]));
        Assert.Equal(404, ex.Status);
        var badKey = new ChatClient(ServerFixture.ModelName, new ApiKeyCredential("wrong"), new OpenAIClientOptions { Endpoint = new Uri(fixture.BaseUrl, "v1") });
        ex = await Assert.ThrowsAsync<ClientResultException>(() => badKey.CompleteChatAsync([new UserChatMessage("hi")]));
        Assert.Equal(401, ex.Status);
    }
}
