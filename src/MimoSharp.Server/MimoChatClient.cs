using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using MimoSharp.Runtime.Constraints;
using MimoSharp.Runtime.Generation;
using MimoSharp.Runtime.Sampling;

namespace MimoSharp.Server;

/// <summary>What <see cref="MimoChatClient.Load"/> needs: the model directory and the engine's limits.</summary>
public sealed record MimoChatClientOptions
{
    public required string ModelDirectory { get; init; }
    /// <summary>Sequences the batching scheduler decodes at once (concurrent calls beyond it queue).</summary>
    public int Parallel { get; init; } = 1;
    /// <summary>Context length in tokens (default: the model's max_position_embeddings).</summary>
    public int? Context { get; init; }
    public int DraftTokens { get; init; }
    /// <summary>The model id in <see cref="ChatClientMetadata"/> and responses (default: the directory's name).</summary>
    public string? ModelName { get; init; }
    public int? MaxOutputTokens { get; init; }
    public int? Threads { get; init; }
    public long KvBudgetBytes { get; init; } = 4L << 30;
}

/// <summary>
/// Microsoft.Extensions.AI's <see cref="IChatClient"/> over the in-process engine (the same
/// <see cref="ModelHost"/> — template, tool-call parser, batching scheduler — as <c>mimo serve</c>).
/// <list type="bullet">
/// <item>Messages: system, user, assistant (text, <see cref="TextReasoningContent"/> kept in the prompt as MiMo's
/// multi-turn tool use needs, <see cref="FunctionCallContent"/>) and tool results (<see cref="FunctionResultContent"/>);
/// other content (images, audio) is refused with <see cref="NotSupportedException"/>.</item>
/// <item>Options: Temperature, TopP, TopK, Seed, penalties, MaxOutputTokens, StopSequences, Instructions,
/// Tools (<see cref="AIFunctionDeclaration"/>s; hosted tools are left out), ToolMode, AllowMultipleToolCalls,
/// ResponseFormat (JSON with or without a schema, by constrained decoding), Reasoning.Effort and
/// AdditionalProperties <c>enable_thinking</c> (bool; off by default, as MiMo's template), <c>min_p</c>,
/// <c>repetition_penalty</c>, <c>logit_bias</c> (token id to bias; -100 bans).</item>
/// <item>Out: <see cref="TextContent"/>, <see cref="TextReasoningContent"/>, <see cref="FunctionCallContent"/> with
/// parsed arguments (values as <see cref="JsonElement"/>), then <see cref="UsageContent"/> and the finish reason.</item>
/// </list>
/// A request that cannot fit (prompt plus MaxOutputTokens beyond the context, bad sampling values, an
/// unsupported schema) throws <see cref="ArgumentException"/>, one beyond the whole KV budget
/// <see cref="RequestTooLargeException"/>; a full engine throws <see cref="EngineOverloadedException"/>; cancellation throws <see cref="OperationCanceledException"/>
/// and frees the sequence.
/// </summary>
public sealed class MimoChatClient : IChatClient
{
    public const string ProviderName = "mimosharp";

    private readonly ModelHost _host;
    private readonly bool _ownsHost;
    private readonly ChatClientMetadata _metadata;

    /// <param name="host">A loaded host; the caller keeps ownership of it.</param>
    public MimoChatClient(ModelHost host)
        : this(host, ownsHost: false)
    {
    }

    private MimoChatClient(ModelHost host, bool ownsHost)
    {
        _host = host;
        _ownsHost = ownsHost;
        _metadata = new ChatClientMetadata(ProviderName, providerUri: null, defaultModelId: host.Name);
    }

    /// <summary>Loads the model; the client owns it and disposes it.</summary>
    public static MimoChatClient Load(MimoChatClientOptions options)
    {
        ModelHost host = ModelHost.Load(new ServerOptions
        {
            ModelDirectory = options.ModelDirectory,
            Parallel = options.Parallel,
            Context = options.Context,
            DraftTokens = options.DraftTokens,
            ServedModelName = options.ModelName,
            MaxOutputTokens = options.MaxOutputTokens,
            Threads = options.Threads,
            KvBudgetBytes = options.KvBudgetBytes,
        });
        return new MimoChatClient(host, ownsHost: true);
    }

    public ModelHost Host => _host;

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        await GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken).ConfigureAwait(false);

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        PreparedChat chat = Prepare(messages, options);
        string responseId = MimoServer.Id("chatcmpl-");
        DateTimeOffset created = DateTimeOffset.UtcNow;
        ChatResponseUpdate Update(IList<AIContent> contents) => new(ChatRole.Assistant, contents)
        {
            ResponseId = responseId,
            MessageId = responseId,
            ModelId = _host.Name,
            CreatedAt = created,
        };

        await foreach (ChatStep step in ChatRunner.RunAsync(_host, chat.Spec, metrics: null, cancellationToken).ConfigureAwait(false))
        {
            List<AIContent> contents = Contents(step.Parts);
            if (step.End is not ChatEnd end)
            {
                if (contents.Count > 0)
                {
                    yield return Update(contents);
                }
                continue;
            }
            // The engine ends a cancelled sequence with a final event (its KV already freed); callers of IChatClient expect the exception.
            cancellationToken.ThrowIfCancellationRequested();
            contents.Add(new UsageContent(new UsageDetails
            {
                InputTokenCount = end.PromptTokens,
                OutputTokenCount = end.CompletionTokens,
                TotalTokenCount = end.PromptTokens + end.CompletionTokens,
                CachedInputTokenCount = end.CachedTokens,
            }));
            ChatResponseUpdate last = Update(contents);
            last.FinishReason = end.Reason switch
            {
                StopReason.Length => ChatFinishReason.Length,
                StopReason.ToolCalls => ChatFinishReason.ToolCalls,
                _ => ChatFinishReason.Stop,
            };
            yield return last;
        }
    }

    /// <summary>The prompt text the model would see for these messages and options (template, tools, thinking).</summary>
    public string RenderPrompt(IEnumerable<ChatMessage> messages, ChatOptions? options = null) => Prepare(messages, options).Prompt;

    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null)
        {
            return null;
        }
        if (serviceType == typeof(ChatClientMetadata))
        {
            return _metadata;
        }
        if (serviceType == typeof(ModelHost))
        {
            return _host;
        }
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    public void Dispose()
    {
        if (_ownsHost)
        {
            _host.Dispose();
        }
    }

    private sealed record PreparedChat(string Prompt, ChatRunSpec Spec);

    private PreparedChat Prepare(IEnumerable<ChatMessage> messages, ChatOptions? options)
    {
        ArgumentNullException.ThrowIfNull(messages);
        JsonArray rendered = TemplateMessages(messages, options?.Instructions);
        JsonArray? tools = Tools(options);
        (bool parseTools, string? forcedTool) = ToolChoice(options, tools);
        bool thinking = Thinking(options);
        string prompt = _host.Renderer.Render(rendered, parseTools ? tools : null, thinking);
        IReadOnlyList<int> ids = _host.Tokenizer.Encode(prompt);
        // The response format is read only when no tool call is forced (the forced call wins), as the endpoints do.
        ITokenConstraint? constraint = RequestTranslation.Constraint(_host, forcedTool is null ? ResponseSchema(options?.ResponseFormat) : null,
            forcedTool, tools, thinking, PromptRenderer.OpensReasoning(prompt));
        var spec = new ChatRunSpec
        {
            PromptIds = ids,
            Sampling = Sampling(options),
            MaxTokens = MaxTokens(options?.MaxOutputTokens, ids.Count),
            Stops = options?.StopSequences?.ToList() ?? [],
            Tools = tools,
            ParseTools = parseTools,
            StartInReasoning = PromptRenderer.OpensReasoning(prompt),
            ParallelToolCalls = options?.AllowMultipleToolCalls ?? true,
            Constraint = constraint,
        };
        return new PreparedChat(prompt, spec);
    }

    /// <summary>ChatMessages into the renderer's OpenAI-shaped messages; system turns (and Instructions) fold into one system prompt.</summary>
    private static JsonArray TemplateMessages(IEnumerable<ChatMessage> messages, string? instructions)
    {
        var system = new List<string>();
        if (!string.IsNullOrEmpty(instructions))
        {
            system.Add(instructions);
        }
        var turns = new List<JsonObject>();
        foreach (ChatMessage message in messages)
        {
            var text = new StringBuilder();
            var reasoning = new StringBuilder();
            var calls = new JsonArray();
            var results = new List<JsonObject>();
            foreach (AIContent content in message.Contents)
            {
                switch (content)
                {
                    case TextContent t:
                        text.Append(t.Text);
                        break;
                    case TextReasoningContent r:
                        reasoning.Append(r.Text);
                        break;
                    case FunctionCallContent call:
                        calls.Add(new JsonObject
                        {
                            ["id"] = call.CallId,
                            ["type"] = "function",
                            ["function"] = new JsonObject
                            {
                                ["name"] = call.Name,
                                ["arguments"] = JsonSerializer.SerializeToNode(call.Arguments ?? new Dictionary<string, object?>(), AIJsonUtilities.DefaultOptions) as JsonObject ?? [],
                            },
                        });
                        break;
                    case FunctionResultContent result:
                        results.Add(new JsonObject { ["role"] = "tool", ["content"] = ResultText(result), ["tool_call_id"] = result.CallId });
                        break;
                    case UsageContent:
                        break; // bookkeeping a caller may carry along in history
                    default:
                        throw new NotSupportedException($"{content.GetType().Name} in a {message.Role} message is not supported: this model reads text only");
                }
            }
            string role = message.Role.Value;
            turns.AddRange(results);
            if (role == ChatRole.System.Value)
            {
                system.Add(text.ToString());
            }
            else if (role == ChatRole.User.Value)
            {
                if (text.Length > 0 || results.Count == 0)
                {
                    turns.Add(new JsonObject { ["role"] = "user", ["content"] = text.ToString() });
                }
            }
            else if (role == ChatRole.Assistant.Value)
            {
                var turn = new JsonObject { ["role"] = "assistant", ["content"] = text.ToString() };
                if (reasoning.Length > 0)
                {
                    turn["reasoning_content"] = reasoning.ToString();
                }
                if (calls.Count > 0)
                {
                    turn["tool_calls"] = calls;
                }
                turns.Add(turn);
            }
            else if (role == ChatRole.Tool.Value)
            {
                if (results.Count == 0 && text.Length > 0)
                {
                    turns.Add(new JsonObject { ["role"] = "tool", ["content"] = text.ToString(), ["tool_call_id"] = "" });
                }
            }
            else
            {
                throw new ArgumentException($"unknown chat role \"{role}\"; expected system, user, assistant or tool", nameof(messages));
            }
        }
        if (turns.Count == 0)
        {
            throw new ArgumentException("the conversation holds no user or assistant message", nameof(messages));
        }
        var all = new JsonArray();
        if (system.Count > 0)
        {
            all.Add(new JsonObject { ["role"] = "system", ["content"] = string.Join("\n\n", system) });
        }
        foreach (JsonObject turn in turns)
        {
            all.Add(turn);
        }
        return all;
    }

    private static string ResultText(FunctionResultContent result) => result.Result switch
    {
        null => result.Exception is { } ex ? $"error: {ex.Message}" : "",
        string s => s,
        JsonElement { ValueKind: JsonValueKind.String } e => e.GetString()!,
        object o => JsonSerializer.Serialize(o, AIJsonUtilities.DefaultOptions.GetTypeInfo(o.GetType())),
    };

    /// <summary>The options' function declarations as OpenAI-shaped tools, checked as the server checks them.</summary>
    private static JsonArray? Tools(ChatOptions? options)
    {
        if (options?.Tools is not { Count: > 0 } list)
        {
            return null;
        }
        var tools = new JsonArray();
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i] is not AIFunctionDeclaration function)
            {
                continue; // hosted tools (web search, code interpreter) run at a provider, not here
            }
            try
            {
                tools.Add(RequestTranslation.CheckedFunction(function.Name, string.IsNullOrEmpty(function.Description) ? null : function.Description,
                    JsonNode.Parse(function.JsonSchema.GetRawText()), $"Tools[{i}].JsonSchema"));
            }
            catch (ApiException ex)
            {
                throw new ArgumentException(ex.Message, nameof(options));
            }
        }
        return tools.Count > 0 ? tools : null;
    }

    private static string ToolName(JsonNode? tool) => tool!["function"]!["name"]!.GetValue<string>();

    /// <summary>Whether tool calls are parsed, and the tool a call is forced to ("" = any tool, null = not forced).</summary>
    private static (bool Parse, string? Forced) ToolChoice(ChatOptions? options, JsonArray? tools)
    {
        switch (options?.ToolMode)
        {
            case null or AutoChatToolMode:
                return (tools is not null, null);
            case NoneChatToolMode:
                return (false, null);
            case RequiredChatToolMode required:
                if (tools is null)
                {
                    throw new ArgumentException("ToolMode requires a tool call, but Tools declares no functions", nameof(options));
                }
                if (required.RequiredFunctionName is string name)
                {
                    if (!tools.Any(t => ToolName(t) == name))
                    {
                        throw new ArgumentException($"ToolMode requires \"{name}\", which is not among the Tools", nameof(options));
                    }
                    return (true, name);
                }
                return (true, tools.Count == 1 ? ToolName(tools[0]) : "");
            default:
                throw new NotSupportedException($"ToolMode {options.ToolMode.GetType().Name} is not supported");
        }
    }

    /// <summary>
    /// A forced call: the opening of MiMo's XML call (with the name when one tool is required). A function
    /// that takes no parameters has exactly one valid call, so all of it is forced, closing tag included.
    /// </summary>

    private static JsonSchema? ResponseSchema(ChatResponseFormat? format)
    {
        if (format is not ChatResponseFormatJson json)
        {
            return null;
        }
        return json.Schema is JsonElement schema ? JsonSchema.Compile(JsonNode.Parse(schema.GetRawText()), "ResponseFormat.Schema") : JsonSchema.AnyObject;
    }

    /// <summary>AdditionalProperties["enable_thinking"] wins; else Reasoning.Effort (None = off); off by default.</summary>
    private static bool Thinking(ChatOptions? options)
    {
        if (options?.AdditionalProperties?.TryGetValue("enable_thinking", out object? value) == true)
        {
            return value switch
            {
                bool b => b,
                JsonElement { ValueKind: JsonValueKind.True } => true,
                JsonElement { ValueKind: JsonValueKind.False } => false,
                string s when bool.TryParse(s, out bool parsed) => parsed,
                _ => throw new ArgumentException($"AdditionalProperties[\"enable_thinking\"] must be a bool, got {value?.GetType().Name ?? "null"}", nameof(options)),
            };
        }
        return options?.Reasoning?.Effort is ReasoningEffort effort && effort != ReasoningEffort.None;
    }

    private SamplingOptions Sampling(ChatOptions? options)
    {
        SamplingOptions o = _host.Defaults;
        if (options is null)
        {
            return o;
        }
        o = o with
        {
            Temperature = options.Temperature ?? o.Temperature,
            TopP = options.TopP ?? o.TopP,
            TopK = options.TopK is int k ? Math.Max(k, 0) : o.TopK,
            PresencePenalty = options.PresencePenalty ?? o.PresencePenalty,
            FrequencyPenalty = options.FrequencyPenalty ?? o.FrequencyPenalty,
            Seed = options.Seed is long seed ? unchecked((ulong)seed) : o.Seed,
            MinP = Number(options, "min_p") ?? o.MinP,
            RepetitionPenalty = Number(options, "repetition_penalty") ?? o.RepetitionPenalty,
        };
        if (options.AdditionalProperties?.TryGetValue("logit_bias", out object? bias) == true && bias is not null)
        {
            var map = new Dictionary<int, float>();
            IEnumerable<KeyValuePair<int, float>> entries = bias switch
            {
                IEnumerable<KeyValuePair<int, float>> typed => typed,
                IEnumerable<KeyValuePair<int, int>> ints => ints.Select(p => KeyValuePair.Create(p.Key, (float)p.Value)),
                IEnumerable<KeyValuePair<int, double>> doubles => doubles.Select(p => KeyValuePair.Create(p.Key, (float)p.Value)),
                _ => throw new ArgumentException($"AdditionalProperties[\"logit_bias\"] must map token ids (int) to biases, got {bias.GetType().Name}", nameof(options)),
            };
            foreach ((int token, float value) in entries)
            {
                map[token] = value <= -100 ? float.NegativeInfinity : value;
            }
            o = o with { LogitBias = map };
        }
        return o.Validate(_host.Model.VocabSize);
    }

    private static float? Number(ChatOptions options, string key) =>
        options.AdditionalProperties?.TryGetValue(key, out object? value) != true || value is null ? null : value switch
        {
            float f => f,
            double d => (float)d,
            int i => i,
            JsonElement { ValueKind: JsonValueKind.Number } e => (float)e.GetDouble(),
            _ => throw new ArgumentException($"AdditionalProperties[\"{key}\"] must be a number, got {value.GetType().Name}", nameof(options)),
        };

    private int MaxTokens(int? requested, int promptTokens)
    {
        if (requested is int n)
        {
            if (n <= 0)
            {
                throw new ArgumentOutOfRangeException(nameof(requested), $"MaxOutputTokens must be at least 1, got {n}");
            }
            int capped = _host.MaxOutputTokens is int cap ? Math.Min(n, cap) : n;
            if ((long)promptTokens + capped > _host.Context)
            {
                throw new ArgumentException($"the prompt of {promptTokens} tokens plus MaxOutputTokens {capped} exceeds the context of {_host.Context} tokens");
            }
            return capped;
        }
        return _host.DefaultMaxTokens(promptTokens);
    }

    private static List<AIContent> Contents(IReadOnlyList<OutputPart> parts)
    {
        var contents = new List<AIContent>(parts.Count);
        foreach (OutputPart part in parts)
        {
            switch (part)
            {
                case TextPart t:
                    contents.Add(new TextContent(t.Text));
                    break;
                case ReasoningPart r:
                    contents.Add(new TextReasoningContent(r.Text));
                    break;
                case ToolCallPart c:
                    var arguments = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(c.Call.ArgumentsJson) ?? [];
                    contents.Add(new FunctionCallContent(c.Call.Id, c.Call.Name, arguments.ToDictionary(p => p.Key, p => (object?)p.Value)));
                    break;
            }
        }
        return contents;
    }
}
