using MimoSharp.Models.Configuration;
using MimoSharp.Tensors;

namespace MimoSharp.Models.Loading;

/// <summary>What a tensor is for: decides its dtype in the official layout and how it is counted.</summary>
public enum TensorRole
{
    Embedding,
    LmHead,
    Norm,
    /// <summary>q/k/v and MLP projections: FP8 with block scales in the official checkpoint.</summary>
    QuantizableProjection,
    /// <summary>o_proj and MTP eh_proj: BF16 in the official checkpoint.</summary>
    DenseProjection,
    Router,
    RouterBias,
    SinkBias,
}

/// <summary>One tensor of the official layout. Expert tensors carry their expert index (for active-parameter counts).</summary>
public sealed record TensorSpec(string Name, TensorRole Role, int[] Shape, int? Expert = null, bool IsMtp = false)
{
    public long Elements => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// The tensors a config implies in the Hugging Face layout of MiMo-V2-Flash (spec §4.2), in file
/// order. Used to write random checkpoints and to size a model from its config alone.
/// </summary>
public static class CheckpointLayout
{
    public static IEnumerable<TensorSpec> Enumerate(MimoConfig config, int mtpHeads)
    {
        MimoDerivedConfig d = config.Derived;
        int h = config.HiddenSize;
        yield return new TensorSpec("model.embed_tokens.weight", TensorRole.Embedding, [config.VocabSize, h]);
        for (int i = 0; i < config.NumHiddenLayers; i++)
        {
            string p = $"model.layers.{i}";
            yield return new TensorSpec($"{p}.input_layernorm.weight", TensorRole.Norm, [h]);
            foreach (TensorSpec spec in Attention($"{p}.self_attn", d.Attention(i), h, false))
            {
                yield return spec;
            }
            yield return new TensorSpec($"{p}.post_attention_layernorm.weight", TensorRole.Norm, [h]);
            if (d.IsMoeLayer[i])
            {
                yield return new TensorSpec($"{p}.mlp.gate.weight", TensorRole.Router, [config.NRoutedExperts, h]);
                if (config.TopkMethod == "noaux_tc")
                {
                    yield return new TensorSpec($"{p}.mlp.gate.e_score_correction_bias", TensorRole.RouterBias, [config.NRoutedExperts]);
                }
                for (int e = 0; e < config.NRoutedExperts; e++)
                {
                    foreach (TensorSpec spec in Mlp($"{p}.mlp.experts.{e}", config.MoeIntermediateSize, h, e, false))
                    {
                        yield return spec;
                    }
                }
            }
            else
            {
                foreach (TensorSpec spec in Mlp($"{p}.mlp", config.IntermediateSize, h, null, false))
                {
                    yield return spec;
                }
            }
        }
        yield return new TensorSpec("model.norm.weight", TensorRole.Norm, [h]);
        if (!config.TieWordEmbeddings)
        {
            yield return new TensorSpec("lm_head.weight", TensorRole.LmHead, [config.VocabSize, h]);
        }
        for (int k = 0; k < mtpHeads; k++)
        {
            string p = $"model.mtp.layers.{k}";
            yield return new TensorSpec($"{p}.enorm.weight", TensorRole.Norm, [h], IsMtp: true);
            yield return new TensorSpec($"{p}.hnorm.weight", TensorRole.Norm, [h], IsMtp: true);
            yield return new TensorSpec($"{p}.eh_proj.weight", TensorRole.DenseProjection, [h, 2 * h], IsMtp: true);
            yield return new TensorSpec($"{p}.input_layernorm.weight", TensorRole.Norm, [h], IsMtp: true);
            foreach (TensorSpec spec in Attention($"{p}.self_attn", d.Sliding, h, true))
            {
                yield return spec;
            }
            yield return new TensorSpec($"{p}.pre_mlp_layernorm.weight", TensorRole.Norm, [h], IsMtp: true);
            foreach (TensorSpec spec in Mlp($"{p}.mlp", config.IntermediateSize, h, null, true))
            {
                yield return spec;
            }
            yield return new TensorSpec($"{p}.final_layernorm.weight", TensorRole.Norm, [h], IsMtp: true);
        }
    }

    private static IEnumerable<TensorSpec> Attention(string p, AttentionGeometry g, int h, bool mtp)
    {
        yield return new TensorSpec($"{p}.q_proj.weight", TensorRole.QuantizableProjection, [g.QueryWidth, h], IsMtp: mtp);
        yield return new TensorSpec($"{p}.k_proj.weight", TensorRole.QuantizableProjection, [g.KeyWidth, h], IsMtp: mtp);
        yield return new TensorSpec($"{p}.v_proj.weight", TensorRole.QuantizableProjection, [g.ValueWidth, h], IsMtp: mtp);
        yield return new TensorSpec($"{p}.o_proj.weight", TensorRole.DenseProjection, [h, g.OutputWidth], IsMtp: mtp);
        if (g.HasSinkBias)
        {
            yield return new TensorSpec($"{p}.attention_sink_bias", TensorRole.SinkBias, [g.QueryHeads], IsMtp: mtp);
        }
    }

    private static IEnumerable<TensorSpec> Mlp(string p, int width, int h, int? expert, bool mtp)
    {
        yield return new TensorSpec($"{p}.gate_proj.weight", TensorRole.QuantizableProjection, [width, h], expert, mtp);
        yield return new TensorSpec($"{p}.up_proj.weight", TensorRole.QuantizableProjection, [width, h], expert, mtp);
        yield return new TensorSpec($"{p}.down_proj.weight", TensorRole.QuantizableProjection, [h, width], expert, mtp);
    }

    /// <summary>The dtype the official checkpoint stores a tensor of this role in (FP8 only when the config is quantized).</summary>
    public static DType StoredDType(TensorRole role, bool quantized) => role switch
    {
        TensorRole.QuantizableProjection => quantized ? DType.F8E4M3 : DType.BF16,
        TensorRole.Router or TensorRole.RouterBias or TensorRole.SinkBias => DType.F32,
        _ => DType.BF16,
    };
}
