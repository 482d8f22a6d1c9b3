using System.Text.RegularExpressions;
using MimoSharp.Models.Configuration;
using MimoSharp.Models.Layers;
using MimoSharp.Models.Loading;
using MimoSharp.Tensors;

namespace MimoSharp.Models;

/// <summary>
/// Every weight of a MiMo-V2-Flash checkpoint, checked against the config: presence, dtype and
/// shape of each tensor. Matrices point into the memory-mapped files (FP8 stays FP8); norms,
/// biases and sinks are small and copied to float32.
/// </summary>
public sealed partial class MimoWeights
{
    public required WeightMatrix Embedding { get; init; }
    public required DecoderLayerWeights[] Layers { get; init; }
    public required float[] FinalNorm { get; init; }
    public required WeightMatrix LmHead { get; init; }
    public required MtpHeadWeights[] MtpHeads { get; init; }

    [GeneratedRegex(@"^model\.mtp\.layers\.(\d+)\.")]
    private static partial Regex MtpLayerName();

    /// <summary>MTP head indices present in the checkpoint (the config does not declare them).</summary>
    public static int CountMtpHeads(Checkpoint checkpoint)
    {
        var indices = new SortedSet<int>();
        foreach (string name in checkpoint.Tensors.Keys)
        {
            Match match = MtpLayerName().Match(name);
            if (match.Success)
            {
                if (!int.TryParse(match.Groups[1].Value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int index)
                    || index >= Configuration.ConfigLimits.MaxMtpHeads)
                {
                    throw new CheckpointException($"{checkpoint.Directory}: tensor \"{name}\" names MTP layer {match.Groups[1].Value}; expected 0..{Configuration.ConfigLimits.MaxMtpHeads - 1}");
                }
                indices.Add(index);
            }
        }
        for (int k = 0; k < indices.Count; k++)
        {
            if (!indices.Contains(k))
            {
                throw new CheckpointException($"{checkpoint.Directory}: MTP layers {string.Join(", ", indices)} are present but model.mtp.layers.{k} is missing; expected consecutive heads from 0");
            }
        }
        return indices.Count;
    }

    public static MimoWeights Load(Checkpoint checkpoint, MimoConfig config, MimoDerivedConfig derived)
    {
        int h = config.HiddenSize;
        var block = derived.Fp8BlockSize;
        WeightMatrix Matrix(string prefix, int rows, int cols)
        {
            WeightMatrix matrix = checkpoint.ReadMatrix(prefix, rows, cols, block);
            matrix.SeparateSubnormals(); // FP8: no float32 denormals for the kernels (Fp8Subnormals says why)
            return matrix;
        }
        float[] Vector(string name, int length) => checkpoint.ReadFloats(name, length);

        AttentionWeights Attention(string prefix, AttentionGeometry g) => new(
            g,
            Matrix(prefix + ".q_proj", g.QueryWidth, h),
            Matrix(prefix + ".k_proj", g.KeyWidth, h),
            Matrix(prefix + ".v_proj", g.ValueWidth, h),
            Matrix(prefix + ".o_proj", h, g.OutputWidth),
            g.HasSinkBias ? Vector(prefix + ".attention_sink_bias", g.QueryHeads) : null);

        MlpWeights Mlp(string prefix, int width) => new(
            Matrix(prefix + ".gate_proj", width, h),
            Matrix(prefix + ".up_proj", width, h),
            Matrix(prefix + ".down_proj", h, width));

        var layers = new DecoderLayerWeights[config.NumHiddenLayers];
        for (int i = 0; i < layers.Length; i++)
        {
            string p = $"model.layers.{i}";
            AttentionGeometry g = derived.Attention(i);
            MlpWeights? mlp = null;
            MoeWeights? moe = null;
            if (derived.IsMoeLayer[i])
            {
                var experts = new MlpWeights[config.NRoutedExperts];
                for (int e = 0; e < experts.Length; e++)
                {
                    experts[e] = Mlp($"{p}.mlp.experts.{e}", config.MoeIntermediateSize);
                }
                moe = new MoeWeights(
                    Matrix($"{p}.mlp.gate", config.NRoutedExperts, h),
                    config.TopkMethod == "noaux_tc" ? Vector($"{p}.mlp.gate.e_score_correction_bias", config.NRoutedExperts) : new float[config.NRoutedExperts],
                    experts);
            }
            else
            {
                mlp = Mlp($"{p}.mlp", config.IntermediateSize);
            }
            layers[i] = new DecoderLayerWeights(
                derived.LayerKinds[i],
                Vector($"{p}.input_layernorm.weight", h),
                Attention($"{p}.self_attn", g),
                Vector($"{p}.post_attention_layernorm.weight", h),
                mlp,
                moe);
        }

        int mtpCount = CountMtpHeads(checkpoint);
        var mtp = new MtpHeadWeights[mtpCount];
        for (int k = 0; k < mtpCount; k++)
        {
            string p = $"model.mtp.layers.{k}";
            mtp[k] = new MtpHeadWeights(
                Vector($"{p}.enorm.weight", h),
                Vector($"{p}.hnorm.weight", h),
                Matrix($"{p}.eh_proj", h, 2 * h),
                Vector($"{p}.input_layernorm.weight", h),
                Attention($"{p}.self_attn", derived.Sliding),
                Vector($"{p}.pre_mlp_layernorm.weight", h),
                Mlp($"{p}.mlp", config.IntermediateSize),
                Vector($"{p}.final_layernorm.weight", h));
        }

        WeightMatrix embedding = Matrix("model.embed_tokens", config.VocabSize, h);
        WeightMatrix lmHead = config.TieWordEmbeddings && !checkpoint.Contains("lm_head.weight")
            ? embedding
            : Matrix("lm_head", config.VocabSize, h);
        return new MimoWeights
        {
            Embedding = embedding,
            Layers = layers,
            FinalNorm = Vector("model.norm.weight", h),
            LmHead = lmHead,
            MtpHeads = mtp,
        };
    }
}
