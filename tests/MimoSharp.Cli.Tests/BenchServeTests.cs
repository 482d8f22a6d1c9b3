using System.Text.Json.Nodes;
using MimoSharp.Server;

namespace MimoSharp.Cli.Tests;

/// <summary>`mimo bench-serve` against a real server on 127.0.0.1: counts and fields, never wall-clock values.</summary>
public sealed class BenchServeTests
{
    private static string Model => Path.Combine(TestPaths.TinyRandom, "model");

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Program.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private static void CheckLevels(JsonNode report, int requests, int promptTokens, int genTokens, bool exactPrompt)
    {
        JsonArray levels = report["levels"]!.AsArray();
        Assert.Equal([1, 2], levels.Select(l => l!["concurrency"]!.GetValue<int>()));
        foreach (JsonNode? level in levels)
        {
            Assert.Equal(requests, level!["requests"]!.GetValue<int>());
            Assert.Equal(requests, level["completed"]!.GetValue<int>());
            Assert.Equal(0, level["failed"]!.GetValue<int>());
            Assert.Empty(level["errors"]!.AsArray());
            // ignore_eos: every request generates exactly --gen-tokens.
            Assert.Equal(requests * genTokens, level["output_tokens"]!.GetValue<long>());
            long prompt = level["prompt_tokens"]!.GetValue<long>();
            if (exactPrompt)
            {
                Assert.Equal(requests * promptTokens, prompt);
            }
            else
            {
                Assert.True(prompt >= requests * promptTokens / 2, $"prompt tokens {prompt}");
            }
            Assert.InRange(level["cached_prompt_tokens"]!.GetValue<long>(), 0, prompt);
            Assert.InRange(level["prefix_cache_hit_rate"]!.GetValue<double>(), 0, 1);
            Assert.True(level["duration_s"]!.GetValue<double>() > 0);
            Assert.True(level["request_throughput"]!.GetValue<double>() > 0);
            Assert.True(level["output_tokens_per_s"]!.GetValue<double>() > 0);
            foreach (string name in new[] { "ttft_s", "e2e_s", "tpot_s" })
            {
                JsonNode s = level[name]!;
                Assert.Equal(requests, s["count"]!.GetValue<int>());
                double p50 = s["p50"]!.GetValue<double>(), p99 = s["p99"]!.GetValue<double>();
                Assert.True(p50 >= 0 && p50 <= p99 + 1e-12, $"{name}: p50 {p50}, p99 {p99}");
            }
            Assert.True(level["ttft_s"]!["p50"]!.GetValue<double>() <= level["e2e_s"]!["p99"]!.GetValue<double>());
            // A gap between consecutive token events of one request: at most gen-1 per request.
            Assert.InRange(level["itl_s"]!["count"]!.GetValue<int>(), 1, requests * (genTokens - 1));
        }
    }

    [Fact]
    public void InProcessServerOpenAIReportsEveryLevel()
    {
        var (code, output, error) = Run("bench-serve", "--model", Model, "--concurrency", "1,2", "--requests", "2", "--prompt-tokens", "12", "--gen-tokens", "6", "--json");
        Assert.True(code == 0, error + output);
        JsonNode report = JsonNode.Parse(output)!;
        Assert.True(report["in_process"]!.GetValue<bool>());
        Assert.Equal("openai", report["api"]!.GetValue<string>());
        Assert.StartsWith("http://127.0.0.1:", report["url"]!.GetValue<string>());
        CheckLevels(report, requests: 2, promptTokens: 12, genTokens: 6, exactPrompt: true);
    }

    [Fact]
    public async Task RunningServerAnthropicWithAKey()
    {
        await using MimoServer server = await MimoServer.StartAsync(new ServerOptions { ModelDirectory = Model, Port = 0, ApiKey = "k-bench", Parallel = 2, Log = TextWriter.Null });
        await server.Ready;
        string url = server.BaseUrl.ToString();
        var (code, output, error) = await Task.Run(() => Run("bench-serve", "--url", url, "--api-key", "k-bench", "--api", "anthropic", "--concurrency", "1,2", "--requests", "2",
            "--prompt-tokens", "40", "--shared-prefix", "32", "--gen-tokens", "5", "--json"));
        Assert.True(code == 0, error + output);
        JsonNode report = JsonNode.Parse(output)!;
        Assert.False(report["in_process"]!.GetValue<bool>());
        CheckLevels(report, requests: 2, promptTokens: 40, genTokens: 5, exactPrompt: false);
        // Every prompt starts with the same 32 tokens (the warm-up's too): the prefix cache serves some of them.
        Assert.All(report["levels"]!.AsArray(), l => Assert.True(l!["cached_prompt_tokens"]!.GetValue<long>() > 0, l.ToJsonString()));

        // Without the key every request fails: reported per level and in the exit code, not thrown.
        (code, output, error) = await Task.Run(() => Run("bench-serve", "--url", url, "--concurrency", "1", "--requests", "1", "--prompt-tokens", "4", "--gen-tokens", "2"));
        Assert.Equal(1, code);
        Assert.Contains("401", error + output);
    }

    [Theory]
    [InlineData("--concurrency", "0")]
    [InlineData("--requests", "0")]
    [InlineData("--api", "grpc")]
    [InlineData("--shared-prefix", "99")]
    public void BadArgumentsAreOneClearLine(string flag, string value)
    {
        var (code, _, error) = Run("bench-serve", "--model", Model, "--prompt-tokens", "8", flag, value);
        Assert.Equal(1, code);
        Assert.Contains(flag, error);
    }

    [Fact]
    public void UrlAndModelTogetherAreRefused()
    {
        var (code, _, error) = Run("bench-serve", "--model", Model, "--url", "http://127.0.0.1:1");
        Assert.Equal(1, code);
        Assert.Contains("exactly one of --url", error);
        (code, _, error) = Run("bench-serve", "--url", "http://127.0.0.1:1", "--requests", "1");
        Assert.Equal(1, code);
        Assert.Contains("cannot reach http://127.0.0.1:1/", error);
        (code, _, error) = Run("bench-serve", "--url", "ftp://example", "--requests", "1");
        Assert.Equal(1, code);
        Assert.Contains("is not an http(s) URL", error);
    }
}
