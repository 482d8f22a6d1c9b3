using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using MimoSharp.Runtime.Generation;

namespace MimoSharp.Server;

/// <summary>
/// <c>mimo serve</c>: Kestrel on <see cref="ServerOptions.Host"/> with the OpenAI and Anthropic
/// endpoints. Kestrel starts first and the model loads behind it (GET /health answers 503 until it is
/// ready). One log line per request.
/// </summary>
public sealed class MimoServer : IAsyncDisposable
{
    internal static readonly JsonSerializerOptions Json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private readonly WebApplication _app;
    private readonly ServerOptions _options;
    private readonly TextWriter _log;
    private readonly Lock _logLock = new();
    private ModelHost? _host;
    private string? _loadError;

    private MimoServer(WebApplication app, ServerOptions options)
    {
        _app = app;
        _options = options;
        _log = options.Log ?? Console.Out;
        Metrics = new ServerMetrics();
    }

    public ServerMetrics Metrics { get; private set; }

    /// <summary>The port Kestrel listens on (the one picked when <see cref="ServerOptions.Port"/> is 0).</summary>
    public int Port { get; private set; }

    public Uri BaseUrl => new($"http://{_options.Host}:{Port}/");

    /// <summary>The keep-alive interval of streams waiting for their first token (<see cref="ServerOptions.KeepAliveInterval"/>).</summary>
    internal TimeSpan KeepAlive => _options.KeepAliveInterval;

    /// <summary>Completes when the model has loaded (faults with the load error).</summary>
    public Task Ready { get; private set; } = Task.CompletedTask;

    public ModelHost? Host => _host;

    public static async Task<MimoServer> StartAsync(ServerOptions options, CancellationToken cancellationToken = default)
    {
        if (!IPAddress.TryParse(options.Host, out IPAddress? address) && options.Host != "localhost")
        {
            throw new ArgumentException($"--host: \"{options.Host}\" is not an IP address");
        }
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            // The body limit is enforced while reading (413 in the API's shape), not by Kestrel's reset.
            k.Limits.MaxRequestBodySize = null;
            k.AddServerHeader = false;
            if (address is not null)
            {
                k.Listen(address, options.Port);
            }
            else
            {
                k.ListenLocalhost(options.Port);
            }
        });
        WebApplication app = builder.Build();
        var server = new MimoServer(app, options);
        server.Map(app);
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        string bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.Port = new Uri(bound).Port;
        server.Ready = Task.Run(() =>
        {
            try
            {
                ModelHost host = ModelHost.Load(options);
                server.Metrics = new ServerMetrics(host.Engine);
                server._host = host;
            }
            catch (Exception ex)
            {
                server._loadError = ex.Message;
                throw;
            }
        }, CancellationToken.None);
        return server;
    }

    public Task WaitForShutdownAsync(CancellationToken cancellationToken) => _app.WaitForShutdownAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        try
        {
            await Ready.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The load error was reported through /health and the log.
        }
        _host?.Dispose();
    }

    private static ApiFlavor FlavorOf(HttpContext context) =>
        context.Request.Path.StartsWithSegments("/v1/messages") ? ApiFlavor.Anthropic : ApiFlavor.OpenAI;

    private void Map(WebApplication app)
    {
        app.Use(async (context, next) =>
        {
            long start = Stopwatch.GetTimestamp();
            ApiFlavor flavor = FlavorOf(context);
            try
            {
                if (_options.ApiKey is string key && !context.Request.Path.StartsWithSegments("/health") && !Authorized(context.Request, key))
                {
                    throw new ApiException(401, "invalid or missing API key: send Authorization: Bearer KEY or x-api-key: KEY");
                }
                await next(context).ConfigureAwait(false);
            }
            catch (ApiException ex) when (!context.Response.HasStarted)
            {
                await WriteError(context, flavor, ex.Status, ex.Message, ex.Param).ConfigureAwait(false);
            }
            catch (ApiException ex) when (context.Response.ContentType == "text/event-stream" && !context.RequestAborted.IsCancellationRequested)
            {
                // Refused after keep-alives opened the stream: the error as an in-stream event, in the API's shape.
                await WriteSse(context, flavor == ApiFlavor.Anthropic ? "error" : null, ApiException.ErrorBody(flavor, ex.Status, ex.Message, ex.Param).ToJsonString(Json)).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
                // The client went away.
            }
            catch (Exception ex) when (!context.Response.HasStarted)
            {
                await WriteError(context, flavor, 500, $"internal error: {ex.Message}").ConfigureAwait(false);
            }
            finally
            {
                string usage = context.Items.TryGetValue("usage", out object? u) ? $" {u}" : "";
                double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                string path = context.Request.Path.Value ?? "";
                // Labelled by route, not by path: every random URL a client tries must not become a new series.
                string endpoint = context.GetEndpoint() is RouteEndpoint { RoutePattern.RawText: string route } && !route.StartsWith("{*", StringComparison.Ordinal)
                    ? route
                    : "unmatched"; // no route, or the catch-all fallback (404)
                Metrics.Requests.WithLabels(endpoint, context.Response.StatusCode.ToString(CultureInfo.InvariantCulture)).Inc();
                lock (_logLock)
                {
                    _log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{DateTimeOffset.UtcNow:yyyy-MM-ddTHH:mm:ss.fffZ} {context.Request.Method} {path} {context.Response.StatusCode} {ms:F0}ms{usage}"));
                    _log.Flush();
                }
            }
        });

        app.MapGet("/health", (HttpContext context) =>
        {
            if (_host is not null)
            {
                return Results.Json(new JsonObject { ["status"] = "ok" });
            }
            return Results.Json(new JsonObject { ["status"] = _loadError is null ? "loading" : "error", ["message"] = _loadError }, statusCode: 503);
        });
        app.MapGet("/metrics", async (HttpContext context) =>
        {
            context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            await Metrics.WriteAsync(context.Response.Body, context.RequestAborted).ConfigureAwait(false);
        });
        app.MapGet("/v1/models", () =>
        {
            ModelHost host = RequireHost();
            return Results.Json(new JsonObject { ["object"] = "list", ["data"] = new JsonArray(ModelCard(host)) });
        });
        app.MapGet("/v1/models/{id}", (string id) =>
        {
            ModelHost host = RequireHost();
            return id == host.Name ? Results.Json(ModelCard(host)) : throw new ApiException(404, $"model: the model \"{id}\" does not exist; this server serves \"{host.Name}\"", "model");
        });
        var openAi = new OpenAIEndpoints(this);
        app.MapPost("/v1/chat/completions", openAi.ChatCompletions);
        app.MapPost("/v1/completions", openAi.Completions);
        var anthropic = new AnthropicEndpoints(this);
        app.MapPost("/v1/messages", anthropic.Messages);
        app.MapPost("/v1/messages/count_tokens", anthropic.CountTokens);
        app.MapPost("/tokenize", Tokenize);
        app.MapPost("/detokenize", Detokenize);
        app.MapFallback(Task (HttpContext context) => throw new ApiException(404, $"no endpoint {context.Request.Method} {context.Request.Path}"));
    }

    private static JsonObject ModelCard(ModelHost host) => new()
    {
        ["id"] = host.Name,
        ["object"] = "model",
        ["created"] = host.Created.ToUnixTimeSeconds(),
        ["owned_by"] = "mimosharp",
        ["max_model_len"] = host.Context,
    };

    private static bool Authorized(HttpRequest request, string key)
    {
        string auth = request.Headers.Authorization.ToString();
        return (auth.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) && SameKey(auth[7..].Trim(), key))
            || SameKey(request.Headers["x-api-key"].ToString(), key);
    }

    /// <summary>Compares in time that does not depend on where the strings differ (no timing oracle for the key).</summary>
    private static bool SameKey(string given, string key) =>
        System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(given), Encoding.UTF8.GetBytes(key));

    internal ModelHost RequireHost() => _host ?? throw new ApiException(503,
        _loadError is null ? "the model is still loading; retry when GET /health answers 200" : $"the model failed to load: {_loadError}");

    internal static async Task WriteError(HttpContext context, ApiFlavor flavor, int status, string message, string? param = null)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(ApiException.ErrorBody(flavor, status, message, param).ToJsonString(Json), context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>The request body as a JSON object, read under the size limit.</summary>
    internal async Task<JsonObject> ReadBody(HttpContext context)
    {
        long limit = _options.MaxRequestBodyBytes;
        if (context.Request.ContentLength > limit)
        {
            await Drain(context.Request.Body, limit * 8).ConfigureAwait(false);
            throw new ApiException(413, $"the request body of {context.Request.ContentLength} bytes is over the limit of {limit} bytes");
        }
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await context.Request.Body.ReadAsync(chunk, context.RequestAborted).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + read > limit)
            {
                await Drain(context.Request.Body, limit * 8).ConfigureAwait(false);
                throw new ApiException(413, $"the request body is over the limit of {limit} bytes");
            }
            buffer.Write(chunk, 0, read);
        }
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(buffer.ToArray(), documentOptions: new JsonDocumentOptions { MaxDepth = 128 });
        }
        catch (JsonException ex)
        {
            throw new ApiException(400, $"the request body is not valid JSON: {ex.Message.Split(" Path:")[0]} (line {ex.LineNumber + 1}, byte {ex.BytePositionInLine + 1})");
        }
        return node as JsonObject ?? throw new ApiException(400, $"the request body must be a JSON object, got {RequestFields.Describe(node)}");
    }

    /// <summary>Reads and drops the rest of a body (bounded), so the client gets the answer instead of a reset.</summary>
    private static async Task Drain(Stream body, long max)
    {
        var chunk = new byte[81920];
        long total = 0;
        int read;
        while (total < max && (read = await body.ReadAsync(chunk).ConfigureAwait(false)) > 0)
        {
            total += read;
        }
    }

    private async Task Tokenize(HttpContext context)
    {
        ModelHost host = RequireHost();
        JsonObject body = await ReadBody(context).ConfigureAwait(false);
        string text;
        if (RequestFields.Get(body, "messages") is not null)
        {
            JsonArray messages = RequestTranslation.OpenAIMessages(body);
            JsonArray? tools = RequestTranslation.OpenAITools(body);
            bool addGeneration = RequestFields.OptBool(body, "add_generation_prompt") ?? true;
            text = host.Renderer.Render(messages, tools, RequestTranslation.OpenAIThinking(body));
            if (!addGeneration)
            {
                throw ApiException.BadRequest("add_generation_prompt", "only true is supported");
            }
        }
        else
        {
            text = RequestFields.OptString(body, "text") ?? RequestFields.OptString(body, "prompt")
                ?? throw ApiException.BadRequest("text", "give text (or prompt), or messages");
        }
        IReadOnlyList<int> ids = host.Tokenizer.Encode(text);
        await context.Response.WriteAsJsonAsync(new JsonObject
        {
            ["tokens"] = new JsonArray(ids.Select(i => (JsonNode)i).ToArray()),
            ["count"] = ids.Count,
            ["max_model_len"] = host.Context,
        }).ConfigureAwait(false);
    }

    private async Task Detokenize(HttpContext context)
    {
        ModelHost host = RequireHost();
        JsonObject body = await ReadBody(context).ConfigureAwait(false);
        JsonArray tokens = RequestFields.OptArray(body, "tokens") ?? throw ApiException.BadRequest("tokens", "this field is required (an array of token ids)");
        var ids = new int[tokens.Count];
        for (int i = 0; i < ids.Length; i++)
        {
            if (tokens[i] is not JsonValue v || !v.TryGetValue(out int id) || id < 0 || id >= host.Tokenizer.VocabularySize)
            {
                throw ApiException.BadRequest($"tokens[{i}]", $"expected a token id in [0, {host.Tokenizer.VocabularySize}), got {tokens[i]?.ToJsonString() ?? "null"}");
            }
            ids[i] = id;
        }
        await context.Response.WriteAsJsonAsync(new JsonObject { ["text"] = host.Tokenizer.Decode(ids) }).ConfigureAwait(false);
    }

    /// <summary>Starts an SSE response (once: keep-alives may have started it already).</summary>
    internal static void BeginStream(HttpContext context)
    {
        if (context.Response.HasStarted)
        {
            return;
        }
        context.Response.StatusCode = 200;
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        context.Response.Headers["X-Accel-Buffering"] = "no";
    }

    internal static async Task WriteSse(HttpContext context, string? eventName, string data)
    {
        var text = new StringBuilder();
        if (eventName is not null)
        {
            text.Append("event: ").Append(eventName).Append('\n');
        }
        text.Append("data: ").Append(data).Append("\n\n");
        await context.Response.WriteAsync(text.ToString(), CancellationToken.None).ConfigureAwait(false);
        await context.Response.Body.FlushAsync(CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>
    /// The engine's first step, with the errors it raises before any output turned into API errors
    /// (400 for a request the context or the whole KV budget cannot hold, 429 / 529 when admission refuses it for now).
    /// </summary>
    /// <remarks>
    /// For a stream (<paramref name="stream"/> given): admission runs synchronously inside the first MoveNext, so a
    /// step still pending after <paramref name="keepAlive"/> means the request was let in and is queued or in
    /// prefill. The SSE stream opens then, and an SSE comment (": keepalive", which SSE clients skip) goes out
    /// at each interval until the first token, so clients and proxies see a live connection during a long
    /// prompt (Claude Code sends ~48 KB) instead of minutes of silence. An error after that is an in-stream event.
    /// </remarks>
    internal static async Task<bool> FirstStep(IAsyncEnumerator<ChatStep> steps, ApiFlavor flavor, HttpContext? stream = null, TimeSpan keepAlive = default)
    {
        try
        {
            ValueTask<bool> first = steps.MoveNextAsync();
            if (stream is null || keepAlive <= TimeSpan.Zero || first.IsCompleted)
            {
                return await first.ConfigureAwait(false);
            }
            Task<bool> pending = first.AsTask();
            while (await Task.WhenAny(pending, Task.Delay(keepAlive)).ConfigureAwait(false) != pending
                && !stream.RequestAborted.IsCancellationRequested) // a client gone: the engine sees the same token and ends the step
            {
                BeginStream(stream);
                await stream.Response.WriteAsync(": keepalive\n\n", CancellationToken.None).ConfigureAwait(false);
                await stream.Response.Body.FlushAsync(CancellationToken.None).ConfigureAwait(false);
            }
            return await pending.ConfigureAwait(false);
        }
        catch (EngineOverloadedException ex)
        {
            throw new ApiException(flavor == ApiFlavor.Anthropic ? 529 : 429, ex.Message);
        }
        catch (RequestTooLargeException ex)
        {
            throw ApiException.BadRequest("max_tokens", ex.Message);
        }
        catch (ArgumentException ex)
        {
            throw new ApiException(400, ex.Message, flavor == ApiFlavor.OpenAI ? "messages" : null);
        }
    }

    internal static string Id(string prefix) => prefix + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(12));
}
