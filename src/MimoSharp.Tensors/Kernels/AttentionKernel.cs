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
        int count, float scale, Span<float> max, Span<float> sum, Span<float> acc, Span<float> scratch, KernelIsa isa = KernelIsa.Auto)
    {
        isa = KernelIsas.Resolve(isa);
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
            int lanes = isa switch { KernelIsa.Vector512 => 16, KernelIsa.Vector256 => 8, KernelIsa.Vector128 => 4, _ => 0 };
            // The vector block needs head dims that are whole vectors; otherwise the per-key block (still vectorized dot products).
            KernelIsa path = lanes > 0 && headDim % lanes == 0 && valueDim % lanes == 0 ? isa : KernelIsa.Scalar;
            for (int start = 0; start < count; start += KeyBlock)
            {
                int block = Math.Min(KeyBlock, count - start);
                float* kb = k + (long)start * keyStride, vb = v + (long)start * valueStride;
                switch (path)
                {
                    case KernelIsa.Vector512:
                        BlockVector<Vector512<float>, Simd512>(q, heads, headDim, kb, keyStride, vb, valueStride, valueDim, block, scale, m, l, a, s);
                        break;
                    case KernelIsa.Vector256:
                        BlockVector<Vector256<float>, Simd256>(q, heads, headDim, kb, keyStride, vb, valueStride, valueDim, block, scale, m, l, a, s);
                        break;
                    case KernelIsa.Vector128:
                        BlockVector<Vector128<float>, Simd128>(q, heads, headDim, kb, keyStride, vb, valueStride, valueDim, block, scale, m, l, a, s);
                        break;
                    default:
                        Block(q, heads, headDim, kb, keyStride, vb, valueStride, valueDim, block, scale, m, l, a, s, isa);
                        break;
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block(float* q, int heads, int headDim, float* k, int keyStride, float* v, int valueStride, int valueDim,
        int block, float scale, float* m, float* l, float* a, float* s, KernelIsa isa)
    {
        // scores s[h, j]: key j is read once for every head of the group.
        for (int j = 0; j < block; j++)
        {
            float* key = k + (long)j * keyStride;
            for (int h = 0; h < heads; h++)
            {
                s[h * KeyBlock + j] = VectorMath.Dot(q + h * headDim, key, headDim, isa) * scale;
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
            float newMax = RaiseMax(m + h, l + h, a + h * valueDim, valueDim, blockMax, isa);
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
                VectorMath.MultiplyAdd(value, s[h * KeyBlock + j], a + h * valueDim, valueDim, isa);
            }
        }
    }

    /// <summary>
    /// The same block with vector registers (head dims multiples of the lane count, as MiMo's 192 / 128):
    /// scores in register tiles of 4 keys x 4 heads (32-register machines) or x 2 heads (16 registers),
    /// the block's exponentials a vector at a time, and the values added in accumulator tiles of
    /// 4 vectors x 4 heads (or 2), so each key and value row is loaded once per tile of heads.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BlockVector<TVec, TW>(float* q, int heads, int headDim, float* k, int keyStride, float* v, int valueStride, int valueDim,
        int block, float scale, float* m, float* l, float* a, float* s) where TVec : struct where TW : struct, ISimd<TVec>
    {
        int lanes = TW.Count;
        int j4 = 0;
        for (; j4 + 4 <= block; j4 += 4)
        {
            float* k0 = k + (long)j4 * keyStride;
            int h = 0;
            if (TW.WideRegisterFile)
            {
                for (; h + 4 <= heads; h += 4)
                {
                    ScoreTile4x4<TVec, TW>(q + h * headDim, headDim, k0, keyStride, scale, s + h * KeyBlock + j4);
                }
            }
            for (; h + 2 <= heads; h += 2)
            {
                ScoreTile2x4<TVec, TW>(q + h * headDim, headDim, k0, keyStride, scale, s + h * KeyBlock + j4);
            }
            for (; h < heads; h++)
            {
                float* qh = q + h * headDim;
                float* k1 = k0 + keyStride, k2 = k1 + keyStride, k3 = k2 + keyStride;
                var d0 = TW.Zero;
                var d1 = TW.Zero;
                var d2 = TW.Zero;
                var d3 = TW.Zero;
                for (int d = 0; d < headDim; d += lanes)
                {
                    var qv = TW.Load(qh + d);
                    d0 = TW.Fma(qv, TW.Load(k0 + d), d0);
                    d1 = TW.Fma(qv, TW.Load(k1 + d), d1);
                    d2 = TW.Fma(qv, TW.Load(k2 + d), d2);
                    d3 = TW.Fma(qv, TW.Load(k3 + d), d3);
                }
                (TW.Sum4(d0, d1, d2, d3) * Vector128.Create(scale)).Store(s + h * KeyBlock + j4);
            }
        }
        for (int j = j4; j < block; j++)
        {
            float* key = k + (long)j * keyStride;
            for (int h = 0; h < heads; h++)
            {
                float* qh = q + h * headDim;
                var d0 = TW.Zero;
                for (int d = 0; d < headDim; d += lanes)
                {
                    d0 = TW.Fma(TW.Load(qh + d), TW.Load(key + d), d0);
                }
                s[h * KeyBlock + j] = TW.Sum(d0) * scale;
            }
        }
        for (int h = 0; h < heads; h++)
        {
            float* sh = s + h * KeyBlock;
            for (int j = block; j < KeyBlock; j++)
            {
                sh[j] = float.NegativeInfinity; // lanes past the block: the max ignores them
            }
            var blockMax = TW.Load(sh);
            for (int j = lanes; j < KeyBlock; j += lanes)
            {
                blockMax = TW.Max(blockMax, TW.Load(sh + j));
            }
            float newMax = RaiseMax(m + h, l + h, a + h * valueDim, valueDim, TW.MaxAcross(blockMax), IsaOf<TVec, TW>());
            var shift = TW.Splat(newMax);
            for (int j = 0; j < KeyBlock; j += lanes)
            {
                TW.Store(VectorMath.Exp<TVec, TW>(TW.Subtract(TW.Load(sh + j), shift)), sh + j);
            }
            float blockSum = 0;
            for (int j = 0; j < block; j++)
            {
                blockSum += sh[j]; // lanes past the block (clamped -inf) are left out
            }
            l[h] += blockSum;
        }
        // acc[h] += Σ_j p[h, j] v_j, in tiles of heads x 4 vectors: per key, one broadcast per head and
        // 4 loads feed 4 FMAs per head.
        int hv = 0;
        int span = 4 * lanes;
        if (valueDim % span == 0)
        {
            if (TW.WideRegisterFile)
            {
                for (; hv + 4 <= heads; hv += 4)
                {
                    for (int d = 0; d < valueDim; d += span)
                    {
                        ValueTile4x4<TVec, TW>(s + hv * KeyBlock, a + hv * valueDim + d, valueDim, v + d, valueStride, block);
                    }
                }
            }
            for (; hv + 2 <= heads; hv += 2)
            {
                for (int d = 0; d < valueDim; d += span)
                {
                    ValueTile2x4<TVec, TW>(s + hv * KeyBlock, a + hv * valueDim + d, valueDim, v + d, valueStride, block);
                }
            }
        }
        for (int h = hv; h < heads; h++)
        {
            float* sh = s + h * KeyBlock;
            float* ah = a + h * valueDim;
            int d = 0;
            for (; d + span <= valueDim; d += span)
            {
                var a0 = TW.Load(ah + d);
                var a1 = TW.Load(ah + d + lanes);
                var a2 = TW.Load(ah + d + 2 * lanes);
                var a3 = TW.Load(ah + d + 3 * lanes);
                for (int j = 0; j < block; j++)
                {
                    var p = TW.Splat(sh[j]);
                    float* vj = v + (long)j * valueStride + d;
                    a0 = TW.Fma(p, TW.Load(vj), a0);
                    a1 = TW.Fma(p, TW.Load(vj + lanes), a1);
                    a2 = TW.Fma(p, TW.Load(vj + 2 * lanes), a2);
                    a3 = TW.Fma(p, TW.Load(vj + 3 * lanes), a3);
                }
                TW.Store(a0, ah + d);
                TW.Store(a1, ah + d + lanes);
                TW.Store(a2, ah + d + 2 * lanes);
                TW.Store(a3, ah + d + 3 * lanes);
            }
            for (; d < valueDim; d += lanes)
            {
                var acc = TW.Load(ah + d);
                for (int j = 0; j < block; j++)
                {
                    acc = TW.Fma(TW.Splat(sh[j]), TW.Load(v + (long)j * valueStride + d), acc);
                }
                TW.Store(acc, ah + d);
            }
        }
    }

    /// <summary>4 heads x 4 keys register tile: per vector of dims, 8 loads feed 16 FMAs. s[h · KeyBlock + j] for the tile.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScoreTile4x4<TVec, TW>(float* q0, int headDim, float* k0, int keyStride, float scale, float* s) where TVec : struct where TW : struct, ISimd<TVec>
    {
        float* k1 = k0 + keyStride, k2 = k1 + keyStride, k3 = k2 + keyStride;
        float* q1 = q0 + headDim, q2 = q1 + headDim, q3 = q2 + headDim;
        TVec a00 = TW.Zero, a01 = TW.Zero, a02 = TW.Zero, a03 = TW.Zero;
        TVec a10 = TW.Zero, a11 = TW.Zero, a12 = TW.Zero, a13 = TW.Zero;
        TVec a20 = TW.Zero, a21 = TW.Zero, a22 = TW.Zero, a23 = TW.Zero;
        TVec a30 = TW.Zero, a31 = TW.Zero, a32 = TW.Zero, a33 = TW.Zero;
        for (int d = 0; d < headDim; d += TW.Count)
        {
            var kv0 = TW.Load(k0 + d);
            var kv1 = TW.Load(k1 + d);
            var kv2 = TW.Load(k2 + d);
            var kv3 = TW.Load(k3 + d);
            var qv = TW.Load(q0 + d);
            a00 = TW.Fma(qv, kv0, a00); a01 = TW.Fma(qv, kv1, a01); a02 = TW.Fma(qv, kv2, a02); a03 = TW.Fma(qv, kv3, a03);
            qv = TW.Load(q1 + d);
            a10 = TW.Fma(qv, kv0, a10); a11 = TW.Fma(qv, kv1, a11); a12 = TW.Fma(qv, kv2, a12); a13 = TW.Fma(qv, kv3, a13);
            qv = TW.Load(q2 + d);
            a20 = TW.Fma(qv, kv0, a20); a21 = TW.Fma(qv, kv1, a21); a22 = TW.Fma(qv, kv2, a22); a23 = TW.Fma(qv, kv3, a23);
            qv = TW.Load(q3 + d);
            a30 = TW.Fma(qv, kv0, a30); a31 = TW.Fma(qv, kv1, a31); a32 = TW.Fma(qv, kv2, a32); a33 = TW.Fma(qv, kv3, a33);
        }
        var sc = Vector128.Create(scale);
        (TW.Sum4(a00, a01, a02, a03) * sc).Store(s);
        (TW.Sum4(a10, a11, a12, a13) * sc).Store(s + KeyBlock);
        (TW.Sum4(a20, a21, a22, a23) * sc).Store(s + 2 * KeyBlock);
        (TW.Sum4(a30, a31, a32, a33) * sc).Store(s + 3 * KeyBlock);
    }

    /// <summary>2 heads x 4 keys register tile (8 accumulators: fits 16 registers).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScoreTile2x4<TVec, TW>(float* q0, int headDim, float* k0, int keyStride, float scale, float* s) where TVec : struct where TW : struct, ISimd<TVec>
    {
        float* k1 = k0 + keyStride, k2 = k1 + keyStride, k3 = k2 + keyStride;
        float* q1 = q0 + headDim;
        TVec a00 = TW.Zero, a01 = TW.Zero, a02 = TW.Zero, a03 = TW.Zero;
        TVec a10 = TW.Zero, a11 = TW.Zero, a12 = TW.Zero, a13 = TW.Zero;
        for (int d = 0; d < headDim; d += TW.Count)
        {
            var kv0 = TW.Load(k0 + d);
            var kv1 = TW.Load(k1 + d);
            var kv2 = TW.Load(k2 + d);
            var kv3 = TW.Load(k3 + d);
            var qv = TW.Load(q0 + d);
            a00 = TW.Fma(qv, kv0, a00); a01 = TW.Fma(qv, kv1, a01); a02 = TW.Fma(qv, kv2, a02); a03 = TW.Fma(qv, kv3, a03);
            qv = TW.Load(q1 + d);
            a10 = TW.Fma(qv, kv0, a10); a11 = TW.Fma(qv, kv1, a11); a12 = TW.Fma(qv, kv2, a12); a13 = TW.Fma(qv, kv3, a13);
        }
        var sc = Vector128.Create(scale);
        (TW.Sum4(a00, a01, a02, a03) * sc).Store(s);
        (TW.Sum4(a10, a11, a12, a13) * sc).Store(s + KeyBlock);
    }

    /// <summary>acc of 4 heads x 4 vectors (16 registers) += p[h, j] v_j over the block's keys.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ValueTile4x4<TVec, TW>(float* s0, float* o0, int valueDim, float* v, int valueStride, int block) where TVec : struct where TW : struct, ISimd<TVec>
    {
        int w = TW.Count;
        float* s1 = s0 + KeyBlock, s2 = s1 + KeyBlock, s3 = s2 + KeyBlock;
        float* o1 = o0 + valueDim, o2 = o1 + valueDim, o3 = o2 + valueDim;
        TVec c00 = TW.Load(o0), c01 = TW.Load(o0 + w), c02 = TW.Load(o0 + 2 * w), c03 = TW.Load(o0 + 3 * w);
        TVec c10 = TW.Load(o1), c11 = TW.Load(o1 + w), c12 = TW.Load(o1 + 2 * w), c13 = TW.Load(o1 + 3 * w);
        TVec c20 = TW.Load(o2), c21 = TW.Load(o2 + w), c22 = TW.Load(o2 + 2 * w), c23 = TW.Load(o2 + 3 * w);
        TVec c30 = TW.Load(o3), c31 = TW.Load(o3 + w), c32 = TW.Load(o3 + 2 * w), c33 = TW.Load(o3 + 3 * w);
        for (int j = 0; j < block; j++)
        {
            float* vj = v + (long)j * valueStride;
            var v0 = TW.Load(vj);
            var v1 = TW.Load(vj + w);
            var v2 = TW.Load(vj + 2 * w);
            var v3 = TW.Load(vj + 3 * w);
            var p = TW.Splat(s0[j]);
            c00 = TW.Fma(p, v0, c00); c01 = TW.Fma(p, v1, c01); c02 = TW.Fma(p, v2, c02); c03 = TW.Fma(p, v3, c03);
            p = TW.Splat(s1[j]);
            c10 = TW.Fma(p, v0, c10); c11 = TW.Fma(p, v1, c11); c12 = TW.Fma(p, v2, c12); c13 = TW.Fma(p, v3, c13);
            p = TW.Splat(s2[j]);
            c20 = TW.Fma(p, v0, c20); c21 = TW.Fma(p, v1, c21); c22 = TW.Fma(p, v2, c22); c23 = TW.Fma(p, v3, c23);
            p = TW.Splat(s3[j]);
            c30 = TW.Fma(p, v0, c30); c31 = TW.Fma(p, v1, c31); c32 = TW.Fma(p, v2, c32); c33 = TW.Fma(p, v3, c33);
        }
        TW.Store(c00, o0); TW.Store(c01, o0 + w); TW.Store(c02, o0 + 2 * w); TW.Store(c03, o0 + 3 * w);
        TW.Store(c10, o1); TW.Store(c11, o1 + w); TW.Store(c12, o1 + 2 * w); TW.Store(c13, o1 + 3 * w);
        TW.Store(c20, o2); TW.Store(c21, o2 + w); TW.Store(c22, o2 + 2 * w); TW.Store(c23, o2 + 3 * w);
        TW.Store(c30, o3); TW.Store(c31, o3 + w); TW.Store(c32, o3 + 2 * w); TW.Store(c33, o3 + 3 * w);
    }

    /// <summary>acc of 2 heads x 4 vectors (8 registers) += p[h, j] v_j over the block's keys.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ValueTile2x4<TVec, TW>(float* s0, float* o0, int valueDim, float* v, int valueStride, int block) where TVec : struct where TW : struct, ISimd<TVec>
    {
        int w = TW.Count;
        float* s1 = s0 + KeyBlock;
        float* o1 = o0 + valueDim;
        TVec c00 = TW.Load(o0), c01 = TW.Load(o0 + w), c02 = TW.Load(o0 + 2 * w), c03 = TW.Load(o0 + 3 * w);
        TVec c10 = TW.Load(o1), c11 = TW.Load(o1 + w), c12 = TW.Load(o1 + 2 * w), c13 = TW.Load(o1 + 3 * w);
        for (int j = 0; j < block; j++)
        {
            float* vj = v + (long)j * valueStride;
            var v0 = TW.Load(vj);
            var v1 = TW.Load(vj + w);
            var v2 = TW.Load(vj + 2 * w);
            var v3 = TW.Load(vj + 3 * w);
            var p = TW.Splat(s0[j]);
            c00 = TW.Fma(p, v0, c00); c01 = TW.Fma(p, v1, c01); c02 = TW.Fma(p, v2, c02); c03 = TW.Fma(p, v3, c03);
            p = TW.Splat(s1[j]);
            c10 = TW.Fma(p, v0, c10); c11 = TW.Fma(p, v1, c11); c12 = TW.Fma(p, v2, c12); c13 = TW.Fma(p, v3, c13);
        }
        TW.Store(c00, o0); TW.Store(c01, o0 + w); TW.Store(c02, o0 + 2 * w); TW.Store(c03, o0 + 3 * w);
        TW.Store(c10, o1); TW.Store(c11, o1 + w); TW.Store(c12, o1 + 2 * w); TW.Store(c13, o1 + 3 * w);
    }

    /// <summary>
    /// Moves a head's running max to cover <paramref name="blockMax"/>: when it rises, the sum and the
    /// accumulator [valueDim] are rescaled by e^(old - new) (0 when nothing was seen yet). Returns the max.
    /// </summary>
    private static float RaiseMax(float* max, float* sum, float* acc, int valueDim, float blockMax, KernelIsa isa)
    {
        float newMax = MathF.Max(*max, blockMax);
        if (newMax > *max)
        {
            float correction = float.IsNegativeInfinity(*max) ? 0f : MathF.Exp(*max - newMax);
            *sum *= correction;
            VectorMath.ScaleInto(acc, correction, acc, valueDim, isa);
            *max = newMax;
        }
        return newMax;
    }

    /// <summary>The path a width runs on (a JIT-time constant).</summary>
    private static KernelIsa IsaOf<TVec, TW>() where TVec : struct where TW : struct, ISimd<TVec> =>
        TW.Count == 16 ? KernelIsa.Vector512 : TW.Count == 8 ? KernelIsa.Vector256 : KernelIsa.Vector128;

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
