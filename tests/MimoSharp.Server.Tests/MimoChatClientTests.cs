using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using MimoSharp.Runtime.Scheduling;

namespace MimoSharp.Server.Tests;

/// <summary>A <see cref="MimoChatClient"/> over a random tiny model (greedy by its generation_config), two sequences at once.</summary>
public sealed class ChatClientFixture : IDisposable
{
    public const string ModelName = "tiny-inproc";

    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"mimosharp-chatclient-tests-{Environment.ProcessId}-{Guid.NewGuid():N}");

    public ChatClientFixture()
    {
        Directory.CreateDirectory(_directory);
        string model = Path.Combine(_directory, "tiny");
        var output = new StringWriter();
        int code = Cli.Program.Run(["create-random", "--preset", "tiny", "--output", model], output, output);
        Assert.True(code == 0, output.ToString());
        File.WriteAllText(Path.Combine(model, "generation_config.json"), """{"do_sample": false}""");
        Client = MimoChatClient.Load(new MimoChatClientOptions { ModelDirectory = model, Parallel = 2, ModelName = ModelName });
    }

    public MimoChatClient Client { get; }

    public void Dispose()
    {
        Client.Dispose();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Microsoft.Extensions.AI's IChatClient in process: options, contents, tools, middleware, cancellation.</summary>
public sealed class MimoChatClientTests(ChatClientFixture fixture) : IClassFixture<ChatClientFixture>
{
    /// <summary>Greedy, with the end-of-turn ids banned so the answer runs to the token cap.</summary>
    private static ChatOptions Greedy(int maxTokens, params int[] alsoBanned)
    {
        var bias = ByteLevelIds.EndOfTurn.Concat(alsoBanned).ToDictionary(id => id, _ => -100f);
        return new ChatOptions { Temperature = 0f, MaxOutputTokens = maxTokens, AdditionalProperties = new() { ["logit_bias"] = bias } };
    }

    private static List<ChatMessage> User(string text) => [new(ChatRole.User, text)];

    [Fact]
    public async Task StreamingAndNonStreamingAgreeForGreedy()
    {
        ChatResponse whole = await fixture.Client.GetResponseAsync(User("Count to ten"), Greedy(20));
        var updates = new List<ChatResponseUpdate>();
        await foreach (ChatResponseUpdate update in fixture.Client.GetStreamingResponseAsync(User("Count to ten"), Greedy(20)))
        {
            updates.Add(update);
        }
        Assert.True(whole.Text.Length > 0);
        Assert.Equal(whole.Text, string.Concat(updates.Select(u => u.Text)));
        Assert.All(updates, u => Assert.Equal(ChatRole.Assistant, u.Role));
        Assert.Equal(ChatFinishReason.Length, updates[^1].FinishReason);
        UsageDetails streamed = Assert.Single(updates.SelectMany(u => u.Contents).OfType<UsageContent>()).Details;
        Assert.Equal(20, whole.Usage!.OutputTokenCount);
        Assert.Equal(whole.Usage.OutputTokenCount, streamed.OutputTokenCount);
        Assert.Equal(whole.Usage.InputTokenCount, streamed.InputTokenCount);
        Assert.Equal(whole.Usage.InputTokenCount + 20, whole.Usage.TotalTokenCount);
        // The second identical prompt found its prefix in the cache.
        Assert.InRange(streamed.CachedInputTokenCount!.Value, 1, streamed.InputTokenCount!.Value);
        Assert.Equal(ChatFinishReason.Length, whole.FinishReason);
        Assert.Equal(ChatClientFixture.ModelName, whole.ModelId);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    public async Task MaxOutputTokensEndsWithLength(int maxTokens)
    {
        ChatResponse response = await fixture.Client.GetResponseAsync(User("Tell me everything"), Greedy(maxTokens));
        Assert.Equal(ChatFinishReason.Length, response.FinishReason);
        Assert.Equal(maxTokens, response.Usage!.OutputTokenCount);
    }

    [Fact]
    public async Task StopSequenceEndsTheAnswerBeforeIt()
    {
        string full = (await fixture.Client.GetResponseAsync(User("abc"), Greedy(40))).Text;
        int cut = full.Length / 2;
        while (cut < full.Length && char.IsSurrogate(full[cut]))
        {
            cut++;
        }
        Assert.True(cut + 2 <= full.Length, $"answer too short: \"{full}\"");
        string stop = full.Substring(cut, 2);
        ChatOptions options = Greedy(40);
        options.StopSequences = [stop];
        ChatResponse stopped = await fixture.Client.GetResponseAsync(User("abc"), options);
        Assert.Equal(ChatFinishReason.Stop, stopped.FinishReason);
        Assert.Equal(full[..full.IndexOf(stop, StringComparison.Ordinal)], stopped.Text);
    }

    [Fact]
    public async Task SeededSamplingRepeatsAndTemperatureReachesTheSampler()
    {
        async Task<string> Run(long seed) => (await fixture.Client.GetResponseAsync(User("Tell me a story"),
            new ChatOptions { Temperature = 1f, TopP = 1f, TopK = 0, Seed = seed, MaxOutputTokens = 24 })).Text;
        string a = await Run(7);
        Assert.Equal(a, await Run(7));
        // The model's default is greedy: three seeds all equal to greedy would mean Temperature was dropped.
        string greedy = (await fixture.Client.GetResponseAsync(User("Tell me a story"), new ChatOptions { MaxOutputTokens = 24 })).Text;
        string[] sampled = [a, await Run(8), await Run(9)];
        Assert.Contains(sampled, s => s != greedy);
    }

    [Fact]
    public async Task PenaltiesTopKAndTopPReachTheSampler()
    {
        // Greedy on a random model repeats itself; penalties that reach the sampler break the repetition.
        string greedy = (await fixture.Client.GetResponseAsync(User("Repeat after me"), new ChatOptions { MaxOutputTokens = 32 })).Text;
        string presence = (await fixture.Client.GetResponseAsync(User("Repeat after me"), new ChatOptions { MaxOutputTokens = 32, PresencePenalty = 2f })).Text;
        string frequency = (await fixture.Client.GetResponseAsync(User("Repeat after me"), new ChatOptions { MaxOutputTokens = 32, FrequencyPenalty = 2f })).Text;
        Assert.NotEqual(greedy, presence);
        Assert.NotEqual(greedy, frequency);
        // At temperature 2 the answer leaves greedy; TopK 1, or TopP 1e-6, keeps only the top token, so it is greedy again.
        async Task<string> Hot(int? topK = null, float? topP = null) => (await fixture.Client.GetResponseAsync(User("Repeat after me"),
            new ChatOptions { MaxOutputTokens = 32, Temperature = 2f, Seed = 3, TopK = topK, TopP = topP })).Text;
        Assert.NotEqual(greedy, await Hot());
        Assert.Equal(greedy, await Hot(topK: 1));
        Assert.Equal(greedy, await Hot(topP: 1e-6f));
    }

    [Fact]
    public void ToolDeclarationsReachThePrompt()
    {
        AIFunction weather = AIFunctionFactory.Create((string city, int days) => $"sunny in {city}", "get_weather", "Weather forecast of a city");
        var options = new ChatOptions { Tools = [weather] };
        string withTools = fixture.Client.RenderPrompt(User("Weather in Paris?"), options);
        Assert.Contains("get_weather", withTools);
        Assert.Contains("Weather forecast of a city", withTools);
        Assert.Contains("\"city\"", withTools);
        Assert.Contains("\"integer\"", withTools);
        string none = fixture.Client.RenderPrompt(User("Weather in Paris?"), new ChatOptions { Tools = [weather], ToolMode = ChatToolMode.None });
        Assert.DoesNotContain("get_weather", none);
        Assert.Equal(fixture.Client.RenderPrompt(User("Weather in Paris?")), none);
    }

    [Fact]
    public void HistoryRendersCallsResultsReasoningAndSystem()
    {
        List<ChatMessage> history =
        [
            new(ChatRole.System, "You are terse."),
            new(ChatRole.User, "Weather in Paris?"),
            new(ChatRole.Assistant, [new TextReasoningContent("I should look it up."), new FunctionCallContent("call_9", "get_weather", new Dictionary<string, object?> { ["city"] = "Paris" })]),
            new(ChatRole.Tool, [new FunctionResultContent("call_9", "sunny, 21 C")]),
        ];
        string prompt = fixture.Client.RenderPrompt(history, new ChatOptions { Instructions = "Answer in French." });
        Assert.Contains("You are terse.", prompt);
        Assert.Contains("Answer in French.", prompt);
        Assert.Contains("I should look it up.", prompt);
        Assert.Contains("<function=get_weather>", prompt);
        Assert.Contains("Paris", prompt);
        Assert.Contains("sunny, 21 C", prompt);
        Assert.True(prompt.IndexOf("<function=get_weather>", StringComparison.Ordinal) < prompt.IndexOf("sunny, 21 C", StringComparison.Ordinal));
        Assert.Throws<NotSupportedException>(() => fixture.Client.RenderPrompt([new(ChatRole.User, [new DataContent(new byte[] { 1, 2 }, "image/png")])]));
    }

    [Fact]
    public async Task FunctionInvocationMiddlewareRoundTrip()
    {
        // A function without parameters has exactly one valid call, so a required tool mode forces all of
        // it, and even a random model makes the call; the middleware runs it and asks again with the result.
        int invoked = 0;
        AIFunction clock = AIFunctionFactory.Create(() => { invoked++; return "It is 12:34."; }, "get_time", "The current time");
        var seen = new List<List<ChatMessage>>();
        using var inner = new MimoChatClient(fixture.Client.Host);
        IChatClient pipeline = new ChatClientBuilder(inner)
            .UseFunctionInvocation(configure: f => f.MaximumIterationsPerRequest = 2)
            .Use((messages, options, next, ct) =>
            {
                seen.Add(messages.ToList());
                return next(messages, options, ct);
            })
            .Build();
        ChatOptions options = Greedy(60);
        options.AllowMultipleToolCalls = false;
        options.Tools = [clock];
        options.ToolMode = ChatToolMode.RequireSpecific("get_time");
        ChatResponse direct = await inner.GetResponseAsync(User("What time is it?"), options);
        Assert.Equal(ChatFinishReason.ToolCalls, direct.FinishReason);
        Assert.Empty(Assert.Single(direct.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>()).Arguments!);
        seen.Clear();
        ChatResponse response = await pipeline.GetResponseAsync(User("What time is it?"), options);

        Assert.Equal(1, invoked);
        FunctionCallContent call = Assert.Single(response.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>());
        Assert.Equal("get_time", call.Name);
        Assert.StartsWith("call_", call.CallId);
        FunctionResultContent result = Assert.Single(response.Messages.SelectMany(m => m.Contents).OfType<FunctionResultContent>());
        Assert.Equal(call.CallId, result.CallId);
        // The second round's prompt holds the call and its result.
        Assert.Equal(2, seen.Count);
        string second = inner.RenderPrompt(seen[1], new ChatOptions { Tools = [clock] });
        Assert.Contains("<function=get_time>", second);
        Assert.Contains("It is 12:34.", second);
        Assert.Equal(ChatRole.Assistant, response.Messages[^1].Role);
        Assert.True(response.Usage!.InputTokenCount > 0 && response.Usage.OutputTokenCount > 0);
    }

    [Fact]
    public async Task RequiredToolWithParametersOpensTheCall()
    {
        AIFunction lookup = AIFunctionFactory.Create((string q) => q, "lookup", "Look something up");
        ChatOptions options = Greedy(60);
        options.Tools = [lookup];
        options.ToolMode = ChatToolMode.RequireAny;
        ChatResponse response = await fixture.Client.GetResponseAsync(User("find it"), options);
        // The random model writes noise after the forced opening; when it happens to close the call, it is parsed.
        if (response.FinishReason == ChatFinishReason.ToolCalls)
        {
            Assert.Equal("lookup", Assert.Single(response.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>()).Name);
        }
        else
        {
            Assert.StartsWith("<tool_call>\n<function=lookup>", response.Text);
        }
        await Assert.ThrowsAsync<ArgumentException>(() => fixture.Client.GetResponseAsync(User("x"), new ChatOptions { Tools = [lookup], ToolMode = ChatToolMode.RequireSpecific("nope") }));
    }

    [Fact]
    public async Task JsonSchemaResponseFormatYieldsMatchingJson()
    {
        JsonElement schema = JsonDocument.Parse("""
            {"type":"object","properties":{"ok":{"type":"boolean"},"color":{"enum":["red","green","blue"]}},"required":["ok","color"],"additionalProperties":false}
            """).RootElement;
        var options = new ChatOptions { Temperature = 1f, Seed = 3, MaxOutputTokens = 200, ResponseFormat = ChatResponseFormat.ForJsonSchema(schema, "answer") };
        ChatResponse response = await fixture.Client.GetResponseAsync(User("Give me JSON"), options);
        JsonObject parsed = JsonNode.Parse(response.Text)!.AsObject();
        Assert.True(parsed["ok"]!.GetValueKind() is JsonValueKind.True or JsonValueKind.False, response.Text);
        Assert.Contains(parsed["color"]!.GetValue<string>(), new[] { "red", "green", "blue" });
        Assert.Equal(ChatFinishReason.Stop, response.FinishReason);
    }

    [Theory]
    [InlineData(11)]
    [InlineData(12)]
    public async Task JsonObjectResponseFormatYieldsAnObject(int seed)
    {
        var options = new ChatOptions { Temperature = 1f, Seed = seed, MaxOutputTokens = 120, ResponseFormat = ChatResponseFormat.Json };
        ChatResponse response = await fixture.Client.GetResponseAsync(User("Give me JSON"), options);
        if (response.FinishReason == ChatFinishReason.Stop)
        {
            Assert.Equal(JsonValueKind.Object, JsonNode.Parse(response.Text)!.GetValueKind());
        }
        else
        {
            Assert.StartsWith("{", response.Text); // ran out of tokens mid-value: still a valid prefix
        }
    }

    [Fact]
    public void ThinkingOptionsReachTheTemplate()
    {
        // Off, MiMo's template closes an empty think block for the model; on, the model opens its own.
        // (A random model does not think, so the reasoning split itself is tested on recorded streams in TranslationTests.)
        string off = fixture.Client.RenderPrompt(User("q"));
        string on = fixture.Client.RenderPrompt(User("q"), new ChatOptions { AdditionalProperties = new() { ["enable_thinking"] = true } });
        Assert.Contains("<think>\n\n</think>", off);
        Assert.DoesNotContain("<think>", on);
        Assert.Equal(off, fixture.Client.RenderPrompt(User("q"), new ChatOptions { Reasoning = new ReasoningOptions { Effort = ReasoningEffort.None } }));
        Assert.Equal(on, fixture.Client.RenderPrompt(User("q"), new ChatOptions { Reasoning = new ReasoningOptions { Effort = ReasoningEffort.Low } }));
        // The explicit template switch wins over the effort.
        Assert.Equal(off, fixture.Client.RenderPrompt(User("q"), new ChatOptions
        {
            Reasoning = new ReasoningOptions { Effort = ReasoningEffort.High },
            AdditionalProperties = new() { ["enable_thinking"] = false },
        }));
        Assert.Throws<ArgumentException>(() => fixture.Client.RenderPrompt(User("q"), new ChatOptions { AdditionalProperties = new() { ["enable_thinking"] = 3 } }));
    }

    [Fact]
    public async Task CancellationStopsGenerationAndFreesTheSequence()
    {
        using var cts = new CancellationTokenSource();
        int updates = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (ChatResponseUpdate _ in fixture.Client.GetStreamingResponseAsync(User("Go on forever"), Greedy(3000), cts.Token))
            {
                if (++updates == 3)
                {
                    cts.Cancel();
                }
            }
        });
        Assert.InRange(updates, 3, 2999);
        var scheduler = Assert.IsType<InferenceScheduler>(fixture.Client.Host.Engine);
        for (int i = 0; i < 200 && scheduler.Stats.RunningSequences > 0; i++)
        {
            await Task.Delay(50);
        }
        Assert.Equal(0, scheduler.Stats.RunningSequences);
        ChatResponse next = await fixture.Client.GetResponseAsync(User("Still there?"), Greedy(3));
        Assert.Equal(3, next.Usage!.OutputTokenCount);
    }

    [Fact]
    public async Task BadOptionsAreArgumentExceptions()
    {
        var tooLong = await Assert.ThrowsAnyAsync<ArgumentException>(() => fixture.Client.GetResponseAsync(User("hi"), new ChatOptions { MaxOutputTokens = 5000 }));
        Assert.Contains("5000", tooLong.Message);
        Assert.Contains("4096", tooLong.Message);
        await Assert.ThrowsAnyAsync<ArgumentException>(() => fixture.Client.GetResponseAsync(User("hi"), new ChatOptions { TopP = 0f }));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => fixture.Client.GetResponseAsync(User("hi"), new ChatOptions { MaxOutputTokens = 0 }));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => fixture.Client.GetResponseAsync([new(ChatRole.System, "only a system prompt")]));
    }

    [Fact]
    public void GetServiceReturnsMetadataAndHost()
    {
        ChatClientMetadata metadata = fixture.Client.GetService<ChatClientMetadata>()!;
        Assert.Equal("mimosharp", metadata.ProviderName);
        Assert.Equal(ChatClientFixture.ModelName, metadata.DefaultModelId);
        Assert.Same(fixture.Client.Host, fixture.Client.GetService<ModelHost>());
        Assert.Same(fixture.Client, fixture.Client.GetService<IChatClient>());
        Assert.Null(fixture.Client.GetService<ChatClientMetadata>("keyed"));
    }
}
