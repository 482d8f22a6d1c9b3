using System.Text.Json;
using System.Text.Json.Serialization;
using MimoSharp.Tensors.Storage;

namespace MimoSharp.Models.Configuration;

/// <summary>
/// config.json of a MiMo-V2-Flash-architecture model, bound key for key (spec §1.2), immutable.
/// <see cref="Load"/> validates it; the derived sizes (<see cref="Derived"/>) are computed once there.
/// </summary>
public sealed record MimoConfig
{
    [JsonPropertyName("architectures")] public IReadOnlyList<string>? Architectures { get; init; }
    [JsonPropertyName("model_type")] public string? ModelType { get; init; }
    [JsonPropertyName("auto_map")] public Dictionary<string, string>? AutoMap { get; init; }
    [JsonPropertyName("torch_dtype")] public string? TorchDtype { get; init; }
    [JsonPropertyName("transformers_version")] public string? TransformersVersion { get; init; }

    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; }
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; init; }
    /// <summary>Dense SwiGLU width (layer 0 and every MTP head).</summary>
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; init; }
    /// <summary>Width of one routed expert.</summary>
    [JsonPropertyName("moe_intermediate_size")] public int MoeIntermediateSize { get; init; }
    /// <summary>Decoder layers of the main model; MTP layers are extra and not counted.</summary>
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; init; }

    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; }
    [JsonPropertyName("num_key_value_heads")] public int NumKeyValueHeads { get; init; }
    /// <summary>q/k head dim of global layers.</summary>
    [JsonPropertyName("head_dim")] public int HeadDim { get; init; }
    [JsonPropertyName("v_head_dim")] public int VHeadDim { get; init; }
    [JsonPropertyName("swa_num_attention_heads")] public int SwaNumAttentionHeads { get; init; }
    [JsonPropertyName("swa_num_key_value_heads")] public int SwaNumKeyValueHeads { get; init; }
    [JsonPropertyName("swa_head_dim")] public int SwaHeadDim { get; init; }
    [JsonPropertyName("swa_v_head_dim")] public int SwaVHeadDim { get; init; }

    [JsonPropertyName("partial_rotary_factor")] public double PartialRotaryFactor { get; init; } = 1.0;
    [JsonPropertyName("rope_theta")] public double RopeTheta { get; init; }
    [JsonPropertyName("swa_rope_theta")] public double SwaRopeTheta { get; init; }
    [JsonPropertyName("rope_scaling")] public JsonElement? RopeScaling { get; init; }
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; init; }

    /// <summary>Sliding window in the HF convention (query i sees i-w+1..i).</summary>
    [JsonPropertyName("sliding_window")] public int? SlidingWindow { get; init; }
    [JsonPropertyName("sliding_window_size")] public int? SlidingWindowSize { get; init; }
    /// <summary>Hub-only key, unused by every implementation.</summary>
    [JsonPropertyName("attention_chunk_size")] public int? AttentionChunkSize { get; init; }
    [JsonPropertyName("hybrid_block_size")] public int? HybridBlockSize { get; init; }
    /// <summary>Per layer: 0 global attention, 1 sliding window.</summary>
    [JsonPropertyName("hybrid_layer_pattern")] public IReadOnlyList<int>? HybridLayerPattern { get; init; }
    /// <summary>Per layer: 0 dense SwiGLU, 1 MoE.</summary>
    [JsonPropertyName("moe_layer_freq")] public IReadOnlyList<int>? MoeLayerFreq { get; init; }

    [JsonPropertyName("add_full_attention_sink_bias")] public bool AddFullAttentionSinkBias { get; init; }
    [JsonPropertyName("add_swa_attention_sink_bias")] public bool AddSwaAttentionSinkBias { get; init; }
    /// <summary>V multiplier of every attention (0.707 in MiMo-V2-Flash); absent means 1.</summary>
    [JsonPropertyName("attention_value_scale")] public double? AttentionValueScale { get; init; }
    [JsonPropertyName("attention_bias")] public bool AttentionBias { get; init; }
    [JsonPropertyName("attention_dropout")] public double AttentionDropout { get; init; }

    [JsonPropertyName("hidden_act")] public string HiddenAct { get; init; } = "silu";
    [JsonPropertyName("layernorm_epsilon")] public double LayerNormEpsilon { get; init; } = 1e-5;
    [JsonPropertyName("initializer_range")] public double InitializerRange { get; init; } = 0.02;

    [JsonPropertyName("n_routed_experts")] public int NRoutedExperts { get; init; }
    [JsonPropertyName("n_shared_experts")] public int? NSharedExperts { get; init; }
    [JsonPropertyName("num_experts_per_tok")] public int NumExpertsPerTok { get; init; }
    [JsonPropertyName("scoring_func")] public string ScoringFunc { get; init; } = "sigmoid";
    [JsonPropertyName("topk_method")] public string TopkMethod { get; init; } = "noaux_tc";
    [JsonPropertyName("n_group")] public int? NGroup { get; init; }
    [JsonPropertyName("topk_group")] public int? TopkGroup { get; init; }
    [JsonPropertyName("norm_topk_prob")] public bool NormTopkProb { get; init; } = true;
    /// <summary>null in the real config; means 1.0.</summary>
    [JsonPropertyName("routed_scaling_factor")] public double? RoutedScalingFactor { get; init; }
    [JsonPropertyName("moe_router_dtype")] public string? MoeRouterDtype { get; init; }

    [JsonPropertyName("tie_word_embeddings")] public bool TieWordEmbeddings { get; init; }
    [JsonPropertyName("use_cache")] public bool UseCache { get; init; } = true;
    /// <summary>Absent in the real config: the MTP layer count comes from the checkpoint's tensor names.</summary>
    [JsonPropertyName("num_nextn_predict_layers")] public int? NumNextnPredictLayers { get; init; }

    [JsonPropertyName("bos_token_id")] public JsonElement? BosTokenId { get; init; }
    /// <summary>An id or a list of ids.</summary>
    [JsonPropertyName("eos_token_id")] public JsonElement? EosTokenId { get; init; }
    [JsonPropertyName("pad_token_id")] public JsonElement? PadTokenId { get; init; }

    [JsonPropertyName("quantization_config")] public QuantizationConfig? QuantizationConfig { get; init; }

    /// <summary>Keys of the file that this record does not bind (kept so nothing is silently lost).</summary>
    [JsonExtensionData] public Dictionary<string, JsonElement>? ExtraKeys { get; init; }

    /// <summary>Sizes derived from the keys, computed once by <see cref="Validate"/>.</summary>
    [JsonIgnore] public MimoDerivedConfig Derived { get; private init; } = null!;

    /// <summary>Where the config was read from (for error messages).</summary>
    [JsonIgnore] public string Source { get; init; } = "config.json";

    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        // A key given twice is a mistake to report, not a choice to make silently.
        AllowDuplicateProperties = false,
    };

    /// <summary>config.json files larger than this are refused (the real one is 3 KB).</summary>
    public const long MaxFileBytes = 16L << 20;

    /// <summary>Reads and validates a config.json.</summary>
    public static MimoConfig Load(string path)
    {
        if (Directory.Exists(path))
        {
            path = System.IO.Path.Combine(path, "config.json");
        }
        if (!File.Exists(path))
        {
            throw new ModelConfigException($"{path}: config.json not found");
        }
        string text = InputFile.ReadText(path, "a config.json file", MaxFileBytes, message => new ModelConfigException(message));
        return Parse(text, path);
    }

    /// <summary>Parses and validates config.json text; <paramref name="source"/> names it in errors.</summary>
    public static MimoConfig Parse(string json, string source = "config.json")
    {
        MimoConfig? config;
        try
        {
            config = JsonSerializer.Deserialize<MimoConfig>(json, JsonOptions);
        }
        catch (JsonException ex)
        {
            throw new ModelConfigException($"{source}: {InputFile.DescribeJsonError(ex, ConfigKeyTypes.Expected, json)}", ex);
        }
        if (config is null)
        {
            throw new ModelConfigException($"{source}: the file holds JSON null, expected an object");
        }
        return (config with { Source = source }).Validate();
    }

    /// <summary>Checks every key against what the engine implements and computes <see cref="Derived"/>.</summary>
    public MimoConfig Validate() => this with { Derived = MimoDerivedConfig.From(this) };

    /// <summary>Writes the config as config.json text (derived values are not written).</summary>
    public string ToJson()
    {
        var copy = this with { ExtraKeys = ExtraKeys };
        return JsonSerializer.Serialize(copy, JsonOptions);
    }

    /// <summary>EOS ids declared by the config (an id or a list; empty if null).</summary>
    public IReadOnlyList<int> EosTokenIds => ReadIds(EosTokenId);

    /// <summary>Ids of an id-or-list key; <see cref="Validate"/> has checked each is an integer in the vocabulary.</summary>
    internal static int[] ReadIds(JsonElement? element) => element switch
    {
        { ValueKind: JsonValueKind.Number } e when e.TryGetInt32(out int id) => [id],
        { ValueKind: JsonValueKind.Array } e => e.EnumerateArray().Select(x => x.TryGetInt32(out int id) ? id : -1).ToArray(),
        _ => [],
    };
}
