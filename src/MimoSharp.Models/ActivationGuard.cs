using System.Numerics;
using System.Runtime.InteropServices;

namespace MimoSharp.Models;

/// <summary>The sublayer whose output a forward pass checks (see <see cref="ActivationGuard"/>).</summary>
public enum Sublayer
{
    Embedding,
    Attention,
    FeedForward,
    LmHead,
}

/// <summary>A forward pass produced NaN or infinity; the message names the layer and sublayer where it first appeared.</summary>
public sealed class NonFiniteActivationException(string message) : Exception(message);

/// <summary>
/// Stops a forward pass at the first sublayer output that holds NaN or infinity, instead of letting it
/// reach the logits and the sampler as plausible-looking garbage. Cost: one subtract and one add per
/// 8 (AVX2) or 16 floats of each sublayer's output rows (2 per layer, plus the embedding and the
/// logits), no allocation; a string is built only when it throws.
/// </summary>
public static class ActivationGuard
{
    /// <summary>
    /// Default for <see cref="ModelLoadOptions.CheckActivations"/>: on, unless the environment sets
    /// MIMO_CHECK_ACTIVATIONS=0 (to measure what the check costs).
    /// </summary>
    public static bool EnabledByDefault => Environment.GetEnvironmentVariable("MIMO_CHECK_ACTIVATIONS") != "0";

    /// <summary>Throws <see cref="NonFiniteActivationException"/> when <paramref name="values"/> [rows, width] holds a non-finite value.</summary>
    /// <param name="layer">Decoder layer (or MTP head when <paramref name="mtpHead"/>), ignored for the embedding and the LM head.</param>
    public static void Check(ReadOnlySpan<float> values, int width, Sublayer sublayer, int layer = -1, bool mtpHead = false)
    {
        if (AllFinite(values))
        {
            return;
        }
        int index = 0;
        while (float.IsFinite(values[index]))
        {
            index++;
        }
        throw new NonFiniteActivationException(Describe(values[index], index / width, index % width, sublayer, layer, mtpHead));
    }

    /// <summary>x - x is 0 for every finite x and NaN for NaN and ±infinity; the sum of those says whether any is non-finite.</summary>
    internal static bool AllFinite(ReadOnlySpan<float> values)
    {
        ReadOnlySpan<Vector<float>> vectors = MemoryMarshal.Cast<float, Vector<float>>(values);
        Vector<float> sum = Vector<float>.Zero;
        foreach (Vector<float> v in vectors)
        {
            sum += v - v;
        }
        float total = Vector.Sum(sum);
        for (int i = vectors.Length * Vector<float>.Count; i < values.Length; i++)
        {
            total += values[i] - values[i];
        }
        return total == 0;
    }

    private static string Describe(float value, int row, int column, Sublayer sublayer, int layer, bool mtpHead)
    {
        string prefix = mtpHead ? $"model.mtp.layers.{layer}" : $"model.layers.{layer}";
        string where = sublayer switch
        {
            Sublayer.Embedding => "the token embedding (model.embed_tokens.weight)",
            Sublayer.LmHead => mtpHead ? $"the logits of MTP head {layer} (lm_head.weight or {prefix}.final_layernorm.weight)" : "the logits (lm_head.weight or model.norm.weight)",
            Sublayer.Attention => $"the attention output of {(mtpHead ? "MTP head" : "layer")} {layer} ({prefix}.self_attn, {prefix}.input_layernorm)",
            _ => $"the feed-forward output of {(mtpHead ? "MTP head" : "layer")} {layer} ({prefix}.mlp, {prefix}.{(mtpHead ? "pre_mlp_layernorm" : "post_attention_layernorm")})",
        };
        return $"{(float.IsNaN(value) ? "NaN" : value.ToString(System.Globalization.CultureInfo.InvariantCulture))} first appears in {where}, row {row} column {column}: " +
            "earlier sublayers were finite, so these weights (or the input) are likely corrupt; `mimo check --model DIR` scans every tensor";
    }
}
