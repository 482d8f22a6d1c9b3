using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using static MimoSharp.Server.RequestFields;

namespace MimoSharp.Server;

/// <summary>POST /v1/messages (streamed or not) and /v1/messages/count_tokens, as Anthropic's Messages API.</summary>
internal sealed class AnthropicEndpoints(MimoServer server)
{
    private sealed record Prepared(ChatInput Input, string Prompt, IReadOnlyList<int> Ids, bool ParseTools, string? ForcedTool, bool Parallel);

    private static Prepared Prepare(ModelHost host, JsonObject body)
    {
        RequestTranslation.CheckModel(body, host);
        ChatInput input = RequestTranslation.AnthropicChat(body);
        bool parse = input.Tools is not null;
        string? forced = null;
        bool parallel = true;
        if (OptObject(body, "tool_choice") is JsonObject choice)
        {
            string type = ReqString(choice, "type", "tool_choice");
            parallel = !(OptBool(choice, "disable_parallel_tool_use", "tool_choice") ?? false);
            switch (type)
            {
                case "auto":
                    break;
                case "none":
                    parse = false;
                    break;
                case "any":
                    forced = input.Tools is { Count: > 0 } t ? t.Count == 1 ? t[0]!["function"]!["name"]!.GetValue<string>() : "" : throw ApiException.BadRequest("tool_choice", "\"any\" needs tools");
                    break;
                case "tool":
                    string name = ReqString(choice, "name", "tool_choice");
                    if (input.Tools is null || !input.Tools.Any(x => x!["function"]!["name"]!.GetValue<string>() == name))
                    {
                        throw ApiException.BadRequest("tool_choice.name", $"names \"{name}\", which is not among the tools");
                    }
                    forced = name;
                    break;
                default:
                    throw ApiException.BadRequest("tool_choice.type", $"expected auto, any, tool or none, got \"{type}\"");
            }
        }
        string prompt = host.Renderer.Render(input.Messages, parse ? input.Tools : null, input.Thinking);
        return new Prepared(input, prompt, host.Tokenizer.Encode(prompt), parse, forced, parallel);
    }

    public async Task CountTokens(HttpContext context)
    {
        ModelHost host = server.RequireHost();
        JsonObject body = await server.ReadBody(context).ConfigureAwait(false);
        Prepared prepared = Prepare(host, body);
        await context.Response.WriteAsJsonAsync(new JsonObject { ["input_tokens"] = prepared.Ids.Count }).ConfigureAwait(false);
    }

    public async Task Messages(HttpContext context)
    {
        ModelHost host = server.RequireHost();
        JsonObject body = await server.ReadBody(context).ConfigureAwait(false);
        Prepared prepared = Prepare(host, body);
        int maxTokens = RequestTranslation.FitToContext(
            RequestTranslation.MaxTokens(body, host, "max_tokens") ?? throw ApiException.BadRequest("max_tokens", "this field is required (an integer of at least 1)"),
            prepared.Ids.Count, host, "max_tokens");
        List<string> stops = StringOrList(body, "stop_sequences");
        bool stream = OptBool(body, "stream") ?? false;
        var spec = new ChatRunSpec
        {
            PromptIds = prepared.Ids,
            Sampling = RequestTranslation.Sampling(body, host, ApiFlavor.Anthropic),
            MaxTokens = maxTokens,
            Stops = stops,
            IgnoreEos = RequestFields.OptBool(body, "ignore_eos") ?? false,
            Tools = prepared.Input.Tools,
            ParseTools = prepared.ParseTools,
            StartInReasoning = PromptRenderer.OpensReasoning(prepared.Prompt),
            ParallelToolCalls = prepared.Parallel,
            Constraint = RequestTranslation.Constraint(host, null, prepared.ForcedTool, prepared.Input.Tools, prepared.Input.Thinking, PromptRenderer.OpensReasoning(prepared.Prompt)),
        };
        string id = MimoServer.Id("msg_");
        await using IAsyncEnumerator<ChatStep> steps = ChatRunner.RunAsync(host, spec, server.Metrics, context.RequestAborted).GetAsyncEnumerator();
        bool more = await MimoServer.FirstStep(steps, ApiFlavor.Anthropic, stream ? context : null, server.KeepAlive).ConfigureAwait(false);
        if (!stream)
        {
            var content = new JsonArray();
            var thinking = new StringBuilder();
            var text = new StringBuilder();
            void FlushBlocks()
            {
                if (thinking.Length > 0)
                {
                    content.Add(new JsonObject { ["type"] = "thinking", ["thinking"] = thinking.ToString(), ["signature"] = AnthropicEventBuilder.Signature(thinking.ToString()) });
                    thinking.Clear();
                }
                if (text.Length > 0)
                {
                    content.Add(new JsonObject { ["type"] = "text", ["text"] = text.ToString() });
                    text.Clear();
                }
            }
            ChatEnd? end = null;
            while (more)
            {
                foreach (OutputPart part in steps.Current.Parts)
                {
                    switch (part)
                    {
                        case ReasoningPart r:
                            if (text.Length > 0)
                            {
                                FlushBlocks();
                            }
                            thinking.Append(r.Text);
                            break;
                        case TextPart t:
                            if (thinking.Length > 0)
                            {
                                FlushBlocks();
                            }
                            text.Append(t.Text);
                            break;
                        case ToolCallPart c:
                            FlushBlocks();
                            content.Add(new JsonObject
                            {
                                ["type"] = "tool_use",
                                ["id"] = AnthropicEventBuilder.ToolUseId(c.Call.Id),
                                ["name"] = c.Call.Name,
                                ["input"] = JsonNode.Parse(c.Call.ArgumentsJson),
                            });
                            break;
                    }
                }
                end = steps.Current.End ?? end;
                more = await steps.MoveNextAsync().ConfigureAwait(false);
            }
            FlushBlocks();
            context.Items["usage"] = $"prompt={end!.PromptTokens} cached={end.CachedTokens} completion={end.CompletionTokens}";
            await context.Response.WriteAsJsonAsync(new JsonObject
            {
                ["id"] = id,
                ["type"] = "message",
                ["role"] = "assistant",
                ["model"] = host.Name,
                ["content"] = content,
                ["stop_reason"] = StopReasonName(end.Reason),
                ["stop_sequence"] = end.Reason == StopReason.StopSequence ? end.MatchedStop : null,
                ["usage"] = Usage(end.PromptTokens, end.CachedTokens, end.CompletionTokens),
            }, context.RequestAborted).ConfigureAwait(false);
            return;
        }

        MimoServer.BeginStream(context);
        try
        {
            await Send(context, "message_start", new JsonObject
            {
                ["type"] = "message_start",
                ["message"] = new JsonObject
                {
                    ["id"] = id,
                    ["type"] = "message",
                    ["role"] = "assistant",
                    ["model"] = host.Name,
                    ["content"] = new JsonArray(),
                    ["stop_reason"] = null,
                    ["stop_sequence"] = null,
                    // The prefix-cache hit is known once the first token is out: input_tokens excludes it, as Anthropic counts.
                    ["usage"] = Usage(prepared.Ids.Count, more ? steps.Current.End?.CachedTokens ?? steps.Current.CachedPromptTokens ?? 0 : 0, 1),
                },
            }).ConfigureAwait(false);
            await Send(context, "ping", new JsonObject { ["type"] = "ping" }).ConfigureAwait(false);
            var events = new AnthropicEventBuilder();
            while (more)
            {
                ChatStep step = steps.Current;
                foreach ((string name, JsonObject data) in events.Events(step.Parts))
                {
                    await Send(context, name, data).ConfigureAwait(false);
                }
                if (step.End is ChatEnd end)
                {
                    foreach ((string name, JsonObject data) in events.Finish())
                    {
                        await Send(context, name, data).ConfigureAwait(false);
                    }
                    context.Items["usage"] = $"prompt={end.PromptTokens} cached={end.CachedTokens} completion={end.CompletionTokens} stream";
                    await Send(context, "message_delta", new JsonObject
                    {
                        ["type"] = "message_delta",
                        ["delta"] = new JsonObject
                        {
                            ["stop_reason"] = StopReasonName(end.Reason),
                            ["stop_sequence"] = end.Reason == StopReason.StopSequence ? end.MatchedStop : null,
                        },
                        ["usage"] = Usage(end.PromptTokens, end.CachedTokens, end.CompletionTokens),
                    }).ConfigureAwait(false);
                    await Send(context, "message_stop", new JsonObject { ["type"] = "message_stop" }).ConfigureAwait(false);
                }
                more = await steps.MoveNextAsync().ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            await Send(context, "error", ApiException.ErrorBody(ApiFlavor.Anthropic, 500, ex.Message)).ConfigureAwait(false);
        }
    }

    private static string StopReasonName(StopReason reason) => reason switch
    {
        StopReason.Length => "max_tokens",
        StopReason.StopSequence => "stop_sequence",
        StopReason.ToolCalls => "tool_use",
        _ => "end_turn",
    };

    /// <summary>input_tokens counts the prompt tokens not read from the cache, as Anthropic does.</summary>
    private static JsonObject Usage(int prompt, int cached, int output) => new()
    {
        ["input_tokens"] = prompt - cached,
        ["cache_creation_input_tokens"] = 0,
        ["cache_read_input_tokens"] = cached,
        ["output_tokens"] = output,
    };

    private static Task Send(HttpContext context, string name, JsonObject data) => MimoServer.WriteSse(context, name, data.ToJsonString(MimoServer.Json));
}
