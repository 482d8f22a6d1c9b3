using System.ClientModel;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Anthropic;
using Anthropic.Exceptions;
using Anthropic.Models.Messages;
using MimoSharp.Models.Caching;
using MimoSharp.Models.Configuration;
using MimoSharp.Runtime.Scheduling;
using OpenAI;
using OpenAI.Chat;

namespace MimoSharp.Server.Tests;

/// <summary>A server with one sequence slot, no queue, and a KV budget that holds <see cref="BudgetPositions"/> positions per sequence.</summary>
public sealed class LimitedServerFixture : ServerFixture
{
    public const int BudgetPositions = 2000;

    protected override ServerOptions Configure(ServerOptions options)
    {
        MimoConfig config = MimoConfig.Load(options.ModelDirectory);
        long budget = SequenceKvCache.BytesFor(config.Derived, 3, new SchedulerOptions().CacheReserve, BudgetPositions);
        return options with { Parallel = 1, MaxQueued = 0, KvBudgetBytes = budget };
    }
}

/// <summary>Admission over HTTP: what never fits the KV budget is a 400 naming max_tokens, a full engine a 429 (Anthropic 529), and no cap means "what fits".</summary>
public sealed class AdmissionTests(LimitedServerFixture fixture) : IClassFixture<LimitedServerFixture>
{
    private ChatClient OpenAI() => new(ServerFixture.ModelName, new ApiKeyCredential(ServerFixture.ApiKey),
        new OpenAIClientOptions { Endpoint = new Uri(fixture.BaseUrl, "v1"), NetworkTimeout = TimeSpan.FromSeconds(120), RetryPolicy = new System.ClientModel.Primitives.ClientRetryPolicy(0) });

    private AnthropicClient Anthropic() => new() { ApiKey = ServerFixture.ApiKey, BaseUrl = fixture.BaseUrl.ToString().TrimEnd('/'), MaxRetries = 0 };

    [Fact]
    public async Task ARequestBeyondTheWholeKvBudgetIsA400NamingMaxTokensNotARetry()
    {
        // 3000 tokens fit the context (4096) but not the KV budget (2000 positions): waiting would never help.
        var ex = await Assert.ThrowsAsync<ClientResultException>(() => OpenAI().CompleteChatAsync([new UserChatMessage("hi")], new ChatCompletionOptions { MaxOutputTokenCount = 3000 }));
        Assert.Equal(400, ex.Status);
        Assert.Contains("max_tokens", ex.Message);
        Assert.Contains("KV budget", ex.Message);
        Assert.Contains($"room for {LimitedServerFixture.BudgetPositions} positions", ex.Message);
        var anthropic = await Assert.ThrowsAnyAsync<AnthropicApiException>(() => Anthropic().Messages.Create(new MessageCreateParams
        {
            Model = ServerFixture.ModelName,
            MaxTokens = 3000,
            Messages = [new UserMessageParam("hi")],
        }));
        Assert.Equal(400, (int)anthropic.StatusCode);
        Assert.Contains("max_tokens", anthropic.Message);
    }

    [Fact]
    public async Task WithoutMaxTokensTheAnswerIsCappedToWhatTheKvBudgetHolds()
    {
        var (status, body, text) = await fixture.PostJson("/v1/chat/completions", """{"model":"tiny","messages":[{"role":"user","content":"hi"}],"ignore_eos":true}""");
        Assert.True(status == 200, text);
        int prompt = (int)body!["usage"]!["prompt_tokens"]!, completion = (int)body["usage"]!["completion_tokens"]!;
        // prompt + max_tokens + 1 positions fill the budget exactly (no drafts on this server).
        Assert.Equal(LimitedServerFixture.BudgetPositions - prompt - 1, completion);
        Assert.Equal("length", (string?)body["choices"]![0]!["finish_reason"]);
    }

    [Fact]
    public async Task AFullEngineIsA429InOpenAIsShapeAnd529OverloadedForAnthropic()
    {
        // One stream holds the only slot; the queue holds none.
        using var hold = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent("""{"model":"tiny","prompt":"a","max_tokens":1900,"ignore_eos":true,"stream":true}""", Encoding.UTF8, "application/json"),
        };
        using HttpResponseMessage held = await fixture.Http.SendAsync(hold, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(200, (int)held.StatusCode);
        using var reader = new StreamReader(await held.Content.ReadAsStreamAsync());
        Assert.StartsWith("data: ", await reader.ReadLineAsync()); // the first token: the stream is running

        var (status, body, text) = await fixture.PostJson("/v1/chat/completions", """{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":5}""");
        Assert.True(status == 429, text);
        Assert.Contains("--parallel", (string?)body!["error"]!["message"]);
        Assert.NotNull(body["error"]!["type"]);

        (status, body, text) = await fixture.PostJson("/v1/messages", """{"model":"tiny","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}""");
        Assert.True(status == 529, text);
        Assert.Equal("error", (string?)body!["type"]);
        Assert.Equal("overloaded_error", (string?)body["error"]!["type"]);
    }
}
