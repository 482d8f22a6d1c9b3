using MimoSharp.Tensors.Quantization;
using MimoSharp.Models.Configuration;
using MimoSharp.Models.Loading;
using MimoSharp.Tensors;

namespace MimoSharp.Models;

/// <summary>
/// What a config (and, if present, its checkpoint) implies: layer kinds, parameter counts total and
/// active per token, bytes by dtype, and KV-cache bytes. A user's first question about a model.
/// </summary>
public sealed record ModelSummary
{
    public required int Layers { get; init; }
    public required int GlobalLayers { get; init; }
    public required int SlidingLayers { get; init; }
    public required int DenseLayers { get; init; }
    public required int MoeLayers { get; init; }
    public required int MtpHeads { get; init; }
    /// <summary>True when MTP heads were counted from tensor names; false when assumed (config only).</summary>
    public required bool MtpHeadsFromCheckpoint { get; init; }
    public required long TotalParameters { get; init; }
    public required long MtpParameters { get; init; }
    /// <summary>Parameters one token uses in the main model (all but the unchosen experts), MTP heads excluded.</summary>
    public required long ActiveParameters { get; init; }
    public required IReadOnlyDictionary<string, long> BytesByDType { get; init; }
    public required bool BytesFromCheckpoint { get; init; }
    /// <summary>K+V values per token of all global layers (they grow with the context).</summary>
    public required long GlobalKvValuesPerToken { get; init; }
    /// <summary>K+V values per position of all sliding layers and MTP heads (held only for the window).</summary>
    public required long SlidingKvValuesPerToken { get; init; }
    public required int WindowKeys { get; init; }

    /// <summary>KV bytes of one sequence of <paramref name="context"/> tokens at <paramref name="bytesPerValue"/>.</summary>
    public long KvBytes(long context, int bytesPerValue) =>
        (context * GlobalKvValuesPerToken + Math.Min(context, WindowKeys) * SlidingKvValuesPerToken) * bytesPerValue;

    public static ModelSummary From(MimoConfig config, Checkpoint? checkpoint, int assumedMtpHeads = 3)
    {
        MimoDerivedConfig d = config.Derived;
        if (assumedMtpHeads is < 0 or > ConfigLimits.MaxMtpHeads)
        {
            throw new ArgumentOutOfRangeException(nameof(assumedMtpHeads), assumedMtpHeads, $"MTP heads must be 0..{ConfigLimits.MaxMtpHeads}");
        }
        int mtp = checkpoint is null ? assumedMtpHeads : MimoWeights.CountMtpHeads(checkpoint);
        long total = 0, mtpParams = 0, experts = 0;
        var bytes = new SortedDictionary<string, long>(StringComparer.Ordinal);
        void AddBytes(string key, long count) => bytes[key] = checked(bytes.GetValueOrDefault(key) + count);
        bool group = config.QuantizationConfig is { QuantMethod: QuantizationConfig.GroupMethod };
        bool q4 = group && config.QuantizationConfig!.Format == QuantizationConfig.Q4Format;
        bool fp8 = d.Fp8BlockSize is not null;
        (int br, int bc) = d.Fp8BlockSize ?? (128, 128);
        // One pass over the layout, never held as a list: the config's sizes are bounded (ConfigLimits) and
        // the sums are checked, so any config gives its numbers or a clear error, in bounded memory.
        foreach (TensorSpec spec in CheckpointLayout.Enumerate(config, mtp))
        {
            long elements = spec.Elements;
            total = checked(total + elements);
            if (spec.IsMtp)
            {
                mtpParams += elements;
            }
            if (spec.Expert is not null)
            {
                experts += elements;
            }
            if (checkpoint is not null)
            {
                continue;
            }
            if (group && Creation.CheckpointQuantizer.IsQuantized(spec.Role) && spec.Shape.Length == 2)
            {
                // What `mimo quantize` writes: I8 codes or packed U8 nibbles plus F32 scales per 32 weights.
                long rows = spec.Shape[0];
                AddBytes(q4 ? "U8" : "I8", checked(rows * WeightMatrix.StrideOf(q4 ? DType.Q4 : DType.I8, spec.Shape[1])));
                AddBytes("F32", checked(rows * GroupQuantizer.GroupsPerRow(spec.Shape[1]) * sizeof(float)));
                continue;
            }
            DType dtype = CheckpointLayout.StoredDType(spec.Role, fp8 && !group);
            AddBytes(DTypes.ToSafetensorsName(dtype), checked(elements * DTypes.SizeOf(dtype)));
            if (dtype == DType.F8E4M3)
            {
                long scales = (long)((spec.Shape[0] + br - 1) / br) * ((spec.Shape[1] + bc - 1) / bc);
                AddBytes("F32", scales * 4);
            }
        }
        long activeExperts = config.NRoutedExperts > 0 ? experts / config.NRoutedExperts * config.NumExpertsPerTok : 0;
        long active = total - mtpParams - experts + activeExperts;
        if (checkpoint is not null)
        {
            foreach (TensorEntry entry in checkpoint.Tensors.Values)
            {
                AddBytes(DTypes.ToSafetensorsName(entry.DType), entry.ByteLength);
            }
        }

        long globalKv = 0, slidingKv = 0;
        for (int i = 0; i < config.NumHiddenLayers; i++)
        {
            AttentionGeometry g = d.Attention(i);
            if (g.IsSliding)
            {
                slidingKv += g.KeyWidth + g.ValueWidth;
            }
            else
            {
                globalKv += g.KeyWidth + g.ValueWidth;
            }
        }
        slidingKv += (long)mtp * (d.Sliding.KeyWidth + d.Sliding.ValueWidth);

        return new ModelSummary
        {
            Layers = config.NumHiddenLayers,
            GlobalLayers = d.LayerKinds.Count(k => k == LayerKind.GlobalAttention),
            SlidingLayers = d.LayerKinds.Count(k => k == LayerKind.SlidingWindowAttention),
            DenseLayers = d.IsMoeLayer.Count(m => !m),
            MoeLayers = d.IsMoeLayer.Count(m => m),
            MtpHeads = mtp,
            MtpHeadsFromCheckpoint = checkpoint is not null,
            TotalParameters = total,
            MtpParameters = mtpParams,
            ActiveParameters = active,
            BytesByDType = bytes,
            BytesFromCheckpoint = checkpoint is not null,
            GlobalKvValuesPerToken = globalKv,
            SlidingKvValuesPerToken = slidingKv,
            WindowKeys = d.SlidingWindow,
        };
    }
}
