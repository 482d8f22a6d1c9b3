using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace MimoSharp.Cli.Benchmarking;

/// <summary>Which HTTP API the load generator speaks.</summary>
public enum BenchApi
{
    /// <summary>POST /v1/completions with the prompt as token ids (exactly P prompt tokens).</summary>
    OpenAI,
    /// <summary>POST /v1/messages with the prompt ids detokenized into one user message.</summary>
    Anthropic,
}

public sealed record ServeBenchmarkOptions
{
    public required Uri BaseUrl { get; init; }
    public string? ApiKey { get; init; }
    public BenchApi Api { get; init; } = BenchApi.OpenAI;
    public required IReadOnlyList<int> Concurrency { get; init; }
    /// <summary>Requests per concurrency level.</summary>
    public int Requests { get; init; } = 8;
    public int PromptTokens { get; init; } = 128;
    public int GenTokens { get; init; } = 64;
    /// <summary>Leading prompt tokens every request shares (the rest is per request), to measure the prefix cache.</summary>
    public int SharedPrefixTokens { get; init; }
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromMinutes(5);
    public int Seed { get; init; } = 1;
}

/// <summary>Median, p90, p99 and mean of a latency, in seconds (null when nothing was measured).</summary>
public sealed record LatencySummary(double? Mean, double? P50, double? P90, double? P99, int Count)
{
    public static LatencySummary Of(IReadOnlyCollection<double> values)
    {
        if (values.Count == 0)
        {
            return new LatencySummary(null, null, null, null, 0);
        }
        double[] sorted = values.Order().ToArray();
        return new LatencySummary(sorted.Average(), Percentile(sorted, 50), Percentile(sorted, 90), Percentile(sorted, 99), sorted.Length);
    }

    /// <summary>Linear interpolation between closest ranks (numpy's default, as vLLM's bench reports).</summary>
    public static double Percentile(double[] sorted, double p)
    {
        double rank = p / 100 * (sorted.Length - 1);
        int lo = (int)Math.Floor(rank), hi = (int)Math.Ceiling(rank);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
    }
}

/// <summary>One concurrency level's results.</summary>
public sealed record ServeLevelResult
{
    public required int Concurrency { get; init; }
    public required int Requests { get; init; }
    public required int Completed { get; init; }
    public required int Failed { get; init; }
    public required double DurationSeconds { get; init; }
    public required long PromptTokens { get; init; }
    public required long CachedPromptTokens { get; init; }
    public required long OutputTokens { get; init; }
    public double RequestsPerSecond => Completed / Math.Max(DurationSeconds, 1e-9);
    public double OutputTokensPerSecond => OutputTokens / Math.Max(DurationSeconds, 1e-9);
    public double TotalTokensPerSecond => (PromptTokens + OutputTokens) / Math.Max(DurationSeconds, 1e-9);
    public double PrefixCacheHitRate => PromptTokens == 0 ? 0 : (double)CachedPromptTokens / PromptTokens;
    /// <summary>Time to the first streamed token.</summary>
    public required LatencySummary Ttft { get; init; }
    /// <summary>Gaps between consecutive streamed token events (all requests pooled).</summary>
    public required LatencySummary Itl { get; init; }
    /// <summary>Per request: (E2E - TTFT) / (output tokens - 1).</summary>
    public required LatencySummary Tpot { get; init; }
    public required LatencySummary E2e { get; init; }
    public IReadOnlyList<string> Errors { get; init; } = [];
}

/// <summary>
/// <c>mimo bench-serve</c>'s load generator, as <c>vllm bench serve</c>: a fixed number of streaming
/// requests per concurrency level (at most that many in flight), each timed from the client's side over
/// SSE (TTFT, every inter-token gap, end to end), with usage from the server's final event.
/// Prompts are random tokens of the server's own tokenizer (POST /tokenize on a text), so a request
/// shares no prefix with another beyond <see cref="ServeBenchmarkOptions.SharedPrefixTokens"/>.
/// Every request sends <c>ignore_eos</c> so it generates exactly the requested tokens.
/// </summary>
public sealed class ServeBenchmark(ServeBenchmarkOptions options) : IDisposable
{
    private const string Corpus =
        "The river ran past the old mill, where the miller counted sacks of grain each morning before dawn. " +
        "Seventeen ships waited in the harbour; their captains argued about tides, prices and the weather in March. " +
        "A compiler turns source text into tokens, tokens into trees, and trees into instructions for the machine. " +
        "Quantum fields, quiet libraries, jazz records and 42 zebras: every word here is ordinary text.";

    private readonly HttpClient _http = CreateClient(options);
    private int[]? _pool;

    public string? Model { get; private set; }

    private static HttpClient CreateClient(ServeBenchmarkOptions options)
    {
        var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 1024, PooledConnectionLifetime = TimeSpan.FromMinutes(10) })
        {
            BaseAddress = options.BaseUrl,
            Timeout = Timeout.InfiniteTimeSpan, // each request has its own deadline (OneAsync), the small calls theirs

        };
        if (options.ApiKey is string key)
        {
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
            http.DefaultRequestHeaders.Add("x-api-key", key);
        }
        http.DefaultRequestHeaders.Add("anthropic-version", "2023-06-01");
        return http;
    }

    public async Task<IReadOnlyList<ServeLevelResult>> RunAsync(CancellationToken cancellationToken = default)
    {
        await PrepareAsync(cancellationToken).ConfigureAwait(false);
        // One short request first, so the first level does not pay for the server's warm-up.
        await OneAsync(Prompt(-1), 2, cancellationToken).ConfigureAwait(false);
        var results = new List<ServeLevelResult>();
        int next = 0;
        foreach (int concurrency in options.Concurrency)
        {
            int first = next;
            next += options.Requests;
            results.Add(await LevelAsync(concurrency, first, cancellationToken).ConfigureAwait(false));
        }
        return results;
    }

    /// <summary>The model id (GET /v1/models) and a pool of ordinary-text token ids (POST /tokenize).</summary>
    private async Task PrepareAsync(CancellationToken cancellationToken)
    {
        JsonNode models;
        try
        {
            models = await GetJsonAsync("/v1/models", cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            throw new InvalidDataException($"cannot reach {options.BaseUrl}: {ex.Message}");
        }
        Model = models["data"]?[0]?["id"]?.GetValue<string>() ?? throw new InvalidDataException($"{options.BaseUrl}v1/models lists no model");
        JsonNode tokens = await PostJsonAsync("/tokenize", new JsonObject { ["model"] = Model, ["text"] = Corpus }, cancellationToken).ConfigureAwait(false);
        _pool = (tokens["tokens"] as JsonArray ?? throw new InvalidDataException("POST /tokenize answered without \"tokens\""))
            .Select(t => t!.GetValue<int>()).Distinct().ToArray();
        if (_pool.Length == 0)
        {
            throw new InvalidDataException("POST /tokenize gave no tokens for the benchmark text");
        }
    }

    /// <summary>Request <paramref name="index"/>'s prompt: the shared prefix, then tokens drawn with the request's own seed.</summary>
    private int[] Prompt(int index)
    {
        int[] pool = _pool!;
        var shared = new Random(options.Seed);
        var own = new Random(HashCode.Combine(options.Seed, index));
        var ids = new int[options.PromptTokens];
        for (int i = 0; i < ids.Length; i++)
        {
            ids[i] = pool[(i < options.SharedPrefixTokens ? shared : own).Next(pool.Length)];
        }
        return ids;
    }

    private async Task<ServeLevelResult> LevelAsync(int concurrency, int firstIndex, CancellationToken cancellationToken)
    {
        var prompts = new int[options.Requests][];
        for (int i = 0; i < prompts.Length; i++)
        {
            prompts[i] = Prompt(firstIndex + i);
        }
        var outcomes = new RequestOutcome[options.Requests];
        int taken = -1;
        long start = Stopwatch.GetTimestamp();
        async Task Worker()
        {
            int i;
            while ((i = Interlocked.Increment(ref taken)) < outcomes.Length)
            {
                outcomes[i] = await OneAsync(prompts[i], options.GenTokens, cancellationToken).ConfigureAwait(false);
            }
        }
        await Task.WhenAll(Enumerable.Range(0, Math.Min(concurrency, outcomes.Length)).Select(_ => Task.Run(Worker, cancellationToken))).ConfigureAwait(false);
        double duration = Stopwatch.GetElapsedTime(start).TotalSeconds;
        RequestOutcome[] ok = outcomes.Where(o => o.Error is null).ToArray();
        return new ServeLevelResult
        {
            Concurrency = concurrency,
            Requests = outcomes.Length,
            Completed = ok.Length,
            Failed = outcomes.Length - ok.Length,
            DurationSeconds = duration,
            PromptTokens = ok.Sum(o => (long)o.PromptTokens),
            CachedPromptTokens = ok.Sum(o => (long)o.CachedTokens),
            OutputTokens = ok.Sum(o => (long)o.OutputTokens),
            Ttft = LatencySummary.Of(ok.Where(o => o.TtftSeconds is not null).Select(o => o.TtftSeconds!.Value).ToList()),
            Itl = LatencySummary.Of(ok.SelectMany(o => o.Gaps).ToList()),
            Tpot = LatencySummary.Of(ok.Where(o => o.OutputTokens > 1 && o.TtftSeconds is not null)
                .Select(o => (o.E2eSeconds - o.TtftSeconds!.Value) / (o.OutputTokens - 1)).ToList()),
            E2e = LatencySummary.Of(ok.Select(o => o.E2eSeconds).ToList()),
            Errors = outcomes.Where(o => o.Error is not null).Select(o => o.Error!).Distinct().Take(5).ToList(),
        };
    }

    private sealed record RequestOutcome(double? TtftSeconds, List<double> Gaps, double E2eSeconds, int PromptTokens, int CachedTokens, int OutputTokens, string? Error);

    /// <summary>One streaming request; token events are timed as they arrive.</summary>
    private async Task<RequestOutcome> OneAsync(int[] prompt, int genTokens, CancellationToken cancellationToken)
    {
        JsonObject body;
        string path;
        if (options.Api == BenchApi.OpenAI)
        {
            path = "/v1/completions";
            body = new JsonObject
            {
                ["model"] = Model,
                ["prompt"] = new JsonArray(prompt.Select(id => (JsonNode)id).ToArray()),
                ["max_tokens"] = genTokens,
                ["temperature"] = 0,
                ["stream"] = true,
                ["stream_options"] = new JsonObject { ["include_usage"] = true },
                ["ignore_eos"] = true,
            };
        }
        else
        {
            path = "/v1/messages";
            body = new JsonObject
            {
                ["model"] = Model,
                ["max_tokens"] = genTokens,
                ["temperature"] = 0,
                ["stream"] = true,
                ["ignore_eos"] = true,
                ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = await DetokenizeAsync(prompt, cancellationToken).ConfigureAwait(false) }),
            };
        }
        // HttpClient.Timeout stops at the headers; this bounds the whole stream too.
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(options.RequestTimeout);
        CancellationToken requestToken = deadline.Token;
        var gaps = new List<double>(genTokens);
        long start = Stopwatch.GetTimestamp(), last = 0;
        double? ttft = null;
        int promptTokens = 0, cached = 0, output = 0;
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
            using HttpResponseMessage response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, requestToken).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                string text = await response.Content.ReadAsStringAsync(requestToken).ConfigureAwait(false);
                return Failed($"HTTP {(int)response.StatusCode}: {Truncate(text)}");
            }
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(requestToken).ConfigureAwait(false));
            while (await reader.ReadLineAsync(requestToken).ConfigureAwait(false) is string line)
            {
                if (!line.StartsWith("data:", StringComparison.Ordinal))
                {
                    continue;
                }
                string data = line[5..].Trim();
                if (data == "[DONE]")
                {
                    break;
                }
                JsonNode? e = JsonNode.Parse(data);
                if (e?["error"] is JsonNode error)
                {
                    return Failed($"error event: {Truncate(error.ToJsonString())}");
                }
                bool token = false;
                if (options.Api == BenchApi.OpenAI)
                {
                    token = e?["choices"] is JsonArray { Count: > 0 } choices && choices[0]?["text"]?.GetValue<string>() is { Length: > 0 };
                    if (e?["usage"] is JsonObject usage)
                    {
                        promptTokens = usage["prompt_tokens"]?.GetValue<int>() ?? 0;
                        output = usage["completion_tokens"]?.GetValue<int>() ?? 0;
                        cached = usage["prompt_tokens_details"]?["cached_tokens"]?.GetValue<int>() ?? 0;
                    }
                }
                else
                {
                    switch (e?["type"]?.GetValue<string>())
                    {
                        case "message_start":
                            JsonNode? usage = e["message"]?["usage"];
                            cached = usage?["cache_read_input_tokens"]?.GetValue<int>() ?? 0;
                            promptTokens = (usage?["input_tokens"]?.GetValue<int>() ?? 0) + cached;
                            break;
                        case "content_block_delta":
                            token = e["delta"]?["type"]?.GetValue<string>() is "text_delta" or "thinking_delta" or "input_json_delta";
                            break;
                        case "message_delta":
                            JsonNode? final = e["usage"];
                            output = final?["output_tokens"]?.GetValue<int>() ?? 0;
                            // The final usage knows the prefix-cache hit; message_start may be sent before admission.
                            if (final?["input_tokens"] is JsonNode input)
                            {
                                cached = final["cache_read_input_tokens"]?.GetValue<int>() ?? 0;
                                promptTokens = input.GetValue<int>() + cached;
                            }
                            break;
                        case "message_stop":
                            goto done;
                    }
                }
                if (token)
                {
                    long now = Stopwatch.GetTimestamp();
                    if (ttft is null)
                    {
                        ttft = Stopwatch.GetElapsedTime(start, now).TotalSeconds;
                    }
                    else
                    {
                        gaps.Add(Stopwatch.GetElapsedTime(last, now).TotalSeconds);
                    }
                    last = now;
                }
            }
        done:
            if (output == 0)
            {
                return Failed("the stream ended without usage (no tokens generated)");
            }
            return new RequestOutcome(ttft, gaps, Stopwatch.GetElapsedTime(start).TotalSeconds, promptTokens, cached, output, null);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return Failed($"no complete answer within {options.RequestTimeout.TotalSeconds:F0} s (--timeout)");
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or JsonException)
        {
            return Failed($"{ex.GetType().Name}: {ex.Message}");
        }

        RequestOutcome Failed(string message) => new(null, [], Stopwatch.GetElapsedTime(start).TotalSeconds, 0, 0, 0, message);
    }

    private async Task<string> DetokenizeAsync(int[] ids, CancellationToken cancellationToken)
    {
        JsonNode answer = await PostJsonAsync("/detokenize", new JsonObject { ["model"] = Model, ["tokens"] = new JsonArray(ids.Select(i => (JsonNode)i).ToArray()) }, cancellationToken).ConfigureAwait(false);
        return answer["text"]?.GetValue<string>() ?? answer["prompt"]?.GetValue<string>() ?? throw new InvalidDataException("POST /detokenize answered without \"text\"");
    }

    private async Task<JsonNode> GetJsonAsync(string path, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(options.RequestTimeout);
        using HttpResponseMessage response = await _http.GetAsync(path, deadline.Token).ConfigureAwait(false);
        return await ReadJsonAsync(response, path, deadline.Token).ConfigureAwait(false);
    }

    private async Task<JsonNode> PostJsonAsync(string path, JsonObject body, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(options.RequestTimeout);
        using var content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        using HttpResponseMessage response = await _http.PostAsync(path, content, deadline.Token).ConfigureAwait(false);
        return await ReadJsonAsync(response, path, deadline.Token).ConfigureAwait(false);
    }

    private async Task<JsonNode> ReadJsonAsync(HttpResponseMessage response, string path, CancellationToken cancellationToken)
    {
        string text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidDataException($"{options.BaseUrl.ToString().TrimEnd('/')}{path} answered HTTP {(int)response.StatusCode}: {Truncate(text)}");
        }
        try
        {
            return JsonNode.Parse(text) ?? throw new InvalidDataException($"{path} answered null");
        }
        catch (JsonException)
        {
            throw new InvalidDataException($"{path} answered something that is not JSON: {Truncate(text)}");
        }
    }

    private static string Truncate(string text) => text.Length <= 200 ? text : text[..200] + "...";

    public void Dispose() => _http.Dispose();
}
