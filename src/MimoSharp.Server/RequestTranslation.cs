using System.Text.Json;
using System.Text.Json.Nodes;
using MimoSharp.Runtime.Constraints;
using MimoSharp.Runtime.Generation;
using MimoSharp.Runtime.Sampling;
using static MimoSharp.Server.RequestFields;

namespace MimoSharp.Server;

/// <summary>What both APIs' chat requests become: template messages (OpenAI-shaped), tools, thinking.</summary>
internal sealed record ChatInput(JsonArray Messages, JsonArray? Tools, bool Thinking);

/// <summary>Request fields shared by the endpoints: sampling, tools, messages of both APIs.</summary>
internal static class RequestTranslation
{
    public const int MaxChoices = 8;

    /// <summary>The host's defaults with the request's sampling fields over them; out-of-range values are 400s naming the field.</summary>
    public static SamplingOptions Sampling(JsonObject body, ModelHost host, ApiFlavor flavor)
    {
        SamplingOptions o = host.Defaults;
        double? temperature = OptNumber(body, "temperature");
        if (temperature is > 2 or < 0)
        {
            throw ApiException.BadRequest("temperature", $"must be in [0, 2], got {temperature}");
        }
        long? topK = OptInteger(body, "top_k");
        if (topK < -1 || topK > host.Model.VocabSize)
        {
            throw ApiException.BadRequest("top_k", $"must be -1 or 0 (off) or a count of tokens up to {host.Model.VocabSize}, got {topK}");
        }
        o = o with
        {
            Temperature = (float?)temperature ?? o.Temperature,
            TopP = (float?)OptNumber(body, "top_p") ?? o.TopP,
            TopK = topK is long k ? (int)Math.Max(k, 0) : o.TopK,
            MinP = (float?)OptNumber(body, "min_p") ?? o.MinP,
        };
        if (flavor == ApiFlavor.OpenAI)
        {
            o = o with
            {
                PresencePenalty = (float?)OptNumber(body, "presence_penalty") ?? o.PresencePenalty,
                FrequencyPenalty = (float?)OptNumber(body, "frequency_penalty") ?? o.FrequencyPenalty,
                RepetitionPenalty = (float?)OptNumber(body, "repetition_penalty") ?? o.RepetitionPenalty,
            };
            if (OptInteger(body, "seed") is long seed)
            {
                o = o with { Seed = unchecked((ulong)seed) };
            }
            if (OptObject(body, "logit_bias") is JsonObject bias)
            {
                var map = new Dictionary<int, float>();
                foreach ((string key, JsonNode? value) in bias)
                {
                    if (!int.TryParse(key, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int id) || id >= host.Model.VocabSize)
                    {
                        throw ApiException.BadRequest($"logit_bias.{key}", $"keys must be token ids in [0, {host.Model.VocabSize})");
                    }
                    double b = OptNumber(bias, key, "logit_bias")!.Value;
                    if (b is < -100 or > 100)
                    {
                        throw ApiException.BadRequest($"logit_bias.{key}", $"bias must be in [-100, 100], got {b}");
                    }
                    map[id] = b <= -100 ? float.NegativeInfinity : (float)b;
                }
                o = o with { LogitBias = map };
            }
        }
        try
        {
            return o.Validate(host.Model.VocabSize);
        }
        catch (ArgumentException ex)
        {
            string param = ex.ParamName switch
            {
                nameof(SamplingOptions.TopP) => "top_p",
                nameof(SamplingOptions.MinP) => "min_p",
                nameof(SamplingOptions.TopK) => "top_k",
                nameof(SamplingOptions.RepetitionPenalty) => "repetition_penalty",
                nameof(SamplingOptions.PresencePenalty) => "presence_penalty",
                nameof(SamplingOptions.FrequencyPenalty) => "frequency_penalty",
                nameof(SamplingOptions.LogitBias) => "logit_bias",
                _ => "temperature",
            };
            throw ApiException.BadRequest(param, ex.Message.Split(" (Parameter")[0]);
        }
    }

    /// <summary>The model field must name the served model.</summary>
    public static void CheckModel(JsonObject body, ModelHost host)
    {
        string model = ReqString(body, "model");
        if (!string.Equals(model, host.Name, StringComparison.Ordinal))
        {
            throw new ApiException(404, $"model: the model \"{model}\" does not exist; this server serves \"{host.Name}\"", "model");
        }
    }

    /// <summary>max_tokens (or max_completion_tokens), at least 1, clamped by the server's cap; null when absent.</summary>
    public static int? MaxTokens(JsonObject body, ModelHost host, string name)
    {
        long? requested = OptInteger(body, name);
        if (requested is null)
        {
            return null;
        }
        if (requested <= 0)
        {
            throw ApiException.BadRequest(name, $"must be at least 1, got {requested}");
        }
        long capped = host.MaxOutputTokens is int cap ? Math.Min(requested.Value, cap) : requested.Value;
        return (int)Math.Min(capped, int.MaxValue);
    }

    /// <summary>The request's max_tokens, or what is left of the context and the KV budget; 400 with both numbers when it does not fit.</summary>
    public static int FitToContext(int? maxTokens, int promptTokens, ModelHost host, string field)
    {
        if (maxTokens is int n)
        {
            if ((long)promptTokens + n > host.Context)
            {
                throw ApiException.BadRequest(field, $"the prompt of {promptTokens} tokens plus {field} {n} exceeds the context of {host.Context} tokens");
            }
            return n;
        }
        try
        {
            return host.DefaultMaxTokens(promptTokens);
        }
        catch (ArgumentException ex)
        {
            throw ApiException.BadRequest("messages", ex.Message);
        }
    }

    /// <summary>The constraint a request decodes under: a forced tool call opening, or the response format's JSON grammar.</summary>
    public static ITokenConstraint? Constraint(ModelHost host, JsonSchema? schema, string? forcedTool, JsonArray? tools, bool thinking, bool opensReasoning)
    {
        ITokenConstraint? inner = forcedTool is not null
            ? ForcedToolCall(host, forcedTool, tools ?? [])
            : schema is not null ? new JsonSchemaConstraint(schema, host.Tokenizer, host.StopIds) : null;
        if (inner is null)
        {
            return null;
        }
        return thinking && host.ThinkEndId is int thinkEnd ? new AfterReasoningConstraint(inner, thinkEnd, host.ThinkStartId, opensReasoning) : inner;
    }

    /// <summary>
    /// tool_choice required / named (Anthropic any / tool): the answer opens a MiMo tool call of <paramref name="forcedTool"/>
    /// ("" = any of <paramref name="tools"/>, OpenAI-shaped): "&lt;tool_call&gt;\n&lt;function=NAME&gt;\n", one alternative per
    /// allowed tool, so the name is always one of them; a tool without parameters gets its whole call.
    /// </summary>
    public static ForcedPrefixConstraint ForcedToolCall(ModelHost host, string forcedTool, JsonArray tools)
    {
        var prefixes = new List<string>();
        foreach (JsonNode? tool in tools)
        {
            if (tool?["function"] is not JsonObject function || function["name"]?.GetValue<string>() is not string name || (forcedTool.Length > 0 && name != forcedTool))
            {
                continue;
            }
            string prefix = $"<tool_call>\n<function={name}>\n";
            if (function["parameters"] is JsonObject parameters && parameters["properties"] is not JsonObject { Count: > 0 })
            {
                prefix += "</function>\n</tool_call>";
            }
            prefixes.Add(prefix);
        }
        if (prefixes.Count == 0)
        {
            prefixes.Add(forcedTool.Length > 0 ? $"<tool_call>\n<function={forcedTool}>\n" : "<tool_call>\n<function=");
        }
        return new ForcedPrefixConstraint(prefixes, host.Tokenizer);
    }

    /// <summary>OpenAI tools: [{type: function, function: {name, description?, parameters?}}], checked.</summary>
    public static JsonArray? OpenAITools(JsonObject body)
    {
        JsonArray? tools = OptArray(body, "tools");
        if (tools is null || tools.Count == 0)
        {
            return null;
        }
        var result = new JsonArray();
        for (int i = 0; i < tools.Count; i++)
        {
            string path = $"tools[{i}]";
            JsonObject tool = AsObject(tools[i], path);
            string type = OptString(tool, "type", path) ?? "function";
            if (type != "function")
            {
                throw ApiException.BadRequest($"{path}.type", $"only \"function\" tools are supported, got \"{type}\"");
            }
            JsonObject function = OptObject(tool, "function", path) ?? throw ApiException.BadRequest($"{path}.function", "this field is required (an object)");
            result.Add(CheckedFunction(ReqString(function, "name", $"{path}.function"), OptString(function, "description", $"{path}.function"),
                Get(function, "parameters"), $"{path}.function.parameters"));
        }
        return result;
    }

    /// <summary>An OpenAI tool definition after checking its name and that its schema is an object schema.</summary>
    public static JsonObject CheckedFunction(string name, string? description, JsonNode? parameters, string path)
    {
        if (name.Length == 0 || name.Length > 128 || name.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.' or ':')))
        {
            throw ApiException.BadRequest(path[..path.LastIndexOf('.')] + ".name", $"a tool name is 1 to 128 letters, digits, '_', '-', '.' or ':', got \"{name}\"");
        }
        if (parameters is not null)
        {
            if (parameters is not JsonObject schema)
            {
                throw ApiException.BadRequest(path, $"a tool's parameters must be a JSON schema object, got {Describe(parameters)}");
            }
            if (Get(schema, "type") is JsonNode type && !(type is JsonValue tv && tv.TryGetValue(out string? t) && t == "object"))
            {
                throw ApiException.BadRequest($"{path}.type", $"a tool's parameters must be an object schema (type \"object\"), got {type.ToJsonString()}");
            }
            if (Get(schema, "properties") is JsonNode props && props is not JsonObject)
            {
                throw ApiException.BadRequest($"{path}.properties", $"expected an object of property schemas, got {Describe(props)}");
            }
            if (Get(schema, "required") is JsonNode required && required is not JsonArray)
            {
                throw ApiException.BadRequest($"{path}.required", $"expected an array of property names, got {Describe(required)}");
            }
        }
        var function = new JsonObject { ["name"] = name };
        if (description is not null)
        {
            function["description"] = description;
        }
        function["parameters"] = parameters?.DeepClone() ?? new JsonObject { ["type"] = "object", ["properties"] = new JsonObject() };
        return new JsonObject { ["type"] = "function", ["function"] = function };
    }

    /// <summary>OpenAI chat messages into template messages; system/developer turns after the first fold into the system prompt.</summary>
    public static JsonArray OpenAIMessages(JsonObject body)
    {
        JsonArray messages = OptArray(body, "messages") ?? throw ApiException.BadRequest("messages", "this field is required (a non-empty array)");
        if (messages.Count == 0)
        {
            throw ApiException.BadRequest("messages", "must hold at least one message");
        }
        var system = new List<string>();
        var turns = new JsonArray();
        for (int i = 0; i < messages.Count; i++)
        {
            string path = $"messages[{i}]";
            JsonObject m = AsObject(messages[i], path);
            string role = ReqString(m, "role", path);
            string content = OpenAIContent(Get(m, "content"), $"{path}.content");
            switch (role)
            {
                case "system" or "developer":
                    system.Add(content);
                    break;
                case "user":
                    turns.Add(new JsonObject { ["role"] = "user", ["content"] = content });
                    break;
                case "assistant":
                    var assistant = new JsonObject { ["role"] = "assistant", ["content"] = content };
                    string? reasoning = OptString(m, "reasoning_content", path) ?? OptString(m, "reasoning", path);
                    if (reasoning is not null)
                    {
                        assistant["reasoning_content"] = reasoning;
                    }
                    if (OptArray(m, "tool_calls", path) is { Count: > 0 } calls)
                    {
                        var list = new JsonArray();
                        for (int c = 0; c < calls.Count; c++)
                        {
                            string callPath = $"{path}.tool_calls[{c}]";
                            JsonObject call = AsObject(calls[c], callPath);
                            JsonObject function = OptObject(call, "function", callPath) ?? throw ApiException.BadRequest($"{callPath}.function", "this field is required");
                            string arguments = OptString(function, "arguments", $"{callPath}.function") ?? "{}";
                            JsonNode? parsed;
                            try
                            {
                                parsed = JsonNode.Parse(arguments.Length == 0 ? "{}" : arguments);
                            }
                            catch (JsonException)
                            {
                                throw ApiException.BadRequest($"{callPath}.function.arguments", "must be a JSON object encoded as a string");
                            }
                            list.Add(new JsonObject
                            {
                                ["id"] = OptString(call, "id", callPath) ?? AssistantParser.NewCallId(),
                                ["type"] = "function",
                                ["function"] = new JsonObject
                                {
                                    ["name"] = ReqString(function, "name", $"{callPath}.function"),
                                    ["arguments"] = parsed as JsonObject ?? throw ApiException.BadRequest($"{callPath}.function.arguments", "must encode a JSON object"),
                                },
                            });
                        }
                        assistant["tool_calls"] = list;
                    }
                    turns.Add(assistant);
                    break;
                case "tool" or "function":
                    turns.Add(new JsonObject { ["role"] = "tool", ["content"] = content, ["tool_call_id"] = OptString(m, "tool_call_id", path) ?? "" });
                    break;
                default:
                    throw ApiException.BadRequest($"{path}.role", $"unknown role \"{role}\"; expected system, developer, user, assistant or tool");
            }
        }
        if (turns.Count == 0)
        {
            throw ApiException.BadRequest("messages", "holds only system messages; at least one user message is needed");
        }
        return WithSystem(system, turns);
    }

    private static JsonArray WithSystem(List<string> system, JsonArray turns)
    {
        var all = new JsonArray();
        if (system.Count > 0)
        {
            all.Add(new JsonObject { ["role"] = "system", ["content"] = string.Join("\n\n", system) });
        }
        foreach (JsonNode? turn in turns.ToArray())
        {
            turns.Remove(turn);
            all.Add(turn);
        }
        return all;
    }

    /// <summary>A string, null, or text parts; images and audio are refused (the model reads text only).</summary>
    private static string OpenAIContent(JsonNode? content, string path)
    {
        switch (content)
        {
            case null:
                return "";
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                return v.GetValue<string>();
            case JsonArray parts:
                var text = new System.Text.StringBuilder();
                for (int j = 0; j < parts.Count; j++)
                {
                    JsonObject part = AsObject(parts[j], $"{path}[{j}]");
                    string type = ReqString(part, "type", $"{path}[{j}]");
                    if (type != "text")
                    {
                        throw ApiException.BadRequest($"{path}[{j}].type", $"content of type \"{type}\" is not supported: this model reads text only");
                    }
                    text.Append(ReqString(part, "text", $"{path}[{j}]"));
                }
                return text.ToString();
            default:
                throw ApiException.BadRequest(path, $"expected a string or an array of content parts, got {Describe(content)}");
        }
    }

    /// <summary>Thinking on or off: chat_template_kwargs.enable_thinking, else reasoning_effort (none = off); off by default.</summary>
    public static bool OpenAIThinking(JsonObject body)
    {
        if (OptObject(body, "chat_template_kwargs") is JsonObject kwargs && OptBool(kwargs, "enable_thinking", "chat_template_kwargs") is bool enabled)
        {
            return enabled;
        }
        string? effort = OptString(body, "reasoning_effort");
        return effort switch
        {
            null or "none" => false,
            "minimal" or "low" or "medium" or "high" or "xhigh" => true,
            _ => throw ApiException.BadRequest("reasoning_effort", $"expected none, minimal, low, medium or high, got \"{effort}\""),
        };
    }

    /// <summary>Anthropic's request into template messages and OpenAI-shaped tools.</summary>
    public static ChatInput AnthropicChat(JsonObject body)
    {
        var system = new List<string>();
        switch (Get(body, "system"))
        {
            case null:
                break;
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                system.Add(StripBillingHeader(v.GetValue<string>()));
                break;
            case JsonArray blocks:
                for (int i = 0; i < blocks.Count; i++)
                {
                    JsonObject block = AsObject(blocks[i], $"system[{i}]");
                    string type = ReqString(block, "type", $"system[{i}]");
                    if (type != "text")
                    {
                        throw ApiException.BadRequest($"system[{i}].type", $"system blocks must be text, got \"{type}\"");
                    }
                    string text = ReqString(block, "text", $"system[{i}]");
                    system.Add(i == 0 ? StripBillingHeader(text) : text);
                }
                break;
            case JsonNode other:
                throw ApiException.BadRequest("system", $"expected a string or an array of text blocks, got {Describe(other)}");
        }
        system.RemoveAll(s => s.Length == 0);
        JsonArray messages = OptArray(body, "messages") ?? throw ApiException.BadRequest("messages", "this field is required (a non-empty array)");
        if (messages.Count == 0)
        {
            throw ApiException.BadRequest("messages", "must hold at least one message");
        }
        var turns = new JsonArray();
        for (int i = 0; i < messages.Count; i++)
        {
            string path = $"messages.{i}";
            JsonObject m = AsObject(messages[i], path);
            string role = ReqString(m, "role", path);
            if (role is not ("user" or "assistant" or "system"))
            {
                throw ApiException.BadRequest($"{path}.role", $"unknown role \"{role}\"; expected user or assistant");
            }
            JsonNode? content = Get(m, "content");
            if (content is JsonValue s && s.GetValueKind() == JsonValueKind.String)
            {
                if (role == "system")
                {
                    system.Add(s.GetValue<string>());
                }
                else
                {
                    turns.Add(new JsonObject { ["role"] = role, ["content"] = s.GetValue<string>() });
                }
                continue;
            }
            if (content is not JsonArray blocks)
            {
                throw ApiException.BadRequest($"{path}.content", $"expected a string or an array of content blocks, got {Describe(content)}");
            }
            var text = new System.Text.StringBuilder();
            var reasoning = new System.Text.StringBuilder();
            var calls = new JsonArray();
            for (int j = 0; j < blocks.Count; j++)
            {
                string blockPath = $"{path}.content.{j}";
                JsonObject block = AsObject(blocks[j], blockPath);
                string type = ReqString(block, "type", blockPath);
                switch (type)
                {
                    case "text":
                        text.Append(ReqString(block, "text", blockPath));
                        break;
                    case "thinking":
                        reasoning.Append(OptString(block, "thinking", blockPath) ?? "");
                        break;
                    case "redacted_thinking":
                        break; // opaque to this server: nothing to put back in the prompt
                    case "tool_use" when role == "assistant":
                        JsonNode? input = Get(block, "input") ?? new JsonObject();
                        calls.Add(new JsonObject
                        {
                            ["id"] = ReqString(block, "id", blockPath),
                            ["type"] = "function",
                            ["function"] = new JsonObject
                            {
                                ["name"] = ReqString(block, "name", blockPath),
                                ["arguments"] = (input as JsonObject ?? throw ApiException.BadRequest($"{blockPath}.input", $"expected an object, got {Describe(input)}")).DeepClone(),
                            },
                        });
                        break;
                    case "tool_result" when role == "user":
                        turns.Add(new JsonObject
                        {
                            ["role"] = "tool",
                            ["tool_call_id"] = ReqString(block, "tool_use_id", blockPath),
                            ["content"] = ToolResultText(Get(block, "content"), $"{blockPath}.content"),
                        });
                        break;
                    case "image" or "document":
                        throw ApiException.BadRequest($"{blockPath}.type", $"content of type \"{type}\" is not supported: this model reads text only");
                    default:
                        throw ApiException.BadRequest($"{blockPath}.type", $"content block type \"{type}\" is not valid in a {role} message");
                }
            }
            if (role == "system")
            {
                system.Add(text.ToString());
                continue;
            }
            if (role == "user" && text.Length == 0 && calls.Count == 0)
            {
                continue; // only tool results
            }
            var turn = new JsonObject { ["role"] = role, ["content"] = text.ToString() };
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
        if (turns.Count == 0)
        {
            throw ApiException.BadRequest("messages", "holds no user or assistant content");
        }
        JsonArray? tools = null;
        if (OptArray(body, "tools") is { Count: > 0 } list)
        {
            tools = new JsonArray();
            for (int i = 0; i < list.Count; i++)
            {
                string path = $"tools.{i}";
                JsonObject tool = AsObject(list[i], path);
                string? type = OptString(tool, "type", path);
                if (type is not (null or "custom"))
                {
                    continue; // server tools (web search, ...) run at Anthropic, not here
                }
                JsonNode schema = Get(tool, "input_schema") ?? throw ApiException.BadRequest($"{path}.input_schema", "this field is required (a JSON schema object)");
                tools.Add(CheckedFunction(ReqString(tool, "name", path), OptString(tool, "description", path), schema, $"{path}.input_schema"));
            }
        }
        bool thinking = false;
        if (OptObject(body, "thinking") is JsonObject thinkingConfig)
        {
            string type = ReqString(thinkingConfig, "type", "thinking");
            thinking = type switch
            {
                "enabled" or "adaptive" => true,
                "disabled" => false,
                _ => throw ApiException.BadRequest("thinking.type", $"expected enabled, adaptive or disabled, got \"{type}\""),
            };
        }
        return new ChatInput(WithSystem(system, turns), tools, thinking);
    }

    private static string ToolResultText(JsonNode? content, string path)
    {
        switch (content)
        {
            case null:
                return "";
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                return v.GetValue<string>();
            case JsonArray blocks:
                var text = new System.Text.StringBuilder();
                for (int k = 0; k < blocks.Count; k++)
                {
                    JsonObject block = AsObject(blocks[k], $"{path}.{k}");
                    string type = ReqString(block, "type", $"{path}.{k}");
                    if (type != "text")
                    {
                        throw ApiException.BadRequest($"{path}.{k}.type", $"tool results of type \"{type}\" are not supported: this model reads text only");
                    }
                    text.Append(ReqString(block, "text", $"{path}.{k}"));
                }
                return text.ToString();
            default:
                throw ApiException.BadRequest(path, $"expected a string or an array of text blocks, got {Describe(content)}");
        }
    }

    /// <summary>
    /// Claude Code starts system[0] with "x-anthropic-billing-header: ..." that changes per request;
    /// it would make every prompt differ from the first line on, defeating the prefix cache.
    /// </summary>
    public static string StripBillingHeader(string text)
    {
        const string Header = "x-anthropic-billing-header:";
        if (!text.StartsWith(Header, StringComparison.OrdinalIgnoreCase))
        {
            return text;
        }
        int newline = text.IndexOf('\n');
        return newline < 0 ? "" : text[(newline + 1)..].TrimStart('\n');
    }
}
