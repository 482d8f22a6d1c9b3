using System.Text.Json.Nodes;

namespace MimoSharp.Server.Tests;

/// <summary>Every bad request gets a 4xx in the API's own error shape naming the field; never a 500 or a dropped connection.</summary>
[Collection(ServerCollection.Name)]
public sealed class BadRequestTests(ServerFixture fixture)
{
    private const string User = """[{"role":"user","content":"hi"}]""";

    private static string Expand(string body) => body.Replace("USER", User).Replace("LONG", new string('x', 5000));

    public static TheoryData<string, string, int, string> OpenAICases() => new()
    {
        { "/v1/chat/completions", """{"model":"tiny","messages":""", 400, "not valid JSON" },
        { "/v1/chat/completions", """[1,2]""", 400, "JSON object" },
        { "/v1/chat/completions", """{"model":"tiny","messages":USER,"temperature":"hot"}""", 400, "temperature" },
        { "/v1/chat/completions", """{"model":"tiny","messages":USER,"max_tokens":"10"}""", 400, "max_tokens" },
        { "/v1/chat/completions", """{"model":"tiny","messages":USER,"stream":"yes"}""", 400, "stream" },
        { "/v1/chat/completions", """{"model":"gpt-4o","messages":USER}""", 404, "model" },
        { "/v1/chat/completions", """{"messages":USER}""", 400, "model" },
        { "/v1/chat/completions", """{"model":"tiny","messages":[]}""", 400, "messages" },
        { "/v1/chat/completions", """{"model":"tiny","messages":[{"role":"wizard","content":"hi"}]}""", 400, "messages[0].role" },
        { "/v1/chat/completions", """{"model":"tiny","messages":[{"role":"user","content":42}]}""", 400, "messages[0].content" },
        { "/v1/chat/completions", """{"model":"tiny","messages":USER,"n":9}""", 400, "n" },
        { "/v1/chat/completions", """{"model":"tiny","messages":USER,"max_tokens":0}""", 400, "max_tokens" },
        { "/v1/chat/completions", """{"model":"tiny","messages":USER,"max_completion_tokens":-3}""", 400, "max_completion_tokens" },
        { "/v1/chat/completions", """{"model":"tiny","messages":USER,"max_tokens":4090}""", 400, "4096" },
        { "/v1/chat/completions", """{"model":"tiny","messages":[{"role":"user","content":"LONG"}]}""", 400, "context" },
        { "/v1/chat/completions", """{"model":"tiny","messages":USER,"top_p":1.5}""", 400, "top_p" },
        { "/v1/chat/completions", """{"model":"tiny","messages":USER,"logit_bias":{"99999":5}}""", 400, "logit_bias" },
        { "/v1/chat/completions", """{"model":"tiny","messages":USER,"top_logprobs":3}""", 400, "top_logprobs" },
        { "/v1/chat/completions", """{"model":"tiny","messages":USER,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"string"}}}]}""", 400, "tools[0].function.parameters" },
        { "/v1/chat/completions", """{"model":"tiny","messages":USER,"tools":[{"type":"function","function":{"name":"bad name!"}}]}""", 400, "tools[0].function.name" },
        { "/v1/chat/completions", """{"model":"tiny","messages":USER,"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}}}""", 400, "tool_choice" },
        { "/v1/chat/completions", """{"model":"tiny","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}""", 400, "messages[0].content[0].type" },
        { "/v1/chat/completions", """{"model":"tiny","messages":USER,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"$ref":"#/a"}}}}""", 400, "response_format.json_schema.schema" },
        { "/v1/chat/completions", """{"model":"tiny","messages":USER,"reasoning_effort":"extreme"}""", 400, "reasoning_effort" },
        { "/v1/completions", """{"model":"tiny","prompt":[1,2,99999]}""", 400, "prompt[2]" },
        { "/v1/completions", """{"model":"tiny"}""", 400, "prompt" },
        { "/detokenize", """{"tokens":[1,"a"]}""", 400, "tokens[1]" },
        { "/v1/nowhere", """{}""", 404, "no endpoint" },
    };

    [Theory]
    [MemberData(nameof(OpenAICases))]
    public async Task OpenAIShapeNamesTheField(string path, string body, int status, string mention)
    {
        var (code, json, text) = await fixture.PostJson(path, Expand(body));
        Assert.True(code == status, $"{code}: {text}");
        JsonObject error = json!["error"]!.AsObject();
        Assert.Contains(mention, error["message"]!.GetValue<string>());
        Assert.NotNull(error["type"]);
        Assert.True(error.ContainsKey("param") && error.ContainsKey("code"));
    }

    public static TheoryData<string, int, string, string> AnthropicCases() => new()
    {
        { """{"model":"tiny","max_tokens":5,"messages":""", 400, "invalid_request_error", "not valid JSON" },
        { """{"model":"tiny","messages":[{"role":"user","content":"hi"}]}""", 400, "invalid_request_error", "max_tokens" },
        { """{"model":"tiny","max_tokens":0,"messages":[{"role":"user","content":"hi"}]}""", 400, "invalid_request_error", "max_tokens" },
        { """{"model":"tiny","max_tokens":5,"messages":[]}""", 400, "invalid_request_error", "messages" },
        { """{"model":"claude-x","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}""", 404, "not_found_error", "model" },
        { """{"model":"tiny","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AA"}}]}]}""", 400, "invalid_request_error", "messages.0.content.0.type" },
        { """{"model":"tiny","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"t","input_schema":{"type":"array"}}]}""", 400, "invalid_request_error", "tools.0.input_schema" },
        { """{"model":"tiny","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"t"}]}""", 400, "invalid_request_error", "tools.0.input_schema" },
        { """{"model":"tiny","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"thinking":{"type":"sometimes"}}""", 400, "invalid_request_error", "thinking.type" },
        { """{"model":"tiny","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"tool_choice":{"type":"tool","name":"nope"}}""", 400, "invalid_request_error", "tool_choice" },
        { """{"model":"tiny","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"stop_sequences":[1]}""", 400, "invalid_request_error", "stop_sequences[0]" },
    };

    [Theory]
    [MemberData(nameof(AnthropicCases))]
    public async Task AnthropicShapeNamesTheField(string body, int status, string type, string mention)
    {
        var (code, json, text) = await fixture.PostJson("/v1/messages", Expand(body));
        Assert.True(code == status, $"{code}: {text}");
        Assert.Equal("error", json!["type"]!.GetValue<string>());
        Assert.Equal(type, json["error"]!["type"]!.GetValue<string>());
        Assert.Contains(mention, json["error"]!["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task BodyOverTheLimitIs413InBothShapes()
    {
        string big = new('a', (int)ServerFixture.BodyLimit + 1000);
        var openAi = await fixture.PostJson("/v1/chat/completions", $$"""{"model":"tiny","messages":[{"role":"user","content":"{{big}}"}]}""");
        Assert.Equal(413, openAi.Status);
        Assert.Contains("limit", openAi.Body!["error"]!["message"]!.GetValue<string>());
        var anthropic = await fixture.PostJson("/v1/messages", $$"""{"model":"tiny","max_tokens":5,"messages":[{"role":"user","content":"{{big}}"}]}""");
        Assert.Equal(413, anthropic.Status);
        Assert.Equal("request_too_large", anthropic.Body!["error"]!["type"]!.GetValue<string>());
    }

    [Fact]
    public async Task MissingOrWrongKeyIs401InBothShapesAndHealthNeedsNone()
    {
        var openAi = await fixture.PostJson("/v1/chat/completions", Expand("""{"model":"tiny","messages":USER}"""), auth: false);
        Assert.Equal(401, openAi.Status);
        Assert.Equal("invalid_api_key", openAi.Body!["error"]!["code"]!.GetValue<string>());
        var anthropic = await fixture.PostJson("/v1/messages", """{"model":"tiny","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}""", auth: false,
            headers: new Dictionary<string, string> { ["x-api-key"] = "nope" });
        Assert.Equal(401, anthropic.Status);
        Assert.Equal("authentication_error", anthropic.Body!["error"]!["type"]!.GetValue<string>());
        var withXApiKey = await fixture.PostJson("/v1/messages/count_tokens", """{"model":"tiny","messages":[{"role":"user","content":"hi"}]}""", auth: false,
            headers: new Dictionary<string, string> { ["x-api-key"] = ServerFixture.ApiKey });
        Assert.Equal(200, withXApiKey.Status);
        using var anonymous = new HttpClient { BaseAddress = fixture.BaseUrl };
        HttpResponseMessage health = await anonymous.GetAsync("/health");
        Assert.Equal(200, (int)health.StatusCode);
        Assert.Equal("ok", JsonNode.Parse(await health.Content.ReadAsStringAsync())!["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task MetricsLabelRequestsByRouteSoRandomPathsAddNoSeries()
    {
        string random = "/v1/no-such-" + Guid.NewGuid().ToString("N");
        var (status, body, _) = await fixture.PostJson(random, "{}");
        Assert.Equal(404, status);
        Assert.NotNull(body!["error"]);
        await fixture.PostJson("/v1/chat/completions", """{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":2}""");
        string metrics = await fixture.Http.GetStringAsync("/metrics");
        Assert.DoesNotContain(random, metrics);
        Assert.Matches("mimo_requests_total\\{endpoint=\"unmatched\",status=\"404\"\\} [1-9]", metrics);
        Assert.Matches("mimo_requests_total\\{endpoint=\"/v1/chat/completions\",status=\"200\"\\} [1-9]", metrics);
        // The latency histograms and the queue gauge the issue names are exported.
        Assert.Matches("mimo_time_to_first_token_seconds_count [1-9]", metrics);
        Assert.Contains("mimo_inter_token_latency_seconds_bucket", metrics);
        Assert.Contains("mimo_queue_depth ", metrics);
    }

    [Fact]
    public async Task NoRequestInThisSuiteGotA500()
    {
        await Task.Yield();
        Assert.DoesNotContain(" 500 ", fixture.Log.ToString());
    }
}
