using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json.Nodes;
using MimoSharp.Models;
using MimoSharp.Runtime.Generation;
using MimoSharp.Tokenization;

namespace MimoSharp.Server.Tests;

/// <summary>
/// An engine that plays a script of token ids through the request's own text stream (as the real engines do),
/// optionally failing after some tokens: the server and ChatRunner are real, only what the model "says" is fixed.
/// </summary>
internal sealed class ScriptedEngine(MimoModel model, IReadOnlyList<int> script, int? failAfter = null) : IGenerationEngine
{
    public MimoModel Model => model;

    public async IAsyncEnumerable<GenerationEvent> GenerateAsync(GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        int produced = 0;
        foreach (int token in script.Take(request.MaxTokens))
        {
            if (produced == failAfter)
            {
                throw new InvalidOperationException("scripted failure: the engine stopped");
            }
            await Task.Yield();
            cancellationToken.ThrowIfCancellationRequested();
            string text = request.Text?.Push(token) ?? "";
            produced++;
            yield return new GenerationEvent(token, text, FinishReason.None, null);
        }
        var usage = new GenerationUsage(request.PromptIds.Count, produced, TimeSpan.Zero, TimeSpan.Zero, 1.0, []);
        yield return new GenerationEvent(-1, request.Text?.Flush() ?? "", produced >= request.MaxTokens ? FinishReason.Length : FinishReason.Stop, usage);
    }
}

/// <summary>A server over a scripted engine: parallel_tool_calls, and engine failures mid-stream as in-stream error events.</summary>
public sealed class ScriptedEngineTests : IAsyncLifetime
{
    private const string TwoCalls =
        "Let me check.<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>" +
        "<tool_call>\n<function=get_time>\n<parameter=zone>\nCET\n</parameter>\n</function>\n</tool_call>";

    private const string Tools = """[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}},{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"zone":{"type":"string"}}}}}]""";

    private readonly ServerFixture _model = new();
    private MimoServer _calls = null!, _failing = null!;

    public async Task InitializeAsync()
    {
        await _model.InitializeAsync(); // a real tiny model and its byte-level tokenizer
        MimoTokenizer tokenizer = _model.Server.Host!.Tokenizer;
        IReadOnlyList<int> script = tokenizer.Encode(TwoCalls);
        _calls = await Start(tokenizer, script, null);
        _failing = await Start(tokenizer, tokenizer.Encode("Hello there, all is well."), 3);
    }

    private async Task<MimoServer> Start(MimoTokenizer tokenizer, IReadOnlyList<int> script, int? failAfter)
    {
        MimoModel model = _model.Server.Host!.Model;
        MimoServer server = await MimoServer.StartAsync(new ServerOptions { ModelDirectory = _model.ModelDirectory, Port = 0, Log = TextWriter.Null },
            () => ModelHost.Create(model, tokenizer, new ScriptedEngine(model, script, failAfter), "tiny", 4096));
        await server.Ready;
        return server;
    }

    public async Task DisposeAsync()
    {
        // The scripted hosts share the fixture's model: stop their servers first, then the fixture disposes the model.
        await _calls.DisposeAsync();
        await _failing.DisposeAsync();
        await _model.DisposeAsync();
    }

    private static async Task<(int Status, string Body)> Post(MimoServer server, string path, string json)
    {
        using var http = new HttpClient { BaseAddress = server.BaseUrl };
        HttpResponseMessage response = await http.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData(true, 2)]
    [InlineData(false, 1)]
    public async Task ParallelToolCallsFalseEndsTheAnswerAtTheFirstCall(bool parallel, int calls)
    {
        var (status, body) = await Post(_calls, "/v1/chat/completions",
            $$"""{"model":"tiny","messages":[{"role":"user","content":"weather and time?"}],"tools":{{Tools}},"parallel_tool_calls":{{(parallel ? "true" : "false")}},"max_tokens":400}""");
        Assert.True(status == 200, body);
        JsonNode choice = JsonNode.Parse(body)!["choices"]![0]!;
        Assert.Equal("tool_calls", (string?)choice["finish_reason"]);
        JsonArray toolCalls = choice["message"]!["tool_calls"]!.AsArray();
        Assert.Equal(calls, toolCalls.Count);
        Assert.Equal("get_weather", (string?)toolCalls[0]!["function"]!["name"]);
        Assert.Equal("Paris", (string?)JsonNode.Parse((string)toolCalls[0]!["function"]!["arguments"]!)!["city"]);
    }

    [Fact]
    public async Task AnEngineFailureMidStreamIsAnInStreamErrorInEachApisShape()
    {
        var (status, sse) = await Post(_failing, "/v1/messages", """{"model":"tiny","max_tokens":20,"stream":true,"messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal(200, status); // the stream had started: the error comes as an event
        Assert.Contains("event: message_start", sse);
        string[] lines = sse.Split('\n');
        int error = Array.IndexOf(lines, "event: error");
        Assert.True(error > 0, sse);
        JsonNode data = JsonNode.Parse(lines[error + 1]["data: ".Length..])!;
        Assert.Equal("error", (string?)data["type"]);
        Assert.Contains("scripted failure", (string?)data["error"]!["message"]);
        Assert.DoesNotContain("event: message_stop", sse);

        (status, sse) = await Post(_failing, "/v1/chat/completions", """{"model":"tiny","max_tokens":20,"stream":true,"messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal(200, status);
        string? errorLine = sse.Split('\n').FirstOrDefault(l => l.StartsWith("data: {\"error\"", StringComparison.Ordinal));
        Assert.True(errorLine is not null, sse);
        Assert.Contains("scripted failure", (string?)JsonNode.Parse(errorLine["data: ".Length..])!["error"]!["message"]);
        Assert.DoesNotContain("data: [DONE]", sse);

        // Not streamed: the failure before any byte is a 500 in the API's shape (the engine broke, not the request).
        (status, string body) = await Post(_failing, "/v1/chat/completions", """{"model":"tiny","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal(500, status);
        Assert.Contains("scripted failure", (string?)JsonNode.Parse(body)!["error"]!["message"]);
    }
}
