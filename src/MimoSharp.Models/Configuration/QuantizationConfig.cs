using System.Text.Json.Serialization;

namespace MimoSharp.Models.Configuration;

/// <summary>
/// `quantization_config` of the checkpoint: FP8 E4M3 weights with 2-D block scales (the official
/// checkpoint), or the integer group formats `mimo quantize` writes (quant_method "mimosharp",
/// fmt "q8_0" or "q4_0", group_size 32).
/// </summary>
public sealed record QuantizationConfig
{
    public const string GroupMethod = "mimosharp";
    public const string Q8Format = "q8_0";
    public const string Q4Format = "q4_0";

    [JsonPropertyName("quant_method")] public string? QuantMethod { get; init; }
    [JsonPropertyName("fmt")] public string? Format { get; init; }
    [JsonPropertyName("activation_scheme")] public string? ActivationScheme { get; init; }
    /// <summary>[rows, cols] of one scale block; [128, 128] in MiMo-V2-Flash.</summary>
    [JsonPropertyName("weight_block_size")] public IReadOnlyList<int>? WeightBlockSize { get; init; }
    /// <summary>Modules left unquantised (the o_proj of every layer in MiMo-V2-Flash).</summary>
    /// <summary>Weights per scale of the group formats (32).</summary>
    [JsonPropertyName("group_size")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? GroupSize { get; init; }
    [JsonPropertyName("ignored_layers")] public IReadOnlyList<string>? IgnoredLayers { get; init; }
    [JsonPropertyName("packed_modules_mapping")] public Dictionary<string, System.Text.Json.JsonElement>? PackedModulesMapping { get; init; }
}
