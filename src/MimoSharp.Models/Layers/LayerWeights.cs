using MimoSharp.Models.Configuration;
using MimoSharp.Tensors;

namespace MimoSharp.Models.Layers;

/// <summary>q/k/v/o projections of one attention (W_q [qHeads·headDim, H], W_k [kvHeads·headDim, H],
/// W_v [kvHeads·vDim, H], W_o [H, qHeads·vDim]) and the per-query-head sink logits, if any.</summary>
public sealed record AttentionWeights(
    AttentionGeometry Geometry,
    WeightMatrix Query,
    WeightMatrix Key,
    WeightMatrix Value,
    WeightMatrix Output,
    float[]? SinkBias);

/// <summary>SwiGLU: W_gate, W_up [width, H], W_down [H, width].</summary>
public sealed record MlpWeights(WeightMatrix Gate, WeightMatrix Up, WeightMatrix Down)
{
    public int Width => Gate.Rows;
    public long BytesRead => Gate.BytesRead + Up.BytesRead + Down.BytesRead;
}

/// <summary>Router (fp32 W [experts, H]), the selection-only correction bias [experts], and the experts.</summary>
public sealed record MoeWeights(WeightMatrix Router, float[] CorrectionBias, MlpWeights[] Experts);

/// <summary>One decoder layer: pre-norm attention and pre-norm feed-forward (dense or MoE).</summary>
public sealed record DecoderLayerWeights(
    LayerKind Kind,
    float[] InputNorm,
    AttentionWeights Attention,
    float[] PostAttentionNorm,
    MlpWeights? Mlp,
    MoeWeights? Moe);

/// <summary>One MTP head (spec §3.1): input fusion through eh_proj, one dense SWA block, its own final norm.</summary>
public sealed record MtpHeadWeights(
    float[] EmbeddingNorm,
    float[] HiddenNorm,
    /// <summary>[H, 2H] over concat(normed embedding, normed hidden).</summary>
    WeightMatrix EhProj,
    float[] InputNorm,
    AttentionWeights Attention,
    float[] PreMlpNorm,
    MlpWeights Mlp,
    float[] FinalNorm);
