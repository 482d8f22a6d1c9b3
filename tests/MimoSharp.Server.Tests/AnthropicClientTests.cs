using System.Text;
using System.Text.Json.Nodes;
using Anthropic;
using Anthropic.Exceptions;
using Anthropic.Models.Messages;

namespace MimoSharp.Server.Tests;

/// <summary>
/// The official Anthropic .NET SDK against the server; every response and event passes the SDK's own
/// validation. (This SDK version sends no temperature: the fixture's generation_config.json makes the
/// model's default greedy, so answers repeat.)
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class AnthropicClientTests(ServerFixture fixture)
{
    private AnthropicClient Client(string key = ServerFixture.ApiKey) => new()
    {
        ApiKey = key,
        BaseUrl = fixture.BaseUrl.ToString().TrimEnd('/'),
        MaxRetries = 0,
    };

    private static MessageCreateParams Params(string text, int maxTokens = 10) => new()
    {
        Model = ServerFixture.ModelName,
        MaxTokens = maxTokens,
        Messages = [new UserMessageParam(text)],
    };

    [Fact]
    public async Task NonStreamingMessageValidatesAndCounts()
    {
        Message message = await Client().Messages.Create(Params("Hello"));
        message.Validate();
        Assert.True(message.Usage.InputTokens > 0);
        Assert.InRange(message.Usage.OutputTokens, 1, 10);
        MessageTokensCount count = await Client().Messages.CountTokens(new MessageCountTokensParams
        {
            Model = ServerFixture.ModelName,
            Messages = [new UserMessageParam("Hello")],
        });
        // input_tokens counts what was not read from the prefix cache, as Anthropic reports it.
        Assert.Equal(message.Usage.InputTokens + (message.Usage.CacheReadInputTokens ?? 0), count.InputTokens);
    }

    [Fact]
    public async Task StreamingEventsAreWellFormedAndMatchTheWholeMessage()
    {
        AnthropicClient client = Client();
        Message whole = await client.Messages.Create(Params("Stream me", 16));
        string wholeText = string.Concat(whole.Content.Select(b => b.TryPickText(out TextBlock? t) ? t!.Text : ""));
        var names = new List<string>();
        var text = new StringBuilder();
        long? outputTokens = null;
        await foreach (RawMessageStreamEvent e in client.Messages.CreateStreaming(Params("Stream me", 16)))
        {
            e.Validate();
            if (e.TryPickStart(out RawMessageStartEvent? start))
            {
                names.Add("message_start");
                // message_start comes after the first token, when the prefix-cache hit is known: the same prompt
                // as the whole answer's, split into uncached and cached tokens, and this second run reuses it.
                Usage usage = start!.Message.Usage;
                Assert.Equal(whole.Usage.InputTokens + (whole.Usage.CacheReadInputTokens ?? 0), usage.InputTokens + (usage.CacheReadInputTokens ?? 0));
                Assert.True(usage.CacheReadInputTokens > 0, $"cache_read_input_tokens {usage.CacheReadInputTokens}");
            }
            else if (e.TryPickContentBlockStart(out _))
            {
                names.Add("content_block_start");
            }
            else if (e.TryPickContentBlockDelta(out RawContentBlockDeltaEvent? delta))
            {
                names.Add("content_block_delta");
                if (delta!.Delta.TryPickText(out TextDelta? t))
                {
                    text.Append(t!.Text);
                }
            }
            else if (e.TryPickContentBlockStop(out _))
            {
                names.Add("content_block_stop");
            }
            else if (e.TryPickDelta(out RawMessageDeltaEvent? messageDelta))
            {
                names.Add("message_delta");
                outputTokens = messageDelta!.Usage.OutputTokens;
            }
            else if (e.TryPickStop(out _))
            {
                names.Add("message_stop");
            }
        }
        Assert.Equal("message_start", names[0]);
        Assert.Equal(["message_delta", "message_stop"], names[^2..]);
        Assert.Equal(names.Count(n => n == "content_block_start"), names.Count(n => n == "content_block_stop"));
        Assert.Equal(wholeText, text.ToString());
        Assert.Equal(whole.Usage.OutputTokens, outputTokens);
    }

    [Fact]
    public async Task StopSequenceIsReported()
    {
        AnthropicClient client = Client();
        // Find a stop sequence in the greedy answer, then ask again with it.
        string full = "";
        foreach (string prompt in new[] { "abc", "Hello", "xyz", "Tell me" })
        {
            Message m = await client.Messages.Create(Params(prompt, 30));
            full = string.Concat(m.Content.Select(b => b.TryPickText(out TextBlock? t) ? t!.Text : ""));
            if (full.Length >= 6)
            {
                MessageCreateParams withStop = Params(prompt, 30) with { StopSequences = [full.Substring(3, 2)] };
                Message stopped = await client.Messages.Create(withStop);
                stopped.Validate();
                Assert.Equal(Anthropic.Models.Messages.StopReason.StopSequence, stopped.StopReason!.Value());
                Assert.Equal(full.Substring(3, 2), stopped.StopSequence);
                return;
            }
        }
        Assert.Fail($"no greedy answer was long enough to cut: \"{full}\"");
    }

    [Fact]
    public async Task ThinkingEnabledAndDisabledAreAccepted()
    {
        AnthropicClient client = Client();
        Message on = await client.Messages.Create(Params("Ponder", 8) with { Thinking = new ThinkingConfigEnabled { BudgetTokens = 1024 } });
        Message off = await client.Messages.Create(Params("Ponder", 8) with { Thinking = new ThinkingConfigDisabled() });
        on.Validate();
        off.Validate();
        Assert.True(off.Usage.InputTokens + off.Usage.CacheReadInputTokens > on.Usage.InputTokens + on.Usage.CacheReadInputTokens,
            "thinking off renders the empty think block into the prompt");
    }

    [Fact]
    public async Task ErrorsAreAnthropicExceptions()
    {
        var bad = await Assert.ThrowsAnyAsync<AnthropicApiException>(() => Client().Messages.Create(Params("hi", 5000)));
        Assert.Equal(400, (int)bad.StatusCode);
        Assert.Contains("5000", bad.Message);
        var missing = await Assert.ThrowsAnyAsync<AnthropicApiException>(() => Client().Messages.Create(Params("hi") with { Model = "claude-opus-4-6" }));
        Assert.Equal(404, (int)missing.StatusCode);
        var auth = await Assert.ThrowsAnyAsync<AnthropicApiException>(() => Client("wrong-key").Messages.Create(Params("hi")));
        Assert.Equal(401, (int)auth.StatusCode);
    }

    /// <summary>What Claude Code sends: billing header in system[0], tools, thinking and tool history, ?beta=true, beta headers.</summary>
    [Fact]
    public async Task ClaudeCodeShapedRequestsAreAccepted()
    {
        string Body(string billing, bool stream) => $$$"""
            {"model":"tiny","max_tokens":32000,"stream":{{{(stream ? "true" : "false")}}},"thinking":{"type":"adaptive"},
             "system":[{"type":"text","text":"x-anthropic-billing-header: cc_version={{{billing}}}; cc_entrypoint=cli;"},{"type":"text","text":"You are Claude Code.","cache_control":{"type":"ephemeral"}}],
             "tools":[{"name":"Bash","description":"Run a command","input_schema":{"type":"object","properties":{"command":{"type":"string"},"timeout":{"type":"number"}},"required":["command"]}}],
             "tool_choice":{"type":"auto"},
             "messages":[
               {"role":"user","content":[{"type":"text","text":"list files"}]},
               {"role":"assistant","content":[{"type":"thinking","thinking":"I should run ls.","signature":"abc"},{"type":"redacted_thinking","data":"xyz"},{"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"ls"}}]},
               {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"a.txt"}]},{"type":"text","text":"thanks"}]},
               {"role":"system","content":"Be brief."},
               {"role":"user","content":"again"}]}
            """;
        var headers = new Dictionary<string, string> { ["anthropic-beta"] = "claude-code-20250219,some-future-beta-2099", ["anthropic-version"] = "2023-06-01" };
        // The server's cap is the context: ask for what fits.
        string fitting(string b) => b.Replace("\"max_tokens\":32000", "\"max_tokens\":8");
        var plain = await fixture.PostJson("/v1/messages?beta=true", fitting(Body("1.0.1", false)), headers: headers);
        Assert.True(plain.Status == 200, plain.Text);
        var count1 = await fixture.PostJson("/v1/messages/count_tokens?beta=true", Body("1.0.1.abc", false), headers: headers);
        var count2 = await fixture.PostJson("/v1/messages/count_tokens?beta=true", Body("2.7.9.zzzzzz", false), headers: headers);
        Assert.Equal(200, count1.Status);
        // The billing line is stripped before templating: it does not change the prompt.
        Assert.Equal(count1.Body!["input_tokens"]!.GetValue<int>(), count2.Body!["input_tokens"]!.GetValue<int>());
        JsonNode usage = plain.Body!["usage"]!;
        Assert.Equal(usage["input_tokens"]!.GetValue<int>() + usage["cache_read_input_tokens"]!.GetValue<int>(), count1.Body!["input_tokens"]!.GetValue<int>());
        var streamed = await fixture.PostJson("/v1/messages?beta=true", fitting(Body("1.0.1", true)), headers: headers);
        Assert.Equal(200, streamed.Status);
        Assert.Contains("event: message_stop", streamed.Text);
        // Over the context: 400 naming both numbers, in Anthropic's shape.
        var tooBig = await fixture.PostJson("/v1/messages", Body("1", false));
        Assert.Equal(400, tooBig.Status);
        Assert.Equal("error", tooBig.Body!["type"]!.GetValue<string>());
        Assert.Contains("32000", tooBig.Body!["error"]!["message"]!.GetValue<string>());
        Assert.Contains("4096", tooBig.Body!["error"]!["message"]!.GetValue<string>());
    }
}
