namespace MimoSharp.Runtime.Sampling;

/// <summary>Named sampling settings: the seed's recommendations per use and the MiMo-V2-Flash README's.</summary>
public static class SamplingPresets
{
    private static readonly Dictionary<string, SamplingOptions> s_presets = new(StringComparer.OrdinalIgnoreCase)
    {
        // The seed's recommendations per use: temperature, top_p, max_tokens, repetition_penalty.
        ["summary"] = new() { Temperature = 0.5f, TopP = 0.85f, MaxTokens = 1024, RepetitionPenalty = 1.1f },
        ["code"] = new() { Temperature = 0.6f, TopP = 0.9f, MaxTokens = 2048, RepetitionPenalty = 1.2f },
        ["math"] = new() { Temperature = 0.4f, TopP = 0.8f, MaxTokens = 512, RepetitionPenalty = 1.05f },
        ["chat"] = new() { Temperature = 0.7f, TopP = 0.9f, MaxTokens = 512, RepetitionPenalty = 1.1f },
        // The model README: top_p 0.95 with temperature 0.8 for math/writing/web-dev, 0.3 for agentic use.
        ["general"] = new() { Temperature = 0.8f, TopP = 0.95f },
        ["agentic"] = new() { Temperature = 0.3f, TopP = 0.95f },
        // Deterministic output, for tests and comparisons with reference implementations.
        ["greedy"] = new() { Temperature = 0f },
    };

    /// <summary>The preset names, in the order above.</summary>
    public static IReadOnlyCollection<string> Names => s_presets.Keys;

    /// <summary>The preset called <paramref name="name"/> (case-insensitive); an unknown name throws listing the valid ones.</summary>
    public static SamplingOptions Get(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return s_presets.TryGetValue(name, out SamplingOptions? options)
            ? options
            : throw new ArgumentException($"unknown sampling preset \"{name}\"; valid presets: {string.Join(", ", s_presets.Keys)}", nameof(name));
    }
}
