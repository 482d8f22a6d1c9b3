using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace MimoSharp.Models.Configuration;

/// <summary>
/// The largest sizes a config.json may ask for. They are checked before anything is sized or allocated
/// from the config, so an absurd value is refused with its key and bound instead of running the machine
/// out of memory. Each bound is far above MiMo-V2-Flash's own value (given in brackets).
/// </summary>
public static class ConfigLimits
{
    /// <summary>num_hidden_layers [48].</summary>
    public const int MaxLayers = 1024;
    /// <summary>MTP heads, from the checkpoint or --mtp-layers [3].</summary>
    public const int MaxMtpHeads = 16;
    /// <summary>n_routed_experts [256].</summary>
    public const int MaxExperts = 4096;
    /// <summary>vocab_size [152576].</summary>
    public const int MaxVocab = 1 << 22;
    /// <summary>hidden_size [4096].</summary>
    public const int MaxHidden = 1 << 16;
    /// <summary>intermediate_size, moe_intermediate_size [16384, 2048].</summary>
    public const int MaxIntermediate = 1 << 23;
    /// <summary>Attention heads of either type [64].</summary>
    public const int MaxHeads = 1024;
    /// <summary>head_dim and v_head_dim of either type [192, 128].</summary>
    public const int MaxHeadDim = 4096;
    /// <summary>max_position_embeddings [262144].</summary>
    public const int MaxPositions = 1 << 24;
    /// <summary>Tensors the config implies, experts included [about 37,000].</summary>
    public const long MaxTensors = 1 << 20;
}

/// <summary>What each config.json key holds, for parse errors that name the key and never a CLR type.</summary>
internal static class ConfigKeyTypes
{
    private static readonly Dictionary<string, string> s_expected = Build();

    /// <summary>What <paramref name="path"/> ("vocab_size", "quantization_config.weight_block_size[1]") should hold.</summary>
    public static string? Expected(string path)
    {
        string key = path;
        bool element = false;
        int bracket = key.IndexOf('[');
        if (bracket >= 0)
        {
            element = true;
            key = key[..bracket];
        }
        key = key[(key.LastIndexOf('.') + 1)..].Trim('\'', '[', ']');
        if (!s_expected.TryGetValue(key, out string? expected))
        {
            return null;
        }
        return (element, expected) switch
        {
            (true, "a list of integers") => "an integer in -2147483648..2147483647",
            (true, "a list of strings") => "a string",
            _ => expected,
        };
    }

    private static Dictionary<string, string> Build()
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (Type type in new[] { typeof(MimoConfig), typeof(QuantizationConfig) })
        {
            foreach (PropertyInfo property in type.GetProperties())
            {
                if (property.GetCustomAttribute<JsonPropertyNameAttribute>() is { } name)
                {
                    result[name.Name] = Describe(property.PropertyType);
                }
            }
        }
        return result;
    }

    private static string Describe(Type type)
    {
        Type t = Nullable.GetUnderlyingType(type) ?? type;
        if (t == typeof(int))
        {
            return "an integer in -2147483648..2147483647";
        }
        if (t == typeof(double))
        {
            return "a number";
        }
        if (t == typeof(bool))
        {
            return "true or false";
        }
        if (t == typeof(string))
        {
            return "a string";
        }
        if (t == typeof(JsonElement))
        {
            return "a JSON value";
        }
        if (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(IReadOnlyList<>))
        {
            Type item = t.GetGenericArguments()[0];
            return item == typeof(int) ? "a list of integers" : item == typeof(string) ? "a list of strings" : "a list";
        }
        return "an object";
    }
}
