using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using MimoSharp.Runtime.Constraints;
using MimoSharp.Runtime.Generation;
using MimoSharp.Tokenization;
using static MimoSharp.Server.RequestFields;

namespace MimoSharp.Server;

/// <summary>POST /v1/chat/completions and /v1/completions, streamed (SSE) or not.</summary>
internal sealed class OpenAIEndpoints(MimoServer server)
{
    public async Task ChatCompletions(HttpContext context)
    {
        ModelHost host = server.RequireHost();
        JsonObject body = await server.ReadBody(context).ConfigureAwait(false);
        RequestTranslation.CheckModel(body, host);
        JsonArray messages = RequestTranslation.OpenAIMessages(body);
        JsonArray? tools = RequestTranslation.OpenAITools(body);
        (bool parseTools, string? forcedTool) = ToolChoice(body, tools);
        bool thinking = RequestTranslation.OpenAIThinking(body);
        string prompt = host.Renderer.Render(messages, parseTools ? tools : null, thinking);
        IReadOnlyList<int> ids = host.Tokenizer.Encode(prompt);
        int? requested = RequestTranslation.MaxTokens(body, host, "max_completion_tokens") ?? RequestTranslation.MaxTokens(body, host, "max_tokens");
        string maxField = Get(body, "max_completion_tokens") is not null ? "max_completion_tokens" : "max_tokens";
        int maxTokens = RequestTranslation.FitToContext(requested, ids.Count, host, maxField);
        var sampling = RequestTranslation.Sampling(body, host, ApiFlavor.OpenAI);
        int n = Choices(body);
        int? topLogprobs = Logprobs(body);
        List<string> stops = StringOrList(body, "stop");
        if (stops.Count > 16)
        {
            throw ApiException.BadRequest("stop", $"at most 16 stop strings, got {stops.Count}");
        }
        bool stream = OptBool(body, "stream") ?? false;
        bool includeUsage = OptObject(body, "stream_options") is JsonObject so && (OptBool(so, "include_usage", "stream_options") ?? false);
        bool parallel = OptBool(body, "parallel_tool_calls") ?? true;
        JsonSchema? schema = ResponseFormat(body);
        bool opensReasoning = PromptRenderer.OpensReasoning(prompt);

        ChatRunSpec Spec(int choice) => new()
        {
            PromptIds = ids,
            Sampling = choice == 0 || sampling.Seed is null ? sampling : sampling with { Seed = sampling.Seed + (ulong)choice },
            MaxTokens = maxTokens,
            Stops = stops,
            IgnoreEos = RequestFields.OptBool(body, "ignore_eos") ?? false,
            Tools = tools,
            ParseTools = parseTools,
            StartInReasoning = opensReasoning,
            ParallelToolCalls = parallel,
            TopLogprobs = topLogprobs,
            Constraint = RequestTranslation.Constraint(host, schema, forcedTool, tools, thinking, opensReasoning),
        };

        string id = MimoServer.Id("chatcmpl-");
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        int promptTokens = ids.Count, completionTokens = 0, cached = 0;
        if (!stream)
        {
            var choices = new JsonArray();
            for (int c = 0; c < n; c++)
            {
                var content = new StringBuilder();
                var reasoning = new StringBuilder();
                var calls = new JsonArray();
                var logprobs = new JsonArray();
                ChatEnd? end = null;
                await using IAsyncEnumerator<ChatStep> steps = ChatRunner.RunAsync(host, Spec(c), server.Metrics, context.RequestAborted).GetAsyncEnumerator();
                bool more = await MimoServer.FirstStep(steps, ApiFlavor.OpenAI).ConfigureAwait(false);
                while (more)
                {
                    ChatStep step = steps.Current;
                    foreach (OutputPart part in step.Parts)
                    {
                        switch (part)
                        {
                            case TextPart t: content.Append(t.Text); break;
                            case ReasoningPart r: reasoning.Append(r.Text); break;
                            case ToolCallPart call:
                                calls.Add(new JsonObject
                                {
                                    ["id"] = call.Call.Id,
                                    ["type"] = "function",
                                    ["function"] = new JsonObject { ["name"] = call.Call.Name, ["arguments"] = call.Call.ArgumentsJson },
                                });
                                break;
                        }
                    }
                    if (step.Logprob is not null)
                    {
                        logprobs.Add(LogprobEntry(host.Tokenizer, step.Logprob));
                    }
                    end = step.End ?? end;
                    more = await steps.MoveNextAsync().ConfigureAwait(false);
                }
                completionTokens += end!.CompletionTokens;
                cached = end.CachedTokens;
                var message = new JsonObject
                {
                    ["role"] = "assistant",
                    ["content"] = content.Length > 0 || calls.Count == 0 ? content.ToString() : null,
                };
                if (reasoning.Length > 0)
                {
                    message["reasoning_content"] = reasoning.ToString();
                }
                if (calls.Count > 0)
                {
                    message["tool_calls"] = calls;
                }
                choices.Add(new JsonObject
                {
                    ["index"] = c,
                    ["message"] = message,
                    ["logprobs"] = topLogprobs is null ? null : new JsonObject { ["content"] = logprobs },
                    ["finish_reason"] = FinishReason(end.Reason),
                });
            }
            context.Items["usage"] = $"prompt={promptTokens} cached={cached} completion={completionTokens}";
            await context.Response.WriteAsJsonAsync(new JsonObject
            {
                ["id"] = id,
                ["object"] = "chat.completion",
                ["created"] = created,
                ["model"] = host.Name,
                ["choices"] = choices,
                ["usage"] = Usage(promptTokens, completionTokens, cached),
            }, context.RequestAborted).ConfigureAwait(false);
            return;
        }

        JsonObject Chunk(int index, JsonObject delta, string? finish = null, JsonNode? logprobs = null) => new()
        {
            ["id"] = id,
            ["object"] = "chat.completion.chunk",
            ["created"] = created,
            ["model"] = host.Name,
            ["choices"] = new JsonArray(new JsonObject { ["index"] = index, ["delta"] = delta, ["logprobs"] = logprobs, ["finish_reason"] = finish }),
        };
        bool started = false;
        try
        {
            for (int c = 0; c < n; c++)
            {
                await using IAsyncEnumerator<ChatStep> steps = ChatRunner.RunAsync(host, Spec(c), server.Metrics, context.RequestAborted).GetAsyncEnumerator();
                bool more = await MimoServer.FirstStep(steps, ApiFlavor.OpenAI, context, server.KeepAlive).ConfigureAwait(false);
                if (!started)
                {
                    MimoServer.BeginStream(context);
                    started = true;
                }
                await Send(context, Chunk(c, new JsonObject { ["role"] = "assistant", ["content"] = "" })).ConfigureAwait(false);
                var deltas = new OpenAIDeltaBuilder();
                while (more)
                {
                    ChatStep step = steps.Current;
                    List<JsonObject> list = deltas.Deltas(step.Parts);
                    JsonObject? logprobs = step.Logprob is null ? null : new JsonObject { ["content"] = new JsonArray(LogprobEntry(host.Tokenizer, step.Logprob)) };
                    if (list.Count == 0 && logprobs is not null)
                    {
                        list.Add(new JsonObject());
                    }
                    for (int i = 0; i < list.Count; i++)
                    {
                        await Send(context, Chunk(c, list[i], logprobs: i == 0 ? logprobs : null)).ConfigureAwait(false);
                    }
                    if (step.End is ChatEnd end)
                    {
                        completionTokens += end.CompletionTokens;
                        cached = end.CachedTokens;
                        await Send(context, Chunk(c, new JsonObject(), FinishReason(end.Reason))).ConfigureAwait(false);
                    }
                    more = await steps.MoveNextAsync().ConfigureAwait(false);
                }
            }
            if (includeUsage)
            {
                await Send(context, UsageChunk(id, "chat.completion.chunk", created, host.Name, Usage(promptTokens, completionTokens, cached))).ConfigureAwait(false);
            }
            context.Items["usage"] = $"prompt={promptTokens} cached={cached} completion={completionTokens} stream";
            await MimoServer.WriteSse(context, null, "[DONE]").ConfigureAwait(false);
        }
        catch (Exception ex) when (context.Response.HasStarted && ex is not (OperationCanceledException or ApiException))
        {
            await MimoServer.WriteSse(context, null, ApiException.ErrorBody(ApiFlavor.OpenAI, 500, ex.Message).ToJsonString(MimoServer.Json)).ConfigureAwait(false);
        }
    }

    public async Task Completions(HttpContext context)
    {
        ModelHost host = server.RequireHost();
        JsonObject body = await server.ReadBody(context).ConfigureAwait(false);
        RequestTranslation.CheckModel(body, host);
        IReadOnlyList<int> ids = PromptIds(body, host);
        int maxTokens = RequestTranslation.FitToContext(RequestTranslation.MaxTokens(body, host, "max_tokens") ?? Math.Min(16, host.Context - ids.Count), ids.Count, host, "max_tokens");
        var sampling = RequestTranslation.Sampling(body, host, ApiFlavor.OpenAI);
        int n = Choices(body);
        long? logprobsCount = OptInteger(body, "logprobs");
        if (logprobsCount is < 0 or > 20)
        {
            throw ApiException.BadRequest("logprobs", $"must be in [0, 20], got {logprobsCount}");
        }
        if (OptBool(body, "echo") == true)
        {
            throw ApiException.BadRequest("echo", "echo is not supported");
        }
        List<string> stops = StringOrList(body, "stop");
        bool stream = OptBool(body, "stream") ?? false;
        bool includeUsage = OptObject(body, "stream_options") is JsonObject so && (OptBool(so, "include_usage", "stream_options") ?? false);
        string id = MimoServer.Id("cmpl-");
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        int completionTokens = 0, cached = 0;
        ChatRunSpec Spec(int choice) => new()
        {
            PromptIds = ids,
            Sampling = choice == 0 || sampling.Seed is null ? sampling : sampling with { Seed = sampling.Seed + (ulong)choice },
            MaxTokens = maxTokens,
            Stops = stops,
            IgnoreEos = RequestFields.OptBool(body, "ignore_eos") ?? false,
            RawText = true,
            TopLogprobs = (int?)logprobsCount,
        };
        JsonObject Choice(int index, string text, string? finish, JsonObject? logprobs) => new()
        {
            ["index"] = index,
            ["text"] = text,
            ["logprobs"] = logprobs,
            ["finish_reason"] = finish,
        };
        bool started = false;
        var choices = new JsonArray();
        try
        {
            for (int c = 0; c < n; c++)
            {
                await using IAsyncEnumerator<ChatStep> steps = ChatRunner.RunAsync(host, Spec(c), server.Metrics, context.RequestAborted).GetAsyncEnumerator();
                bool more = await MimoServer.FirstStep(steps, ApiFlavor.OpenAI, stream ? context : null, server.KeepAlive).ConfigureAwait(false);
                if (stream && !started)
                {
                    MimoServer.BeginStream(context);
                    started = true;
                }
                var text = new StringBuilder();
                var lp = logprobsCount is null ? null : new CompletionLogprobs(host.Tokenizer);
                while (more)
                {
                    ChatStep step = steps.Current;
                    string piece = string.Concat(step.Parts.OfType<TextPart>().Select(p => p.Text));
                    JsonObject? stepLogprobs = null;
                    if (step.Logprob is not null && lp is not null)
                    {
                        if (stream)
                        {
                            var one = new CompletionLogprobs(host.Tokenizer, text.Length);
                            one.Add(step.Logprob);
                            stepLogprobs = one.ToJson();
                        }
                        lp.Add(step.Logprob, text.Length);
                    }
                    text.Append(piece);
                    string? finish = step.End is ChatEnd end ? FinishReason(end.Reason) : null;
                    if (step.End is ChatEnd e)
                    {
                        completionTokens += e.CompletionTokens;
                        cached = e.CachedTokens;
                    }
                    if (stream && (piece.Length > 0 || finish is not null || stepLogprobs is not null))
                    {
                        await Send(context, new JsonObject
                        {
                            ["id"] = id,
                            ["object"] = "text_completion",
                            ["created"] = created,
                            ["model"] = host.Name,
                            ["choices"] = new JsonArray(Choice(c, piece, finish, stepLogprobs)),
                        }).ConfigureAwait(false);
                    }
                    if (!stream && finish is not null)
                    {
                        choices.Add(Choice(c, text.ToString(), finish, lp?.ToJson()));
                    }
                    more = await steps.MoveNextAsync().ConfigureAwait(false);
                }
            }
            context.Items["usage"] = $"prompt={ids.Count} cached={cached} completion={completionTokens}{(stream ? " stream" : "")}";
            if (!stream)
            {
                await context.Response.WriteAsJsonAsync(new JsonObject
                {
                    ["id"] = id,
                    ["object"] = "text_completion",
                    ["created"] = created,
                    ["model"] = host.Name,
                    ["choices"] = choices,
                    ["usage"] = Usage(ids.Count, completionTokens, cached),
                }, context.RequestAborted).ConfigureAwait(false);
                return;
            }
            if (includeUsage)
            {
                await Send(context, UsageChunk(id, "text_completion", created, host.Name, Usage(ids.Count, completionTokens, cached))).ConfigureAwait(false);
            }
            await MimoServer.WriteSse(context, null, "[DONE]").ConfigureAwait(false);
        }
        catch (Exception ex) when (context.Response.HasStarted && ex is not (OperationCanceledException or ApiException))
        {
            await MimoServer.WriteSse(context, null, ApiException.ErrorBody(ApiFlavor.OpenAI, 500, ex.Message).ToJsonString(MimoServer.Json)).ConfigureAwait(false);
        }
    }

    private static IReadOnlyList<int> PromptIds(JsonObject body, ModelHost host)
    {
        JsonNode? prompt = Get(body, "prompt") ?? throw ApiException.BadRequest("prompt", "this field is required (a string or an array of token ids)");
        if (prompt is JsonValue v && v.GetValueKind() == System.Text.Json.JsonValueKind.String)
        {
            string text = v.GetValue<string>();
            return text.Length > 0 ? host.Tokenizer.Encode(text) : throw ApiException.BadRequest("prompt", "is empty");
        }
        if (prompt is JsonArray list && list.Count > 0)
        {
            if (list.Count == 1 && list[0] is JsonValue single && single.GetValueKind() == System.Text.Json.JsonValueKind.String)
            {
                return host.Tokenizer.Encode(single.GetValue<string>());
            }
            var ids = new int[list.Count];
            for (int i = 0; i < ids.Length; i++)
            {
                if (list[i] is not JsonValue t || !t.TryGetValue(out int id) || id < 0 || id >= host.Model.VocabSize)
                {
                    throw ApiException.BadRequest($"prompt[{i}]", $"expected a token id in [0, {host.Model.VocabSize}) (one prompt per request: a list of several strings is not supported)");
                }
                ids[i] = id;
            }
            return ids;
        }
        throw ApiException.BadRequest("prompt", $"expected a non-empty string or array of token ids, got {Describe(prompt)}");
    }

    private static int Choices(JsonObject body)
    {
        long n = OptInteger(body, "n") ?? 1;
        if (n is < 1 or > RequestTranslation.MaxChoices)
        {
            throw ApiException.BadRequest("n", $"must be in [1, {RequestTranslation.MaxChoices}], got {n}");
        }
        return (int)n;
    }

    private static int? Logprobs(JsonObject body)
    {
        bool logprobs = OptBool(body, "logprobs") ?? false;
        long? top = OptInteger(body, "top_logprobs");
        if (top is < 0 or > 20)
        {
            throw ApiException.BadRequest("top_logprobs", $"must be in [0, 20], got {top}");
        }
        if (top is not null && !logprobs)
        {
            throw ApiException.BadRequest("top_logprobs", "needs logprobs: true");
        }
        return logprobs ? (int)(top ?? 0) : null;
    }

    /// <summary>tool_choice: (parse the output for calls, the tool whose call the output must begin with).</summary>
    private static (bool Parse, string? Forced) ToolChoice(JsonObject body, JsonArray? tools)
    {
        JsonNode? choice = Get(body, "tool_choice");
        if (choice is null)
        {
            return (tools is not null, null);
        }
        if (choice is JsonValue v && v.TryGetValue(out string? mode))
        {
            return mode switch
            {
                "none" => (false, null),
                "auto" => (tools is not null, null),
                "required" when tools is not null => (true, tools.Count == 1 ? tools[0]!["function"]!["name"]!.GetValue<string>() : ""),
                "required" => throw ApiException.BadRequest("tool_choice", "\"required\" needs tools"),
                _ => throw ApiException.BadRequest("tool_choice", $"expected none, auto, required or {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}, got \"{mode}\""),
            };
        }
        JsonObject named = AsObject(choice, "tool_choice");
        string name = ReqString(OptObject(named, "function", "tool_choice") ?? throw ApiException.BadRequest("tool_choice.function", "this field is required"), "name", "tool_choice.function");
        if (tools is null || !tools.Any(t => t!["function"]!["name"]!.GetValue<string>() == name))
        {
            throw ApiException.BadRequest("tool_choice.function.name", $"names \"{name}\", which is not among the tools");
        }
        return (true, name);
    }

    private static JsonSchema? ResponseFormat(JsonObject body)
    {
        if (OptObject(body, "response_format") is not JsonObject format)
        {
            return null;
        }
        string type = ReqString(format, "type", "response_format");
        switch (type)
        {
            case "text":
                return null;
            case "json_object":
                return JsonSchema.AnyObject;
            case "json_schema":
                JsonObject spec = OptObject(format, "json_schema", "response_format") ?? throw ApiException.BadRequest("response_format.json_schema", "this field is required (an object with name and schema)");
                JsonNode schema = Get(spec, "schema") ?? throw ApiException.BadRequest("response_format.json_schema.schema", "this field is required (a JSON schema)");
                try
                {
                    return JsonSchema.Compile(schema, "response_format.json_schema.schema");
                }
                catch (ArgumentException ex)
                {
                    throw new ApiException(400, ex.Message, "response_format.json_schema.schema");
                }
            default:
                throw ApiException.BadRequest("response_format.type", $"expected text, json_object or json_schema, got \"{type}\"");
        }
    }

    internal static string FinishReason(StopReason reason) => reason switch
    {
        StopReason.Length => "length",
        StopReason.ToolCalls => "tool_calls",
        _ => "stop",
    };

    /// <summary>The last chunk of a stream with <c>stream_options.include_usage</c>: no choices, the usage.</summary>
    private static JsonObject UsageChunk(string id, string objectType, long created, string model, JsonObject usage) => new()
    {
        ["id"] = id,
        ["object"] = objectType,
        ["created"] = created,
        ["model"] = model,
        ["choices"] = new JsonArray(),
        ["usage"] = usage,
    };

    internal static JsonObject Usage(int prompt, int completion, int cached) => new()
    {
        ["prompt_tokens"] = prompt,
        ["completion_tokens"] = completion,
        ["total_tokens"] = prompt + completion,
        ["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = cached },
    };

    private static JsonObject LogprobEntry(MimoTokenizer tokenizer, TokenLogprob lp)
    {
        JsonObject Entry(int token, float logprob)
        {
            byte[] bytes = tokenizer.TokenBytes(token).ToArray();
            return new JsonObject
            {
                ["token"] = Encoding.UTF8.GetString(bytes),
                ["logprob"] = float.IsNegativeInfinity(logprob) ? -9999f : logprob,
                ["bytes"] = new JsonArray(bytes.Select(b => (JsonNode)(int)b).ToArray()),
            };
        }
        JsonObject entry = Entry(lp.Token, lp.Logprob);
        // The engine ranks every row of the LM head; rows past the tokenizer (padding) are no tokens.
        entry["top_logprobs"] = new JsonArray(lp.Top.Where(t => t.Token < tokenizer.VocabularySize).Select(t => (JsonNode)Entry(t.Token, t.Logprob)).ToArray());
        return entry;
    }

    private static Task Send(HttpContext context, JsonObject chunk) => MimoServer.WriteSse(context, null, chunk.ToJsonString(MimoServer.Json));

    /// <summary>The legacy completions logprobs object: tokens, token_logprobs, top_logprobs, text_offset.</summary>
    private sealed class CompletionLogprobs(MimoTokenizer tokenizer, int baseOffset = 0)
    {
        private readonly JsonArray _tokens = [], _logprobs = [], _top = [], _offsets = [];

        public void Add(TokenLogprob lp, int? offset = null)
        {
            _tokens.Add(tokenizer.Decode([lp.Token]));
            _logprobs.Add(lp.Logprob);
            var top = new JsonObject();
            foreach ((int token, float logprob) in lp.Top.Where(t => t.Token < tokenizer.VocabularySize))
            {
                top[tokenizer.Decode([token])] = logprob;
            }
            _top.Add(top);
            _offsets.Add(offset ?? baseOffset);
        }

        public JsonObject ToJson() => new()
        {
            ["tokens"] = _tokens.DeepClone(),
            ["token_logprobs"] = _logprobs.DeepClone(),
            ["top_logprobs"] = _top.DeepClone(),
            ["text_offset"] = _offsets.DeepClone(),
        };
    }
}
