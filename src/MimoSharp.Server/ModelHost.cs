using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MimoSharp.Models;
using MimoSharp.Runtime.Generation;
using MimoSharp.Runtime.Scheduling;
using MimoSharp.Runtime.Sampling;
using MimoSharp.Tokenization;
using MimoSharp.Tokenization.Templates;

namespace MimoSharp.Server;

/// <summary>
/// A loaded model and what serving it needs: tokenizer, prompt renderer, stop ids, sampling defaults
/// and the engine that runs generations. Shared by the HTTP server and <see cref="MimoChatClient"/>.
/// </summary>
public sealed class ModelHost : IDisposable
{
    private ModelHost(MimoModel model, MimoTokenizer tokenizer, IGenerationEngine engine, string name, int context, int? maxOutputTokens, SamplingOptions defaults, int draftTokens)
    {
        DraftTokens = draftTokens;
        Model = model;
        Tokenizer = tokenizer;
        Engine = engine;
        Name = name;
        Context = context;
        MaxOutputTokens = maxOutputTokens;
        Defaults = defaults;
        Renderer = new PromptRenderer(tokenizer);
        var stops = model.Config.EosTokenIds.ToHashSet();
        stops.UnionWith(tokenizer.EosIds);
        if (tokenizer.TokenToId("<|im_end|>") is int imEnd)
        {
            stops.Add(imEnd);
        }
        StopIds = stops;
        ThinkEndId = tokenizer.TokenToId("</think>");
        ThinkStartId = tokenizer.TokenToId("<think>");
    }

    public MimoModel Model { get; }
    public MimoTokenizer Tokenizer { get; }
    public IGenerationEngine Engine { get; }
    public PromptRenderer Renderer { get; }
    /// <summary>The model id clients send and see.</summary>
    public string Name { get; }
    /// <summary>Context length in tokens: prompt plus max_tokens must fit.</summary>
    public int Context { get; }
    public int? MaxOutputTokens { get; }
    /// <summary>MTP draft tokens per step for requests without a constraint.</summary>
    public int DraftTokens { get; }
    /// <summary>The model's sampling defaults (generation_config.json, else the model README's "general" preset).</summary>
    public SamplingOptions Defaults { get; }
    public IReadOnlySet<int> StopIds { get; }

    /// <summary>
    /// max_tokens for a request that gives none, after a prompt of <paramref name="promptTokens"/> tokens: what is left of the
    /// context, within --max-output-tokens, and within the KV budget, so that a request without a cap is not refused on a
    /// long-context model. Throws <see cref="ArgumentException"/> naming the limit when nothing fits.
    /// </summary>
    public int DefaultMaxTokens(int promptTokens)
    {
        int room = Context - promptTokens;
        if (room <= 0)
        {
            throw new ArgumentException($"the prompt of {promptTokens} tokens fills the context of {Context} tokens; nothing can be generated");
        }
        if (Engine is InferenceScheduler scheduler)
        {
            room = Math.Min(room, scheduler.MaxTokensWithin(promptTokens));
            if (room <= 0)
            {
                throw new ArgumentException($"the prompt of {promptTokens} tokens leaves no room in the KV cache budget ({scheduler.MaxPositions} positions per sequence); shorten it or raise the budget");
            }
        }
        return MaxOutputTokens is int cap ? Math.Min(cap, room) : room;
    }

    public int? ThinkEndId { get; }
    public int? ThinkStartId { get; }
    public DateTimeOffset Created { get; } = DateTimeOffset.UtcNow;

    /// <summary>A host over a given engine (tests drive the server with scripted engines over a real model and tokenizer).</summary>
    internal static ModelHost Create(MimoModel model, MimoTokenizer tokenizer, IGenerationEngine engine, string name, int context) =>
        new(model, tokenizer, engine, name, context, null, SamplingPresets.Get("general") with { Temperature = 0f }, 0);

    /// <summary>Loads the model in <paramref name="options"/>.ModelDirectory.</summary>
    public static ModelHost Load(ServerOptions options)
    {
        string dir = options.ModelDirectory;
        MimoModel model = MimoModel.Load(dir, new ModelLoadOptions { Threads = options.Threads });
        try
        {
            MimoTokenizer tokenizer = ByteLevelTokenizerWriter.LoadOrByteLevel(dir, model.VocabSize, out _);
            int context = Math.Min(options.Context ?? model.Config.MaxPositionEmbeddings, model.Config.MaxPositionEmbeddings);
            IGenerationEngine engine = new InferenceScheduler(model, new SchedulerOptions
            {
                MaxRunningSequences = options.Parallel,
                MaxQueuedRequests = options.MaxQueued,
                MaxDraftTokens = Math.Min(options.DraftTokens, model.MtpHeads),
                KvBudgetBytes = options.KvBudgetBytes,
            });
            string name = options.ServedModelName ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir)));
            return new ModelHost(model, tokenizer, engine, name, context, options.MaxOutputTokens, ReadDefaults(dir), options.DraftTokens);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The sampling settings a request starts from before its own fields apply.</summary>
    public static SamplingOptions ReadDefaults(string directory)
    {
        SamplingOptions general = SamplingPresets.Get("general");
        string path = Path.Combine(directory, "generation_config.json");
        if (!File.Exists(path))
        {
            return general;
        }
        JsonObject? config;
        try
        {
            config = JsonNode.Parse(File.ReadAllText(path)) as JsonObject;
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({ex.Message})");
        }
        if (config is null)
        {
            return general;
        }
        float? F(string key) => config[key] is JsonValue v && v.TryGetValue(out double d) ? (float)d : null;
        bool sample = config["do_sample"] is not JsonValue ds || !ds.TryGetValue(out bool b) || b;
        return general with
        {
            Temperature = sample ? F("temperature") ?? general.Temperature : 0f,
            TopP = F("top_p") ?? general.TopP,
            TopK = (int?)F("top_k") ?? general.TopK,
            MinP = F("min_p") ?? general.MinP,
            RepetitionPenalty = F("repetition_penalty") ?? general.RepetitionPenalty,
        };
    }

    public void Dispose()
    {
        (Engine as IDisposable)?.Dispose();
        Model.Dispose();
    }
}

/// <summary>
/// Renders a conversation (OpenAI-shaped messages: role, content, reasoning_content, tool_calls,
/// tool_call_id) with the model's own Jinja template, or, for models without one, ChatML with MiMo's
/// XML tool-call format. Earlier reasoning stays in the prompt (MiMo's multi-turn tool use needs it).
/// </summary>
public sealed class PromptRenderer
{
    private readonly ChatTemplate? _template;

    public PromptRenderer(MimoTokenizer tokenizer)
    {
        _template = tokenizer.ChatTemplate is string source ? ChatTemplate.Parse(source) : null;
    }

    public string Render(JsonArray messages, JsonArray? tools, bool enableThinking)
    {
        if (_template is not null)
        {
            return _template.Render(messages, tools is { Count: > 0 } ? tools : null, addGenerationPrompt: true,
                new Dictionary<string, JsonNode?> { ["enable_thinking"] = enableThinking });
        }
        var text = new StringBuilder();
        int start = 0;
        string system = messages.Count > 0 && messages[0]?["role"]?.GetValue<string>() == "system" ? messages[start++]!["content"]?.GetValue<string>() ?? "" : "";
        if (tools is { Count: > 0 })
        {
            system += (system.Length > 0 ? "\n\n" : "") + "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n" +
                "Here are the available tools:\n<tools>\n" + string.Join("\n", tools.Select(t => t!.ToJsonString())) + "\n</tools>\n\n" +
                "To call a function, reply with:\n<tool_call>\n<function=NAME>\n<parameter=ARGUMENT>\nVALUE\n</parameter>\n</function>\n</tool_call>";
        }
        if (system.Length > 0)
        {
            text.Append("<|im_start|>system\n").Append(system).Append("<|im_end|>\n");
        }
        for (int i = start; i < messages.Count; i++)
        {
            JsonObject m = messages[i]!.AsObject();
            string role = m["role"]!.GetValue<string>();
            string content = m["content"]?.GetValue<string>() ?? "";
            if (role == "tool")
            {
                text.Append("<|im_start|>user\n<tool_response>\n").Append(content).Append("\n</tool_response><|im_end|>\n");
                continue;
            }
            text.Append("<|im_start|>").Append(role).Append('\n');
            if (m["reasoning_content"]?.GetValue<string>() is { Length: > 0 } reasoning)
            {
                text.Append("<think>\n").Append(reasoning).Append("\n</think>\n\n");
            }
            text.Append(content);
            foreach (JsonNode? call in m["tool_calls"] as JsonArray ?? [])
            {
                JsonNode function = call!["function"]!;
                text.Append("\n<tool_call>\n<function=").Append(function["name"]!.GetValue<string>()).Append(">\n");
                foreach ((string key, JsonNode? value) in function["arguments"] as JsonObject ?? [])
                {
                    string v = value is JsonValue jv && jv.TryGetValue(out string? s) ? s : value?.ToJsonString() ?? "null";
                    text.Append("<parameter=").Append(key).Append(">\n").Append(v).Append("\n</parameter>\n");
                }
                text.Append("</function>\n</tool_call>");
            }
            text.Append("<|im_end|>\n");
        }
        text.Append("<|im_start|>assistant\n");
        if (!enableThinking)
        {
            text.Append("<think>\n\n</think>\n\n");
        }
        return text.ToString();
    }

    /// <summary>True when the prompt leaves the model inside an open &lt;think&gt; block.</summary>
    public static bool OpensReasoning(string prompt)
    {
        string trimmed = prompt.TrimEnd();
        return trimmed.EndsWith("<think>", StringComparison.Ordinal);
    }
}
