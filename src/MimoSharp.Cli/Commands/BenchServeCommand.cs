using System.CommandLine;
using System.Text.Json;
using MimoSharp.Cli.Benchmarking;
using MimoSharp.Server;

namespace MimoSharp.Cli.Commands;

/// <summary>
/// `mimo bench-serve`: a load generator against a running server (--url) or one it starts in process on
/// 127.0.0.1 (--model, with --parallel set to the highest concurrency). Per concurrency level: request and
/// output-token throughput, TTFT, inter-token latency, time per output token and end-to-end latency
/// (mean, p50, p90, p99), and the prefix cache's hit rate.
/// </summary>
internal static class BenchServeCommand
{
    public const int MaxConcurrency = 256;
    public const int MaxRequests = 10_000;

    public static Command Create(TextWriter output)
    {
        var url = new Option<string?>("--url") { Description = "Base URL of a running server (http://127.0.0.1:8080)" };
        var model = new Option<string?>("--model") { Description = "Model directory: start a server in process on 127.0.0.1 instead" };
        var apiKey = new Option<string?>("--api-key") { Description = "Sent as Authorization: Bearer KEY and x-api-key: KEY" };
        var concurrency = new Option<string>("--concurrency") { Description = "Requests in flight, a comma list", DefaultValueFactory = _ => "1,4,8" };
        var requests = new Option<int>("--requests") { Description = "Requests per concurrency level", DefaultValueFactory = _ => 16 };
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "Prompt tokens per request", DefaultValueFactory = _ => 128 };
        var genTokens = new Option<int>("--gen-tokens") { Description = "Tokens each request generates (ignore_eos)", DefaultValueFactory = _ => 64 };
        var sharedPrefix = new Option<int>("--shared-prefix") { Description = "Leading prompt tokens all requests share (prefix cache)", DefaultValueFactory = _ => 0 };
        var api = new Option<string>("--api") { Description = "openai (/v1/completions) or anthropic (/v1/messages)", DefaultValueFactory = _ => "openai" };
        var parallel = new Option<int?>("--parallel") { Description = "With --model: sequences the server decodes at once (default: the highest concurrency)" };
        var draftTokens = new Option<int>("--draft-tokens") { Description = "With --model: MTP draft tokens per step, 0..3", DefaultValueFactory = _ => 0 };
        var threads = new Option<int?>("--threads") { Description = "With --model: kernel threads" };
        var timeout = new Option<int>("--timeout") { Description = "Seconds a request may take before it counts as failed", DefaultValueFactory = _ => 300 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var command = new Command("bench-serve", "Load-test an OpenAI/Anthropic-compatible server over streaming HTTP: throughput, TTFT, ITL, E2E per concurrency")
        {
            url, model, apiKey, concurrency, requests, promptTokens, genTokens, sharedPrefix, api, parallel, draftTokens, threads, timeout, json,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            string? target = parse.GetValue(url), directory = parse.GetValue(model);
            if ((target is null) == (directory is null))
            {
                throw new ArgumentException("give exactly one of --url URL (a running server) or --model DIR (start one in process)");
            }
            int[] levels = CliParsing.ParseIds(parse.GetValue(concurrency)!, "--concurrency");
            if (levels.Any(c => c is < 1 or > MaxConcurrency))
            {
                throw new ArgumentException($"--concurrency: every level must be in 1..{MaxConcurrency}");
            }
            int n = parse.GetValue(requests), p = parse.GetValue(promptTokens), g = parse.GetValue(genTokens), shared = parse.GetValue(sharedPrefix);
            if (n is < 1 or > MaxRequests)
            {
                throw new ArgumentException($"--requests: {n} is outside 1..{MaxRequests}");
            }
            if (p < 1 || g < 1)
            {
                throw new ArgumentException("--prompt-tokens and --gen-tokens must be at least 1");
            }
            if (shared < 0 || shared > p)
            {
                throw new ArgumentException($"--shared-prefix: {shared} is outside 0..--prompt-tokens ({p})");
            }
            BenchApi flavor = parse.GetValue(api) switch
            {
                "openai" => BenchApi.OpenAI,
                "anthropic" => BenchApi.Anthropic,
                var other => throw new ArgumentException($"--api: expected openai or anthropic, got \"{other}\""),
            };
            int d = parse.GetValue(draftTokens);
            if (d is < 0 or > 3)
            {
                throw new ArgumentException($"--draft-tokens: {d} is outside 0..3");
            }
            if (parse.GetValue(timeout) < 1)
            {
                throw new ArgumentException("--timeout must be at least 1 second");
            }
            Uri baseUrl;
            MimoServer? server = null;
            try
            {
                if (directory is not null)
                {
                    server = await MimoServer.StartAsync(new ServerOptions
                    {
                        ModelDirectory = directory,
                        Port = 0,
                        ApiKey = parse.GetValue(apiKey),
                        Parallel = parse.GetValue(parallel) ?? levels.Max(),
                        MaxQueued = Math.Max(64, levels.Max()),
                        DraftTokens = d,
                        Threads = parse.GetValue(threads),
                        Log = TextWriter.Null,
                    }, cancellationToken);
                    await server.Ready;
                    baseUrl = server.BaseUrl;
                }
                else if (!Uri.TryCreate(target, UriKind.Absolute, out baseUrl!) || baseUrl.Scheme is not ("http" or "https"))
                {
                    throw new ArgumentException($"--url: \"{target}\" is not an http(s) URL");
                }
                using var bench = new ServeBenchmark(new ServeBenchmarkOptions
                {
                    BaseUrl = baseUrl,
                    ApiKey = parse.GetValue(apiKey),
                    Api = flavor,
                    Concurrency = levels,
                    Requests = n,
                    PromptTokens = p,
                    GenTokens = g,
                    SharedPrefixTokens = shared,
                    RequestTimeout = TimeSpan.FromSeconds(parse.GetValue(timeout)),
                });
                IReadOnlyList<ServeLevelResult> results = await bench.RunAsync(cancellationToken);
                if (parse.GetValue(json))
                {
                    output.WriteLine(JsonSerializer.Serialize(new
                    {
                        url = baseUrl.ToString(),
                        api = parse.GetValue(api),
                        model = bench.Model,
                        in_process = server is not null,
                        prompt_tokens = p,
                        gen_tokens = g,
                        shared_prefix_tokens = shared,
                        requests_per_level = n,
                        levels = results.Select(r => new
                        {
                            concurrency = r.Concurrency,
                            requests = r.Requests,
                            completed = r.Completed,
                            failed = r.Failed,
                            duration_s = r.DurationSeconds,
                            request_throughput = r.RequestsPerSecond,
                            output_tokens_per_s = r.OutputTokensPerSecond,
                            total_tokens_per_s = r.TotalTokensPerSecond,
                            prompt_tokens = r.PromptTokens,
                            cached_prompt_tokens = r.CachedPromptTokens,
                            output_tokens = r.OutputTokens,
                            prefix_cache_hit_rate = r.PrefixCacheHitRate,
                            ttft_s = Summary(r.Ttft),
                            itl_s = Summary(r.Itl),
                            tpot_s = Summary(r.Tpot),
                            e2e_s = Summary(r.E2e),
                            errors = r.Errors,
                        }),
                    }, CliParsing.Json));
                }
                else
                {
                    output.WriteLine($"{baseUrl} ({parse.GetValue(api)}, model {bench.Model}): {n} requests per level, {p} prompt + {g} generated tokens each");
                    output.WriteLine("conc  ok/fail   req/s   out tok/s   TTFT p50/p90/p99 ms       ITL p50/p90/p99 ms      TPOT p50/p90/p99 ms     E2E p50/p99 s   cache hit");
                    foreach (ServeLevelResult r in results)
                    {
                        output.WriteLine($"{r.Concurrency,4}  {r.Completed,3}/{r.Failed,-3} {r.RequestsPerSecond,7:F2} {r.OutputTokensPerSecond,10:F1}   {Percentiles(r.Ttft),-24}  {Percentiles(r.Itl),-22}  {Percentiles(r.Tpot),-22}  {r.E2e.P50,6:F2}/{r.E2e.P99,-6:F2}  {r.PrefixCacheHitRate,8:P0}");
                        foreach (string error in r.Errors)
                        {
                            output.WriteLine($"      failed: {error}");
                        }
                    }
                }
                return results.Any(r => r.Failed > 0) ? 1 : 0;
            }
            finally
            {
                if (server is not null)
                {
                    await server.DisposeAsync();
                }
            }
        });
        return command;
    }

    private static string Percentiles(LatencySummary s) => $"{Ms(s.P50)}/{Ms(s.P90)}/{Ms(s.P99)}";

    private static object Summary(LatencySummary s) => new { mean = s.Mean, p50 = s.P50, p90 = s.P90, p99 = s.P99, count = s.Count };

    private static string Ms(double? seconds) => seconds is double s ? (s * 1000).ToString("F2", System.Globalization.CultureInfo.InvariantCulture) : "-";
}
