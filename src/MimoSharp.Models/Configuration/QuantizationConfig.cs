using System.Text.Json.Serialization;

namespace MimoSharp.Models.Configuration;

/// <summary>`quantization_config` of the checkpoint: FP8 E4M3 weights with 2-D block scales.</summary>
public sealed record QuantizationConfig
{
    [JsonPropertyName("quant_method")] public string? QuantMethod { get; init; }
    [JsonPropertyName("fmt")] public string? Format { get; init; }
    [JsonPropertyName("activation_scheme")] public string? ActivationScheme { get; init; }
    /// <summary>[rows, cols] of one scale block; [128, 128] in MiMo-V2-Flash.</summary>
    [JsonPropertyName("weight_block_size")] public IReadOnlyList<int>? WeightBlockSize { get; init; }
    /// <summary>Modules left unquantised (the o_proj of every layer in MiMo-V2-Flash).</summary>
    [JsonPropertyName("ignored_layers")] public IReadOnlyList<string>? IgnoredLayers { get; init; }
    [JsonPropertyName("packed_modules_mapping")] public Dictionary<string, System.Text.Json.JsonElement>? PackedModulesMapping { get; init; }
}
