namespace MimoSharp.Server;

/// <summary>What <c>mimo serve</c> is told on its command line.</summary>
public sealed record ServerOptions
{
    public required string ModelDirectory { get; init; }
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>0 picks a free port (tests); <see cref="MimoServer.Port"/> says which.</summary>
    public int Port { get; init; } = 8080;
    /// <summary>When set, every endpoint but /health wants <c>Authorization: Bearer KEY</c> or <c>x-api-key: KEY</c>.</summary>
    public string? ApiKey { get; init; }
    /// <summary>Sequences decoded at once.</summary>
    public int Parallel { get; init; } = 1;
    /// <summary>Context length in tokens (default: the model's max_position_embeddings).</summary>
    public int? Context { get; init; }
    public int DraftTokens { get; init; }
    /// <summary>The model id clients name (default: the model directory's name).</summary>
    public string? ServedModelName { get; init; }
    /// <summary>An upper bound on every request's max_tokens: a larger one is clamped (finish_reason length when it ends the answer).</summary>
    public int? MaxOutputTokens { get; init; }
    /// <summary>Requests waiting for a sequence slot before new ones get 429.</summary>
    public int MaxQueued { get; init; } = 64;
    public long MaxRequestBodyBytes { get; init; } = 32L * 1024 * 1024;
    public int? Threads { get; init; }
    /// <summary>KV cache bytes the running sequences may reserve (admission refuses beyond it).</summary>
    public long KvBudgetBytes { get; init; } = 4L << 30;
    /// <summary>
    /// A stream whose first token takes longer than this (queued, or a long prompt in prefill) opens with SSE
    /// keep-alive comments at this interval until the first token; zero or less: none.
    /// </summary>
    public TimeSpan KeepAliveInterval { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>Where the one line per request goes (null: standard output).</summary>
    public TextWriter? Log { get; init; }
}
