using System.Text.Json;
using MimoSharp.Tensors;
namespace MimoSharp.Models.Configuration;

/// <summary>The geometry of one attention type (global, sliding, or an MTP head).</summary>
public sealed record AttentionGeometry(
    int QueryHeads,
    int KeyValueHeads,
    int HeadDim,
    int ValueHeadDim,
    int RotaryDims,
    double RopeTheta,
    bool HasSinkBias,
    /// <summary>Keys a query sees, its own included; 0 for global attention.</summary>
    int WindowKeys)
{
    public int QueryWidth => QueryHeads * HeadDim;
    public int KeyWidth => KeyValueHeads * HeadDim;
    public int ValueWidth => KeyValueHeads * ValueHeadDim;
    public int OutputWidth => QueryHeads * ValueHeadDim;
    /// <summary>Query heads served by one KV head (contiguous grouping).</summary>
    public int GroupSize => QueryHeads / KeyValueHeads;
    public bool IsSliding => WindowKeys > 0;
}

/// <summary>Sizes derived once from a validated <see cref="MimoConfig"/>.</summary>
public sealed record MimoDerivedConfig
{
    public required IReadOnlyList<LayerKind> LayerKinds { get; init; }
    public required IReadOnlyList<bool> IsMoeLayer { get; init; }
    public required AttentionGeometry Global { get; init; }
    public required AttentionGeometry Sliding { get; init; }
    /// <summary>The w of the HF convention; <see cref="Sliding"/>.WindowKeys applies the chosen convention.</summary>
    public required int SlidingWindow { get; init; }
    public required float RmsNormEps { get; init; }
    public required float ValueScale { get; init; }
    public required float RoutedScalingFactor { get; init; }
    public required int ExpertGroups { get; init; }
    public required int TopkGroups { get; init; }
    /// <summary>[rows, cols] of an FP8 scale block, or null when the config declares no quantization.</summary>
    public required (int Rows, int Cols)? Fp8BlockSize { get; init; }

    public AttentionGeometry Attention(int layer) => LayerKinds[layer] == LayerKind.GlobalAttention ? Global : Sliding;

    /// <summary>The same sizes with the sliding window counted in another convention.</summary>
    public MimoDerivedConfig WithWindowConvention(SlidingWindowConvention convention)
    {
        int keys = convention == SlidingWindowConvention.SGLang ? SlidingWindow + 1 : SlidingWindow;
        return this with { Sliding = Sliding with { WindowKeys = keys } };
    }

    /// <summary>An id-or-list key (eos_token_id, ...): null, or integers in [0, vocab_size).</summary>
    private static void CheckTokenIds(System.Text.Json.JsonElement? ids, string key, int vocab, Func<string, ModelConfigException> fail)
    {
        if (ids is not { } element || element.ValueKind == System.Text.Json.JsonValueKind.Null)
        {
            return;
        }
        IEnumerable<System.Text.Json.JsonElement> items = element.ValueKind == System.Text.Json.JsonValueKind.Array ? element.EnumerateArray() : [element];
        foreach (System.Text.Json.JsonElement item in items)
        {
            if (item.ValueKind != System.Text.Json.JsonValueKind.Number || !item.TryGetInt32(out int id) || id < 0 || id >= vocab)
            {
                throw fail($"\"{key}\" holds {item.GetRawText()}; expected a token id in [0, {vocab}) (\"vocab_size\"), or a list of them");
            }
        }
    }

    internal static MimoDerivedConfig From(MimoConfig c)
    {
        string src = c.Source;
        ModelConfigException Fail(string message) => new($"{src}: {message}");
        void Positive(int value, string key)
        {
            if (value <= 0)
            {
                throw Fail($"\"{key}\" must be a positive integer, got {value}");
            }
        }

        // Sizes are bounded before anything is sized from them (ConfigLimits says why each bound).
        void InRange(int value, string key, int max)
        {
            Positive(value, key);
            if (value > max)
            {
                throw Fail($"\"{key}\" is {value}; at most {max} is supported");
            }
        }
        void Finite(double? value, string key, bool positive)
        {
            if (value is double v && (!double.IsFinite(v) || (positive && v <= 0)))
            {
                throw Fail($"\"{key}\" is {v}; expected a finite{(positive ? " positive" : "")} number");
            }
        }

        if (c.ModelType is not null and not "mimo_v2_flash" and not "")
        {
            throw Fail($"\"model_type\" is \"{c.ModelType}\"; expected \"mimo_v2_flash\" (MiMo-V2.5/2.6 \"mimo_v2\" checkpoints use a different layout)");
        }
        InRange(c.VocabSize, "vocab_size", ConfigLimits.MaxVocab);
        InRange(c.HiddenSize, "hidden_size", ConfigLimits.MaxHidden);
        InRange(c.IntermediateSize, "intermediate_size", ConfigLimits.MaxIntermediate);
        InRange(c.NumHiddenLayers, "num_hidden_layers", ConfigLimits.MaxLayers);
        InRange(c.NumAttentionHeads, "num_attention_heads", ConfigLimits.MaxHeads);
        InRange(c.NumKeyValueHeads, "num_key_value_heads", ConfigLimits.MaxHeads);
        InRange(c.HeadDim, "head_dim", ConfigLimits.MaxHeadDim);
        InRange(c.VHeadDim, "v_head_dim", ConfigLimits.MaxHeadDim);
        // A sequence holds at least the prompt's token and one generated token.
        if (c.MaxPositionEmbeddings is < 2 or > ConfigLimits.MaxPositions)
        {
            throw Fail($"\"max_position_embeddings\" is {c.MaxPositionEmbeddings}; expected 2..{ConfigLimits.MaxPositions}");
        }
        foreach ((JsonElement? ids, string key) in new[] { (c.EosTokenId, "eos_token_id"), (c.BosTokenId, "bos_token_id"), (c.PadTokenId, "pad_token_id") })
        {
            CheckTokenIds(ids, key, c.VocabSize, Fail);
        }
        Finite(c.AttentionValueScale, "attention_value_scale", positive: true);
        Finite(c.RoutedScalingFactor, "routed_scaling_factor", positive: true);
        Finite(c.PartialRotaryFactor, "partial_rotary_factor", positive: true);
        Finite(c.RopeTheta, "rope_theta", positive: true);
        Finite(c.SwaRopeTheta, "swa_rope_theta", positive: true);
        Finite(c.LayerNormEpsilon, "layernorm_epsilon", positive: true);

        var pattern = c.HybridLayerPattern ?? throw Fail("\"hybrid_layer_pattern\" is missing; expected a list of 0 (global) / 1 (sliding) per layer");
        if (pattern.Count != c.NumHiddenLayers)
        {
            throw Fail($"\"hybrid_layer_pattern\" has {pattern.Count} entries but \"num_hidden_layers\" is {c.NumHiddenLayers}");
        }
        var kinds = new LayerKind[pattern.Count];
        for (int i = 0; i < pattern.Count; i++)
        {
            kinds[i] = pattern[i] switch
            {
                0 => LayerKind.GlobalAttention,
                1 => LayerKind.SlidingWindowAttention,
                _ => throw Fail($"\"hybrid_layer_pattern\"[{i}] is {pattern[i]}; expected 0 (global) or 1 (sliding window)"),
            };
        }
        var moeFreq = c.MoeLayerFreq ?? throw Fail("\"moe_layer_freq\" is missing; expected a list of 0 (dense) / 1 (MoE) per layer");
        if (moeFreq.Count != c.NumHiddenLayers)
        {
            throw Fail($"\"moe_layer_freq\" has {moeFreq.Count} entries but \"num_hidden_layers\" is {c.NumHiddenLayers}");
        }
        var isMoe = new bool[moeFreq.Count];
        for (int i = 0; i < moeFreq.Count; i++)
        {
            isMoe[i] = moeFreq[i] switch
            {
                0 => false,
                1 => true,
                _ => throw Fail($"\"moe_layer_freq\"[{i}] is {moeFreq[i]}; expected 0 (dense) or 1 (MoE)"),
            };
        }

        bool anyMoe = isMoe.Contains(true);
        int window = c.SlidingWindow ?? c.SlidingWindowSize ?? 0;
        if (c.SlidingWindow is int a && c.SlidingWindowSize is int b && a != b)
        {
            throw Fail($"\"sliding_window\" ({a}) and \"sliding_window_size\" ({b}) disagree");
        }
        // MTP heads are sliding-window layers too, so the window and the swa_* sizes are always needed.
        InRange(window, "sliding_window", ConfigLimits.MaxPositions);
        InRange(c.SwaNumAttentionHeads, "swa_num_attention_heads", ConfigLimits.MaxHeads);
        InRange(c.SwaNumKeyValueHeads, "swa_num_key_value_heads", ConfigLimits.MaxHeads);
        InRange(c.SwaHeadDim, "swa_head_dim", ConfigLimits.MaxHeadDim);
        InRange(c.SwaVHeadDim, "swa_v_head_dim", ConfigLimits.MaxHeadDim);

        if (c.NumAttentionHeads % c.NumKeyValueHeads != 0)
        {
            throw Fail($"\"num_attention_heads\" ({c.NumAttentionHeads}) is not a multiple of \"num_key_value_heads\" ({c.NumKeyValueHeads})");
        }
        if (c.SwaNumAttentionHeads % c.SwaNumKeyValueHeads != 0)
        {
            throw Fail($"\"swa_num_attention_heads\" ({c.SwaNumAttentionHeads}) is not a multiple of \"swa_num_key_value_heads\" ({c.SwaNumKeyValueHeads})");
        }
        if (c.PartialRotaryFactor is <= 0 or > 1)
        {
            throw Fail($"\"partial_rotary_factor\" is {c.PartialRotaryFactor}; expected a value in (0, 1]");
        }
        int RotaryDims(int headDim, string key)
        {
            int dims = (int)(headDim * c.PartialRotaryFactor);
            if (dims < 2 || dims % 2 != 0)
            {
                throw Fail($"\"partial_rotary_factor\" {c.PartialRotaryFactor} of \"{key}\" {headDim} gives {dims} rotary dims; expected an even number >= 2");
            }
            return dims;
        }
        if (c.RopeTheta <= 0 || c.SwaRopeTheta <= 0)
        {
            throw Fail($"\"rope_theta\" ({c.RopeTheta}) and \"swa_rope_theta\" ({c.SwaRopeTheta}) must be positive");
        }
        if (c.RopeScaling is { ValueKind: not System.Text.Json.JsonValueKind.Null })
        {
            throw Fail($"\"rope_scaling\" is {c.RopeScaling}; MiMo-V2-Flash uses none (null) and no scaling is implemented");
        }
        if (c.HiddenAct != "silu")
        {
            throw Fail($"\"hidden_act\" is \"{c.HiddenAct}\"; only \"silu\" is implemented");
        }
        if (c.AttentionBias)
        {
            throw Fail("\"attention_bias\" is true; MiMo-V2-Flash projections have no bias and none is implemented");
        }
        if (c.LayerNormEpsilon <= 0)
        {
            throw Fail($"\"layernorm_epsilon\" must be positive, got {c.LayerNormEpsilon}");
        }

        int groups = c.NGroup ?? 1;
        int topkGroups = c.TopkGroup ?? 1;
        if (anyMoe)
        {
            InRange(c.MoeIntermediateSize, "moe_intermediate_size", ConfigLimits.MaxIntermediate);
            InRange(c.NRoutedExperts, "n_routed_experts", ConfigLimits.MaxExperts);
            Positive(c.NumExpertsPerTok, "num_experts_per_tok");
            long expertTensors = 3L * c.NRoutedExperts * isMoe.Count(m => m);
            if (expertTensors > ConfigLimits.MaxTensors)
            {
                throw Fail($"\"n_routed_experts\" {c.NRoutedExperts} in {isMoe.Count(m => m)} MoE layers (\"moe_layer_freq\") gives {expertTensors} expert tensors; at most {ConfigLimits.MaxTensors} tensors are supported");
            }
            if (c.NumExpertsPerTok > c.NRoutedExperts)
            {
                throw Fail($"\"num_experts_per_tok\" ({c.NumExpertsPerTok}) exceeds \"n_routed_experts\" ({c.NRoutedExperts})");
            }
            if (c.ScoringFunc != "sigmoid")
            {
                throw Fail($"\"scoring_func\" is \"{c.ScoringFunc}\"; expected \"sigmoid\"");
            }
            if (c.TopkMethod is not ("noaux_tc" or "greedy"))
            {
                throw Fail($"\"topk_method\" is \"{c.TopkMethod}\"; expected \"noaux_tc\" (bias-corrected selection) or \"greedy\"");
            }
            if (c.NSharedExperts is > 0)
            {
                throw Fail($"\"n_shared_experts\" is {c.NSharedExperts}; MiMo-V2-Flash has none and shared experts are not implemented");
            }
            if (groups <= 0 || c.NRoutedExperts % groups != 0)
            {
                throw Fail($"\"n_group\" ({groups}) must be positive and divide \"n_routed_experts\" ({c.NRoutedExperts})");
            }
            if (topkGroups <= 0 || topkGroups > groups)
            {
                throw Fail($"\"topk_group\" ({topkGroups}) must be in 1..\"n_group\" ({groups})");
            }
            if (topkGroups * (c.NRoutedExperts / groups) < c.NumExpertsPerTok)
            {
                throw Fail($"\"topk_group\" {topkGroups} groups of {c.NRoutedExperts / groups} experts cannot supply \"num_experts_per_tok\" {c.NumExpertsPerTok}");
            }
        }

        (int, int)? block = null;
        if (c.QuantizationConfig is { QuantMethod: QuantizationConfig.GroupMethod } gq)
        {
            // Written by `mimo quantize`: the tensors' dtypes say which matrices are Q8_0 / Q4_0.
            if (gq.Format is not (QuantizationConfig.Q8Format or QuantizationConfig.Q4Format))
            {
                throw Fail($"\"quantization_config.fmt\" is \"{gq.Format}\"; expected \"{QuantizationConfig.Q8Format}\" or \"{QuantizationConfig.Q4Format}\" for quant_method \"{QuantizationConfig.GroupMethod}\"");
            }
            if (gq.GroupSize is not null and not WeightMatrix.GroupSize)
            {
                throw Fail($"\"quantization_config.group_size\" is {gq.GroupSize}; only {WeightMatrix.GroupSize} is supported");
            }
        }
        else if (c.QuantizationConfig is { } q)
        {
            if (q.QuantMethod is not null and not "fp8")
            {
                throw Fail($"\"quantization_config.quant_method\" is \"{q.QuantMethod}\"; expected \"fp8\" or \"{QuantizationConfig.GroupMethod}\"");
            }
            if (q.Format is not null and not "e4m3")
            {
                throw Fail($"\"quantization_config.fmt\" is \"{q.Format}\"; expected \"e4m3\"");
            }
            if (q.ActivationScheme is not null and not "dynamic")
            {
                throw Fail($"\"quantization_config.activation_scheme\" is \"{q.ActivationScheme}\"; expected \"dynamic\" (static activation scales are not implemented)");
            }
            if (q.WeightBlockSize is { } size)
            {
                if (size.Count != 2 || size[0] <= 0 || size[1] <= 0)
                {
                    throw Fail($"\"quantization_config.weight_block_size\" is [{string.Join(", ", size)}]; expected two positive integers");
                }
                block = (size[0], size[1]);
            }
        }

        var global = new AttentionGeometry(c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.VHeadDim,
            RotaryDims(c.HeadDim, "head_dim"), c.RopeTheta, c.AddFullAttentionSinkBias, 0);
        var sliding = new AttentionGeometry(c.SwaNumAttentionHeads, c.SwaNumKeyValueHeads, c.SwaHeadDim, c.SwaVHeadDim,
            RotaryDims(c.SwaHeadDim, "swa_head_dim"), c.SwaRopeTheta, c.AddSwaAttentionSinkBias, window);
        return new MimoDerivedConfig
        {
            LayerKinds = kinds,
            IsMoeLayer = isMoe,
            Global = global,
            Sliding = sliding,
            SlidingWindow = window,
            RmsNormEps = (float)c.LayerNormEpsilon,
            ValueScale = (float)(c.AttentionValueScale ?? 1.0),
            RoutedScalingFactor = (float)(c.RoutedScalingFactor ?? 1.0),
            ExpertGroups = groups,
            TopkGroups = topkGroups,
            Fp8BlockSize = block,
        };
    }
}
