using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace MimoSharp.Server.Tests;

/// <summary>/tokenize and /detokenize against the chat endpoint's own counts, a real second turn hitting the prefix cache, and parallel_tool_calls.</summary>
[Collection(ServerCollection.Name)]
public sealed class ServerSurfaceTests(ServerFixture fixture)
{
    private const string Tools = """[{"type":"function","function":{"name":"lookup","description":"Look a word up","parameters":{"type":"object","properties":{"word":{"type":"string"}},"required":["word"]}}}]""";

    [Fact]
    public async Task TokenizeWithToolsCountsWhatTheChatPromptCountsAndDetokenizeRoundTrips()
    {
        string messages = """[{"role":"system","content":"Be brief."},{"role":"user","content":"Define 'river'."}]""";
        var (status, chat, text) = await fixture.PostJson("/v1/chat/completions", $$"""{"model":"tiny","messages":{{messages}},"tools":{{Tools}},"max_tokens":1}""");
        Assert.True(status == 200, text);
        var (tokStatus, tokenized, tokText) = await fixture.PostJson("/tokenize", $$"""{"messages":{{messages}},"tools":{{Tools}}}""");
        Assert.True(tokStatus == 200, tokText);
        int prompt = chat!["usage"]!["prompt_tokens"]!.GetValue<int>();
        Assert.Equal(prompt, tokenized!["count"]!.GetValue<int>());
        var (_, without, _) = await fixture.PostJson("/tokenize", $$"""{"messages":{{messages}}}""");
        Assert.True(without!["count"]!.GetValue<int>() < prompt, "the tools are rendered into the prompt");

        var (_, plain, _) = await fixture.PostJson("/tokenize", """{"text":"héllo, wörld"}""");
        JsonArray ids = plain!["tokens"]!.AsArray();
        var (detStatus, detok, detText) = await fixture.PostJson("/detokenize", new JsonObject { ["tokens"] = ids.DeepClone() }.ToJsonString());
        Assert.True(detStatus == 200, detText);
        Assert.Equal("héllo, wörld", detok!["text"]!.GetValue<string>());
    }

    [Fact]
    public async Task ASecondTurnOverHttpReusesTheFirstTurnsPrefix()
    {
        string turn1 = """[{"role":"user","content":"Tell me something about rivers and the sea, please."}]""";
        var (status, first, text) = await fixture.PostJson("/v1/chat/completions", $$"""{"model":"tiny","messages":{{turn1}},"max_tokens":8}""");
        Assert.True(status == 200, text);
        string answer = first!["choices"]![0]!["message"]!["content"]!.GetValue<string>();
        int prompt1 = first["usage"]!["prompt_tokens"]!.GetValue<int>();
        var turn2 = JsonNode.Parse(turn1)!.AsArray();
        turn2.Add(new JsonObject { ["role"] = "assistant", ["content"] = answer });
        turn2.Add(new JsonObject { ["role"] = "user", ["content"] = "And lakes?" });
        var (status2, second, text2) = await fixture.PostJson("/v1/chat/completions", new JsonObject
        {
            ["model"] = "tiny",
            ["messages"] = turn2,
            ["max_tokens"] = 4,
        }.ToJsonString());
        Assert.True(status2 == 200, text2);
        int cached = second!["usage"]!["prompt_tokens_details"]!["cached_tokens"]!.GetValue<int>();
        int prompt2 = second["usage"]!["prompt_tokens"]!.GetValue<int>();
        // The re-rendered history shares at least turn 1's prompt (less the few tokens recomputed for the MTP heads).
        Assert.True(cached >= prompt1 - 8 && cached < prompt2, $"cached {cached} of {prompt2}; turn 1's prompt was {prompt1}");
    }

    [Fact]
    public async Task HealthIs503WithTheReasonWhileTheModelCannotLoadAndTheApiSaysSo()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"mimosharp-broken-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), "{ not json");
        await using MimoServer server = await MimoServer.StartAsync(new ServerOptions { ModelDirectory = dir, Port = 0, Log = TextWriter.Null });
        await Assert.ThrowsAnyAsync<Exception>(() => server.Ready);
        using var http = new HttpClient { BaseAddress = server.BaseUrl };
        HttpResponseMessage health = await http.GetAsync("/health");
        Assert.Equal(503, (int)health.StatusCode);
        JsonNode body = JsonNode.Parse(await health.Content.ReadAsStringAsync())!;
        Assert.Equal("error", body["status"]!.GetValue<string>());
        Assert.Contains("config.json", body["message"]!.GetValue<string>());
        HttpResponseMessage models = await http.GetAsync("/v1/models");
        Assert.Equal(503, (int)models.StatusCode);
        Assert.NotNull(JsonNode.Parse(await models.Content.ReadAsStringAsync())!["error"]);
        Directory.Delete(dir, recursive: true);
    }
}
