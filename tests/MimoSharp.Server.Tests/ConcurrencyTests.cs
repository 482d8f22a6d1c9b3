using System.ClientModel;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using OpenAI;
using OpenAI.Chat;

namespace MimoSharp.Server.Tests;

/// <summary>A <c>mimo serve --parallel 4</c> on a random tiny model (greedy by its generation_config).</summary>
public sealed class ParallelServerFixture : IAsyncLifetime
{
    public const string ApiKey = "sk-mimo-parallel";
    public const string ModelName = "tiny-parallel";
    public const int Parallel = 4;

    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"mimosharp-parallel-tests-{Environment.ProcessId}-{Guid.NewGuid():N}");

    public MimoServer Server { get; private set; } = null!;
    public HttpClient Http { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_directory, "tiny");
        Directory.CreateDirectory(_directory);
        var output = new StringWriter();
        int code = Cli.Program.Run(["create-random", "--preset", "tiny", "--output", model], output, output);
        Assert.True(code == 0, output.ToString());
        File.WriteAllText(Path.Combine(model, "generation_config.json"), """{"do_sample": false}""");
        Server = await MimoServer.StartAsync(new ServerOptions
        {
            ModelDirectory = model,
            Port = 0,
            ApiKey = ApiKey,
            ServedModelName = ModelName,
            Parallel = Parallel,
            Log = TextWriter.Null,
        });
        await Server.Ready;
        Http = new HttpClient { BaseAddress = Server.BaseUrl, Timeout = TimeSpan.FromSeconds(120) };
        Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ApiKey);
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>The mimo_running_sequences gauge from GET /metrics.</summary>
    public Task<double> RunningSequences() => Gauge("mimo_running_sequences");

    /// <summary>An unlabelled gauge from GET /metrics.</summary>
    public async Task<double> Gauge(string name)
    {
        string text = await Http.GetStringAsync("/metrics");
        Match m = Regex.Match(text, $@"^{name} (\S+)$", RegexOptions.Multiline);
        Assert.True(m.Success, $"no {name} in /metrics");
        return double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }
}

/// <summary>Several streams through the OpenAI SDK against one batching server.</summary>
public sealed class ConcurrencyTests(ParallelServerFixture fixture) : IClassFixture<ParallelServerFixture>
{
    private static readonly string[] Prompts = ["Tell me about rivers", "abc", "Why is the sky blue? Explain in detail please.", "1 2 3"];

    private ChatClient Client() => new(ParallelServerFixture.ModelName, new ApiKeyCredential(ParallelServerFixture.ApiKey),
        new OpenAIClientOptions { Endpoint = new Uri(fixture.Server.BaseUrl, "v1"), NetworkTimeout = TimeSpan.FromSeconds(120) });

    private static ChatCompletionOptions Greedy(int maxTokens)
    {
        var options = new ChatCompletionOptions { Temperature = 0f, MaxOutputTokenCount = maxTokens };
        foreach (int eos in ByteLevelIds.EndOfTurn)
        {
            options.LogitBiases[eos] = -100;
        }
        return options;
    }

    private sealed record StreamResult(string Text, string Id, int Chunks, int FinishCount, ChatFinishReason? Finish, ChatTokenUsage? Usage, bool FirstIsAssistant);

    private static async Task<StreamResult> Stream(ChatClient client, string prompt, int maxTokens)
    {
        var text = new StringBuilder();
        var ids = new HashSet<string>();
        int chunks = 0, finishes = 0;
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        bool firstIsAssistant = false;
        await foreach (StreamingChatCompletionUpdate update in client.CompleteChatStreamingAsync([new UserChatMessage(prompt)], Greedy(maxTokens)))
        {
            if (chunks++ == 0)
            {
                firstIsAssistant = update.Role == ChatMessageRole.Assistant;
            }
            ids.Add(update.CompletionId);
            foreach (ChatMessageContentPart part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
            if (update.FinishReason is ChatFinishReason f)
            {
                finish = f;
                finishes++;
            }
            usage ??= update.Usage;
        }
        return new StreamResult(text.ToString(), Assert.Single(ids), chunks, finishes, finish, usage, firstIsAssistant);
    }

    [Fact]
    public async Task ConcurrentStreamsAllCompleteWithCorrectShapes()
    {
        ChatClient client = Client();
        StreamResult[] results = await Task.WhenAll(Prompts.Select(p => Stream(client, p, 16)));
        Assert.Equal(Prompts.Length, results.Select(r => r.Id).Distinct().Count());
        foreach (StreamResult r in results)
        {
            Assert.True(r.FirstIsAssistant);
            Assert.True(r.Text.Length > 0);
            Assert.Equal(1, r.FinishCount);
            Assert.Equal(ChatFinishReason.Length, r.Finish);
            Assert.NotNull(r.Usage);
            Assert.Equal(16, r.Usage!.OutputTokenCount);
            Assert.Equal(r.Usage.InputTokenCount + 16, r.Usage.TotalTokenCount);
            Assert.True(r.Chunks >= 3);
        }
        Assert.Equal(0, await fixture.RunningSequences());
    }

    [Fact]
    public async Task SixteenStreamsOverFourSlotsQueueAndAllFinish()
    {
        ChatClient client = Client();
        var scheduler = Assert.IsType<MimoSharp.Runtime.Scheduling.InferenceScheduler>(fixture.Server.Host!.Engine);
        long admitted = scheduler.Stats.RequestsAdmitted, rejected = scheduler.Stats.RequestsRejected;
        StreamResult[] results = await Task.WhenAll(Enumerable.Range(0, 16).Select(i => Stream(client, $"question {i}: {Prompts[i % Prompts.Length]}", 8)));
        Assert.Equal(16, results.Select(r => r.Id).Distinct().Count());
        Assert.All(results, r =>
        {
            Assert.Equal(ChatFinishReason.Length, r.Finish);
            Assert.Equal(1, r.FinishCount);
            Assert.Equal(8, r.Usage!.OutputTokenCount);
            Assert.True(r.Usage.InputTokenCount > 5);
        });
        Assert.Equal(admitted + 16, scheduler.Stats.RequestsAdmitted);
        Assert.Equal(rejected, scheduler.Stats.RequestsRejected);
        Assert.Equal(0, await fixture.RunningSequences());
    }

    [Fact]
    public async Task BatchedGreedyOutputsEqualTheSameRequestsAlone()
    {
        ChatClient client = Client();
        // Batched first, so that neither run's prompts sit in the prefix cache of the other's run order.
        var scheduler = Assert.IsType<MimoSharp.Runtime.Scheduling.InferenceScheduler>(fixture.Server.Host!.Engine);
        long stepsBefore = scheduler.Stats.Steps;
        StreamResult[] batched = await Task.WhenAll(Prompts.Select(p => Stream(client, p, 24)));
        // One at a time, 4 answers of 24 tokens take at least 4 x 24 steps; fewer means the requests shared batches.
        long batchedSteps = scheduler.Stats.Steps - stepsBefore;
        Assert.True(batchedSteps < Prompts.Length * 24, $"{batchedSteps} steps for {Prompts.Length} x 24 tokens: the requests were not batched");
        var alone = new List<string>();
        foreach (string prompt in Prompts)
        {
            ChatCompletion c = (await client.CompleteChatAsync([new UserChatMessage(prompt)], Greedy(24))).Value;
            alone.Add(string.Concat(c.Content.Select(p => p.Text)));
        }
        for (int i = 0; i < Prompts.Length; i++)
        {
            Assert.True(alone[i] == batched[i].Text, $"prompt {i} \"{Prompts[i]}\": batched \"{batched[i].Text}\" vs alone \"{alone[i]}\"");
        }
    }

    [Fact]
    public async Task ClientDisconnectMidStreamFreesItsSlot()
    {
        // Four long streams fill every slot; each client goes away after a few chunks.
        async Task ReadSomeThenLeave(int index)
        {
            string body = $$$"""{"model":"{{{ParallelServerFixture.ModelName}}}","stream":true,"max_tokens":3000,"messages":[{"role":"user","content":"go on {{{index}}}"}],"logit_bias":{"{{{ByteLevelIds.EndOfTurn[0]}}}":-100,"{{{ByteLevelIds.EndOfTurn[1]}}}":-100}}""";
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            using HttpResponseMessage response = await fixture.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(200, (int)response.StatusCode);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            int data = 0;
            while (data < 4 && await reader.ReadLineAsync() is string line)
            {
                if (line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    Assert.DoesNotContain("[DONE]", line);
                    data++;
                }
            }
            Assert.Equal(4, data);
        }
        await Task.WhenAll(Enumerable.Range(0, ParallelServerFixture.Parallel).Select(ReadSomeThenLeave));
        double running = await fixture.RunningSequences();
        for (int i = 0; i < 300 && running > 0; i++)
        {
            await Task.Delay(100);
            running = await fixture.RunningSequences();
        }
        Assert.Equal(0, running);
        Assert.Equal(0, await fixture.Gauge("mimo_kv_cache_bytes_in_use"));
        Assert.Equal(0, await fixture.Gauge("mimo_kv_cache_bytes_reserved"));
        // Every slot is free again: a new request runs now, not after 3000 tokens of each abandoned stream.
        StreamResult next = await Stream(Client(), "still there?", 8);
        Assert.Equal(8, next.Usage!.OutputTokenCount);
        Assert.Equal(0, await fixture.RunningSequences());
    }
    [Fact]
    public async Task IgnoreEosGeneratesExactlyMaxTokens()
    {
        // The end-of-text id pushed to the top: without ignore_eos the answer ends at once, with it runs to max_tokens.
        async Task<JsonNode> Complete(bool ignoreEos)
        {
            string body = $$$"""{"model":"{{{ParallelServerFixture.ModelName}}}","prompt":"abc","max_tokens":9,"ignore_eos":{{{(ignoreEos ? "true" : "false")}}},"logit_bias":{"{{{ByteLevelIds.EndOfTurn[0]}}}":100}}""";
            using HttpResponseMessage response = await fixture.Http.PostAsync("/v1/completions", new StringContent(body, Encoding.UTF8, "application/json"));
            Assert.Equal(200, (int)response.StatusCode);
            return JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        }
        JsonNode stopped = await Complete(false), ignored = await Complete(true);
        Assert.Equal("stop", stopped["choices"]![0]!["finish_reason"]!.GetValue<string>());
        Assert.Equal(1, stopped["usage"]!["completion_tokens"]!.GetValue<int>());
        Assert.Equal("length", ignored["choices"]![0]!["finish_reason"]!.GetValue<string>());
        Assert.Equal(9, ignored["usage"]!["completion_tokens"]!.GetValue<int>());
    }
}
