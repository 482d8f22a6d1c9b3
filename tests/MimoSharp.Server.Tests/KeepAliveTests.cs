using System.ClientModel;
using System.Text;
using Anthropic;
using Anthropic.Models.Messages;
using OpenAI;
using OpenAI.Chat;

namespace MimoSharp.Server.Tests;

/// <summary>A server with one sequence slot and a queue, whose streams send keep-alives after 50 ms without a first token.</summary>
public sealed class QueueingServerFixture : ServerFixture
{
    protected override ServerOptions Configure(ServerOptions options) =>
        options with { Parallel = 1, MaxQueued = 4, KeepAliveInterval = TimeSpan.FromMilliseconds(50) };
}

/// <summary>
/// A stream that waits for its first token (here: queued behind another) opens at once with SSE keep-alive comments,
/// which the real SDKs skip, instead of staying silent until the first token.
/// </summary>
public sealed class KeepAliveTests(QueueingServerFixture fixture) : IClassFixture<QueueingServerFixture>
{
    /// <summary>
    /// Holds the only slot with a long stream until disposed (3500 tokens: the tiny model decodes 600 in well under the
    /// keep-alive tests' wait, so a shorter hold could end before the queued stream's first keep-alive); returns once its
    /// first token is out. It reads on its own
    /// client, whose connection is closed at the end (never handed back to a pool half-read).
    /// </summary>
    private async Task<IDisposable> Hold()
    {
        var client = new HttpClient { BaseAddress = fixture.BaseUrl, Timeout = TimeSpan.FromSeconds(120) };
        client.DefaultRequestHeaders.Authorization = fixture.Http.DefaultRequestHeaders.Authorization;
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent("""{"model":"tiny","prompt":"a","max_tokens":3500,"ignore_eos":true,"stream":true}""", Encoding.UTF8, "application/json"),
        };
        HttpResponseMessage response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        string? line;
        while ((line = await reader.ReadLineAsync()) is not null && !line.StartsWith("data: ", StringComparison.Ordinal))
        {
            // its own keep-alives while the first request warms up
        }
        Assert.NotNull(line);
        return new Holder(client, response);
    }

    private sealed class Holder(HttpClient client, HttpResponseMessage response) : IDisposable
    {
        public void Dispose()
        {
            response.Dispose();
            client.Dispose();
        }
    }

    /// <summary>The non-empty lines of an SSE response up to and including the first that starts with <paramref name="stop"/>.</summary>
    private static async Task<List<string>> LinesUntil(HttpResponseMessage response, string stop)
    {
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var lines = new List<string>();
        while (await reader.ReadLineAsync() is string line)
        {
            if (line.Length > 0)
            {
                lines.Add(line);
                if (line.StartsWith(stop, StringComparison.Ordinal))
                {
                    break;
                }
            }
        }
        return lines;
    }

    [Theory]
    [InlineData("/v1/messages", """{"model":"tiny","max_tokens":4,"stream":true,"messages":[{"role":"user","content":"hi"}]}""", "event: message_start")]
    [InlineData("/v1/chat/completions", """{"model":"tiny","max_tokens":4,"stream":true,"messages":[{"role":"user","content":"hi"}]}""", "data: {")]
    public async Task AQueuedStreamOpensWithKeepAliveCommentsThenTheUsualEvents(string path, string body, string firstEvent)
    {
        using (await Hold())
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            using HttpResponseMessage response = await fixture.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(200, (int)response.StatusCode);
            Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
            List<string> lines = await LinesUntil(response, firstEvent);
            Assert.True(lines.Count >= 2 && lines[^1].StartsWith(firstEvent, StringComparison.Ordinal),
                $"expected keep-alives, then {firstEvent}; got {lines.Count} lines: {string.Join(" | ", lines.Take(4))} ... {lines.LastOrDefault()}");
            Assert.All(lines.SkipLast(1), l => Assert.Equal(": keepalive", l));
        }
    }

    [Fact]
    public async Task TheSdksReadAQueuedStreamWithKeepAlivesToTheEnd()
    {
        using (await Hold())
        {
            var anthropic = new AnthropicClient { ApiKey = ServerFixture.ApiKey, BaseUrl = fixture.BaseUrl.ToString().TrimEnd('/'), MaxRetries = 0 };
            var events = new List<string>();
            await foreach (RawMessageStreamEvent e in anthropic.Messages.CreateStreaming(new MessageCreateParams
            {
                Model = ServerFixture.ModelName,
                MaxTokens = 4,
                Messages = [new UserMessageParam("hi")],
            }))
            {
                e.Validate();
                events.Add(e.TryPickStart(out _) ? "start" : e.TryPickStop(out _) ? "stop" : "other");
            }
            Assert.Equal("start", events[0]);
            Assert.Equal("stop", events[^1]);
        }
        using (await Hold())
        {
            var openai = new ChatClient(ServerFixture.ModelName, new ApiKeyCredential(ServerFixture.ApiKey),
                new OpenAIClientOptions { Endpoint = new Uri(fixture.BaseUrl, "v1"), NetworkTimeout = TimeSpan.FromSeconds(120) });
            var finish = new List<ChatFinishReason>();
            await foreach (StreamingChatCompletionUpdate update in openai.CompleteChatStreamingAsync([new UserChatMessage("hi")], new ChatCompletionOptions { MaxOutputTokenCount = 4 }))
            {
                if (update.FinishReason is ChatFinishReason f)
                {
                    finish.Add(f);
                }
            }
            Assert.Single(finish);
        }
    }
}
