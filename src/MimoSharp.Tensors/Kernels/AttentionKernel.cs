using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

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
            float newMax = RaiseMax(m + h, l + h, a + h * valueDim, valueDim, blockMax);
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
    /// The same block with Vector512 registers (head dims multiples of 16, as MiMo's 192 / 128): scores in
    /// 4 heads x 4 keys register tiles, the block's exponentials 16 lanes at a time, and the values added in
    /// 4 heads x 64 lanes accumulator tiles.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BlockV512(float* q, int heads, int headDim, float* k, int keyStride, float* v, int valueStride, int valueDim,
        int block, float scale, float* m, float* l, float* a, float* s)
    {
        // Scores four keys at a time per head: four independent FMA chains, each query slice loaded once.
        int j4 = 0;
        for (; j4 + 4 <= block; j4 += 4)
        {
            float* k0 = k + (long)j4 * keyStride, k1 = k0 + keyStride, k2 = k1 + keyStride, k3 = k2 + keyStride;
            int h = 0;
            for (; h + 4 <= heads; h += 4)
            {
                // 4 heads x 4 keys register tile: per 16 dims, 8 loads feed 16 FMAs.
                float* q0 = q + h * headDim, q1 = q0 + headDim, q2 = q1 + headDim, q3 = q2 + headDim;
                Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
                Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
                Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
                Vector512<float> a30 = default, a31 = default, a32 = default, a33 = default;
                for (int d = 0; d < headDim; d += 16)
                {
                    var kv0 = Vector512.Load(k0 + d);
                    var kv1 = Vector512.Load(k1 + d);
                    var kv2 = Vector512.Load(k2 + d);
                    var kv3 = Vector512.Load(k3 + d);
                    var qv = Vector512.Load(q0 + d);
                    a00 = Vector512.FusedMultiplyAdd(qv, kv0, a00); a01 = Vector512.FusedMultiplyAdd(qv, kv1, a01);
                    a02 = Vector512.FusedMultiplyAdd(qv, kv2, a02); a03 = Vector512.FusedMultiplyAdd(qv, kv3, a03);
                    qv = Vector512.Load(q1 + d);
                    a10 = Vector512.FusedMultiplyAdd(qv, kv0, a10); a11 = Vector512.FusedMultiplyAdd(qv, kv1, a11);
                    a12 = Vector512.FusedMultiplyAdd(qv, kv2, a12); a13 = Vector512.FusedMultiplyAdd(qv, kv3, a13);
                    qv = Vector512.Load(q2 + d);
                    a20 = Vector512.FusedMultiplyAdd(qv, kv0, a20); a21 = Vector512.FusedMultiplyAdd(qv, kv1, a21);
                    a22 = Vector512.FusedMultiplyAdd(qv, kv2, a22); a23 = Vector512.FusedMultiplyAdd(qv, kv3, a23);
                    qv = Vector512.Load(q3 + d);
                    a30 = Vector512.FusedMultiplyAdd(qv, kv0, a30); a31 = Vector512.FusedMultiplyAdd(qv, kv1, a31);
                    a32 = Vector512.FusedMultiplyAdd(qv, kv2, a32); a33 = Vector512.FusedMultiplyAdd(qv, kv3, a33);
                }
                var sc = Vector128.Create(scale);
                (VectorMath.Sum4(a00, a01, a02, a03) * sc).Store(s + h * KeyBlock + j4);
                (VectorMath.Sum4(a10, a11, a12, a13) * sc).Store(s + (h + 1) * KeyBlock + j4);
                (VectorMath.Sum4(a20, a21, a22, a23) * sc).Store(s + (h + 2) * KeyBlock + j4);
                (VectorMath.Sum4(a30, a31, a32, a33) * sc).Store(s + (h + 3) * KeyBlock + j4);
            }
            for (; h < heads; h++)
            {
                float* qh = q + h * headDim;
                var d0 = Vector512<float>.Zero;
                var d1 = Vector512<float>.Zero;
                var d2 = Vector512<float>.Zero;
                var d3 = Vector512<float>.Zero;
                for (int d = 0; d < headDim; d += 16)
                {
                    var qv = Vector512.Load(qh + d);
                    d0 = Vector512.FusedMultiplyAdd(qv, Vector512.Load(k0 + d), d0);
                    d1 = Vector512.FusedMultiplyAdd(qv, Vector512.Load(k1 + d), d1);
                    d2 = Vector512.FusedMultiplyAdd(qv, Vector512.Load(k2 + d), d2);
                    d3 = Vector512.FusedMultiplyAdd(qv, Vector512.Load(k3 + d), d3);
                }
                (VectorMath.Sum4(d0, d1, d2, d3) * Vector128.Create(scale)).Store(s + h * KeyBlock + j4);
            }
        }
        for (int j = j4; j < block; j++)
        {
            float* key = k + (long)j * keyStride;
            for (int h = 0; h < heads; h++)
            {
                float* qh = q + h * headDim;
                var d0 = Vector512<float>.Zero;
                for (int d = 0; d < headDim; d += 16)
                {
                    d0 = Vector512.FusedMultiplyAdd(Vector512.Load(qh + d), Vector512.Load(key + d), d0);
                }
                s[h * KeyBlock + j] = Vector512.Sum(d0) * scale;
            }
        }
        for (int h = 0; h < heads; h++)
        {
            float* sh = s + h * KeyBlock;
            for (int j = block; j < KeyBlock; j++)
            {
                sh[j] = float.NegativeInfinity; // lanes past the block: the max ignores them
            }
            var lo = Vector512.Load(sh);
            var hi = Vector512.Load(sh + 16);
            float newMax = RaiseMax(m + h, l + h, a + h * valueDim, valueDim, MaxAcross(Vector512.Max(lo, hi)));
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
        // acc[h] += Σ_j p[h, j] v_j. Four heads x 64 value lanes in 16 registers: per key, 4 broadcasts and
        // 4 loads feed 16 FMAs; then the remaining heads 64 lanes at a time.
        int hv = 0;
        if (valueDim % 64 == 0)
        {
            for (; hv + 4 <= heads; hv += 4)
            {
                float* s0 = s + hv * KeyBlock, s1 = s0 + KeyBlock, s2 = s1 + KeyBlock, s3 = s2 + KeyBlock;
                for (int d = 0; d < valueDim; d += 64)
                {
                    float* o0 = a + hv * valueDim + d, o1 = o0 + valueDim, o2 = o1 + valueDim, o3 = o2 + valueDim;
                    Vector512<float> c00 = Vector512.Load(o0), c01 = Vector512.Load(o0 + 16), c02 = Vector512.Load(o0 + 32), c03 = Vector512.Load(o0 + 48);
                    Vector512<float> c10 = Vector512.Load(o1), c11 = Vector512.Load(o1 + 16), c12 = Vector512.Load(o1 + 32), c13 = Vector512.Load(o1 + 48);
                    Vector512<float> c20 = Vector512.Load(o2), c21 = Vector512.Load(o2 + 16), c22 = Vector512.Load(o2 + 32), c23 = Vector512.Load(o2 + 48);
                    Vector512<float> c30 = Vector512.Load(o3), c31 = Vector512.Load(o3 + 16), c32 = Vector512.Load(o3 + 32), c33 = Vector512.Load(o3 + 48);
                    for (int j = 0; j < block; j++)
                    {
                        float* vj = v + (long)j * valueStride + d;
                        var v0 = Vector512.Load(vj);
                        var v1 = Vector512.Load(vj + 16);
                        var v2 = Vector512.Load(vj + 32);
                        var v3 = Vector512.Load(vj + 48);
                        var p = Vector512.Create(s0[j]);
                        c00 = Vector512.FusedMultiplyAdd(p, v0, c00); c01 = Vector512.FusedMultiplyAdd(p, v1, c01);
                        c02 = Vector512.FusedMultiplyAdd(p, v2, c02); c03 = Vector512.FusedMultiplyAdd(p, v3, c03);
                        p = Vector512.Create(s1[j]);
                        c10 = Vector512.FusedMultiplyAdd(p, v0, c10); c11 = Vector512.FusedMultiplyAdd(p, v1, c11);
                        c12 = Vector512.FusedMultiplyAdd(p, v2, c12); c13 = Vector512.FusedMultiplyAdd(p, v3, c13);
                        p = Vector512.Create(s2[j]);
                        c20 = Vector512.FusedMultiplyAdd(p, v0, c20); c21 = Vector512.FusedMultiplyAdd(p, v1, c21);
                        c22 = Vector512.FusedMultiplyAdd(p, v2, c22); c23 = Vector512.FusedMultiplyAdd(p, v3, c23);
                        p = Vector512.Create(s3[j]);
                        c30 = Vector512.FusedMultiplyAdd(p, v0, c30); c31 = Vector512.FusedMultiplyAdd(p, v1, c31);
                        c32 = Vector512.FusedMultiplyAdd(p, v2, c32); c33 = Vector512.FusedMultiplyAdd(p, v3, c33);
                    }
                    c00.Store(o0); c01.Store(o0 + 16); c02.Store(o0 + 32); c03.Store(o0 + 48);
                    c10.Store(o1); c11.Store(o1 + 16); c12.Store(o1 + 32); c13.Store(o1 + 48);
                    c20.Store(o2); c21.Store(o2 + 16); c22.Store(o2 + 32); c23.Store(o2 + 48);
                    c30.Store(o3); c31.Store(o3 + 16); c32.Store(o3 + 32); c33.Store(o3 + 48);
                }
            }
        }
        for (int h = hv; h < heads; h++)
        {
            float* sh = s + h * KeyBlock;
            float* ah = a + h * valueDim;
            int d = 0;
            for (; d + 64 <= valueDim; d += 64)
            {
                var a0 = Vector512.Load(ah + d);
                var a1 = Vector512.Load(ah + d + 16);
                var a2 = Vector512.Load(ah + d + 32);
                var a3 = Vector512.Load(ah + d + 48);
                for (int j = 0; j < block; j++)
                {
                    var p = Vector512.Create(sh[j]);
                    float* vj = v + (long)j * valueStride + d;
                    a0 = Vector512.FusedMultiplyAdd(p, Vector512.Load(vj), a0);
                    a1 = Vector512.FusedMultiplyAdd(p, Vector512.Load(vj + 16), a1);
                    a2 = Vector512.FusedMultiplyAdd(p, Vector512.Load(vj + 32), a2);
                    a3 = Vector512.FusedMultiplyAdd(p, Vector512.Load(vj + 48), a3);
                }
                a0.Store(ah + d);
                a1.Store(ah + d + 16);
                a2.Store(ah + d + 32);
                a3.Store(ah + d + 48);
            }
            for (; d < valueDim; d += 16)
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

    /// <summary>
    /// Moves a head's running max to cover <paramref name="blockMax"/>: when it rises, the sum and the
    /// accumulator [valueDim] are rescaled by e^(old - new) (0 when nothing was seen yet). Returns the max.
    /// </summary>
    private static float RaiseMax(float* max, float* sum, float* acc, int valueDim, float blockMax)
    {
        float newMax = MathF.Max(*max, blockMax);
        if (newMax > *max)
        {
            float correction = float.IsNegativeInfinity(*max) ? 0f : MathF.Exp(*max - newMax);
            *sum *= correction;
            VectorMath.ScaleInto(acc, correction, acc, valueDim);
            *max = newMax;
        }
        return newMax;
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
