using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace MimoSharp.Tensors.Kernels;

/// <summary>
/// Attention of one query position for a group of query heads that share one KV head (GQA), by
/// online softmax over blocks of keys (flash-attention style): per block of <see cref="KeyBlock"/>
/// keys, every head's scores are computed with each key loaded once for the whole group, the running
/// max moves once per block (one rescale of the accumulator instead of one per key), and each value
/// row is loaded once and added to every head. Q/K head dim and V head dim are independent (MiMo:
/// 192 and 128). A sink logit (a per-head logit with no value, spec §2.3) enters as the starting
/// state: m = sink, l = 1. The caller passes only the keys the position may see, in as many
/// contiguous pieces as its cache stores them (a ring buffer wraps once), so nothing outside the
/// window is read.
/// State per head h: max[h], sum[h] = Σ exp(s - max), acc[h, :] = Σ exp(s - max) v.
/// </summary>
public static unsafe class AttentionKernel
{
    /// <summary>Keys per block.</summary>
    public const int KeyBlock = 32;

    /// <summary>Floats of scratch <see cref="Accumulate"/> needs for <paramref name="heads"/> heads.</summary>
    public static int ScratchLength(int heads) => heads * KeyBlock;

    /// <summary>Starts the state of <paramref name="heads"/> heads: from their sink logits, or empty.</summary>
    public static void Begin(int heads, int valueDim, ReadOnlySpan<float> sinks, Span<float> max, Span<float> sum, Span<float> acc)
    {
        if (max.Length < heads || sum.Length < heads || acc.Length < heads * valueDim || (!sinks.IsEmpty && sinks.Length < heads))
        {
            throw new ArgumentException($"attention state for {heads} heads of value dim {valueDim} needs max/sum of {heads} and acc of {heads * valueDim} floats (sinks: {heads} or none)");
        }
        for (int h = 0; h < heads; h++)
        {
            max[h] = sinks.IsEmpty ? float.NegativeInfinity : sinks[h];
            sum[h] = sinks.IsEmpty ? 0f : 1f;
        }
        acc[..(heads * valueDim)].Clear();
    }

    /// <summary>
    /// Folds <paramref name="count"/> keys into the state. queries [heads, headDim] (pre-rotated);
    /// key j of this KV head is keys[j · keyStride .. + headDim], its value values[j · valueStride .. + valueDim].
    /// </summary>
    public static void Accumulate(ReadOnlySpan<float> queries, int heads, int headDim,
        ReadOnlySpan<float> keys, int keyStride, ReadOnlySpan<float> values, int valueStride, int valueDim,
        int count, float scale, Span<float> max, Span<float> sum, Span<float> acc, Span<float> scratch)
    {
        if (count == 0)
        {
            return;
        }
        if (queries.Length < heads * headDim || keys.Length < (long)(count - 1) * keyStride + headDim
            || values.Length < (long)(count - 1) * valueStride + valueDim || scratch.Length < ScratchLength(heads)
            || max.Length < heads || sum.Length < heads || acc.Length < heads * valueDim || count < 0)
        {
            throw new ArgumentException(
                $"attention over {count} keys for {heads} heads (q/k dim {headDim}, v dim {valueDim}, key stride {keyStride}, value stride {valueStride}): a span is too short");
        }
        fixed (float* q = queries, k = keys, v = values, m = max, l = sum, a = acc, s = scratch)
        {
            bool wide = MatMul.Isa == KernelIsa.Vector512 && headDim % 16 == 0 && valueDim % 16 == 0;
            for (int start = 0; start < count; start += KeyBlock)
            {
                int block = Math.Min(KeyBlock, count - start);
                float* kb = k + (long)start * keyStride, vb = v + (long)start * valueStride;
                if (wide)
                {
                    BlockV512(q, heads, headDim, kb, keyStride, vb, valueStride, valueDim, block, scale, m, l, a, s);
                }
                else
                {
                    Block(q, heads, headDim, kb, keyStride, vb, valueStride, valueDim, block, scale, m, l, a, s);
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block(float* q, int heads, int headDim, float* k, int keyStride, float* v, int valueStride, int valueDim,
        int block, float scale, float* m, float* l, float* a, float* s)
    {
        // scores s[h, j]: key j is read once for every head of the group.
        for (int j = 0; j < block; j++)
        {
            float* key = k + (long)j * keyStride;
            for (int h = 0; h < heads; h++)
            {
                s[h * KeyBlock + j] = VectorMath.Dot(q + h * headDim, key, headDim) * scale;
            }
        }
        // One max update and one rescale per head per block; scores become probabilities.
        for (int h = 0; h < heads; h++)
        {
            float* sh = s + h * KeyBlock;
            float blockMax = sh[0];
            for (int j = 1; j < block; j++)
            {
                blockMax = MathF.Max(blockMax, sh[j]);
            }
            float newMax = MathF.Max(m[h], blockMax);
            if (newMax > m[h])
            {
                float correction = float.IsNegativeInfinity(m[h]) ? 0f : MathF.Exp(m[h] - newMax);
                l[h] *= correction;
                float* ah = a + h * valueDim;
                for (int d = 0; d < valueDim; d++)
                {
                    ah[d] *= correction;
                }
                m[h] = newMax;
            }
            float blockSum = 0;
            for (int j = 0; j < block; j++)
            {
                float p = MathF.Exp(sh[j] - newMax);
                sh[j] = p;
                blockSum += p;
            }
            l[h] += blockSum;
        }
        // acc[h] += Σ_j p[h, j] v_j: value j is read once for every head.
        for (int j = 0; j < block; j++)
        {
            float* value = v + (long)j * valueStride;
            for (int h = 0; h < heads; h++)
            {
                VectorMath.MultiplyAdd(value, s[h * KeyBlock + j], a + h * valueDim, valueDim);
            }
        }
    }

    /// <summary>
    /// The same block with Vector512 registers (head dims multiples of 16, as MiMo's 192 / 128): dots in two
    /// accumulators, the block's exponentials 16 lanes at a time, and each 16-wide slice of a head's
    /// accumulator kept in a register across the block's values.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BlockV512(float* q, int heads, int headDim, float* k, int keyStride, float* v, int valueStride, int valueDim,
        int block, float scale, float* m, float* l, float* a, float* s)
    {
        for (int j = 0; j < block; j++)
        {
            float* key = k + (long)j * keyStride;
            for (int h = 0; h < heads; h++)
            {
                float* qh = q + h * headDim;
                var d0 = Vector512<float>.Zero;
                var d1 = Vector512<float>.Zero;
                int d = 0;
                for (; d + 32 <= headDim; d += 32)
                {
                    d0 = Vector512.FusedMultiplyAdd(Vector512.Load(qh + d), Vector512.Load(key + d), d0);
                    d1 = Vector512.FusedMultiplyAdd(Vector512.Load(qh + d + 16), Vector512.Load(key + d + 16), d1);
                }
                if (d < headDim)
                {
                    d0 = Vector512.FusedMultiplyAdd(Vector512.Load(qh + d), Vector512.Load(key + d), d0);
                }
                s[h * KeyBlock + j] = Vector512.Sum(d0 + d1) * scale;
            }
        }
        for (int h = 0; h < heads; h++)
        {
            float* sh = s + h * KeyBlock;
            for (int j = block; j < KeyBlock; j++)
            {
                sh[j] = float.NegativeInfinity; // lanes past the block: exp gives 0
            }
            var lo = Vector512.Load(sh);
            var hi = Vector512.Load(sh + 16);
            float newMax = MathF.Max(m[h], MaxAcross(Vector512.Max(lo, hi)));
            if (newMax > m[h])
            {
                float correction = float.IsNegativeInfinity(m[h]) ? 0f : MathF.Exp(m[h] - newMax);
                l[h] *= correction;
                var c = Vector512.Create(correction);
                float* ah = a + h * valueDim;
                for (int d = 0; d < valueDim; d += 16)
                {
                    (Vector512.Load(ah + d) * c).Store(ah + d);
                }
                m[h] = newMax;
            }
            var shift = Vector512.Create(newMax);
            lo = VectorMath.Exp(lo - shift);
            hi = VectorMath.Exp(hi - shift);
            lo.Store(sh);
            hi.Store(sh + 16);
            float blockSum = 0;
            for (int j = 0; j < block; j++)
            {
                blockSum += sh[j]; // lanes past the block (clamped -inf) are left out
            }
            l[h] += blockSum;
        }
        for (int h = 0; h < heads; h++)
        {
            float* sh = s + h * KeyBlock;
            float* ah = a + h * valueDim;
            for (int d = 0; d < valueDim; d += 16)
            {
                var acc = Vector512.Load(ah + d);
                for (int j = 0; j < block; j++)
                {
                    acc = Vector512.FusedMultiplyAdd(Vector512.Create(sh[j]), Vector512.Load(v + (long)j * valueStride + d), acc);
                }
                acc.Store(ah + d);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float MaxAcross(Vector512<float> x)
    {
        var m256 = Vector256.Max(x.GetLower(), x.GetUpper());
        var m128 = Vector128.Max(m256.GetLower(), m256.GetUpper());
        float r = MathF.Max(MathF.Max(m128[0], m128[1]), MathF.Max(m128[2], m128[3]));
        return r;
    }

    /// <summary>output[h, :] = acc[h, :] / sum[h] (zero when nothing was visible and there is no sink).</summary>
    public static void Finish(int heads, int valueDim, ReadOnlySpan<float> sum, ReadOnlySpan<float> acc, Span<float> output)
    {
        if (output.Length < heads * valueDim || sum.Length < heads || acc.Length < heads * valueDim)
        {
            throw new ArgumentException($"attention output for {heads} heads of value dim {valueDim} needs {heads * valueDim} floats");
        }
        for (int h = 0; h < heads; h++)
        {
            float inverse = sum[h] > 0 ? 1f / sum[h] : 0f;
            for (int d = 0; d < valueDim; d++)
            {
                output[h * valueDim + d] = acc[h * valueDim + d] * inverse;
            }
        }
    }
}
