using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace MimoSharp.Tensors.Kernels;

/// <summary>
/// Element-wise and reduction kernels on float spans. Each is one body generic over the vector width
/// (<see cref="ISimd{TVec}"/>: Vector512, Vector256, Vector128) plus a scalar loop, run on the path
/// <paramref name="isa"/> names (Auto: the widest this machine has).
/// </summary>
public static unsafe class VectorMath
{
    /// <summary>Dot product of two equal-length spans.</summary>
    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b, KernelIsa isa = KernelIsa.Auto)
    {
        if (a.Length != b.Length)
        {
            throw new ArgumentException($"lengths differ: {a.Length} vs {b.Length}");
        }
        fixed (float* pa = a, pb = b)
        {
            return Dot(pa, pb, a.Length, KernelIsas.Resolve(isa));
        }
    }

    internal static float Dot(float* a, float* b, int n, KernelIsa isa) => isa switch
    {
        KernelIsa.Vector512 => Dot<Vector512<float>, Simd512>(a, b, n),
        KernelIsa.Vector256 => Dot<Vector256<float>, Simd256>(a, b, n),
        KernelIsa.Vector128 => Dot<Vector128<float>, Simd128>(a, b, n),
        _ => DotScalar(a, b, n),
    };

    /// <summary>Two accumulators (two FMA chains), then one vector at a time, then a scalar tail.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Dot<TVec, TW>(float* a, float* b, int n) where TVec : struct where TW : struct, ISimd<TVec>
    {
        int i = 0, w = TW.Count;
        float sum = 0;
        if (n >= w)
        {
            var acc0 = TW.Zero;
            var acc1 = TW.Zero;
            for (; i + 2 * w <= n; i += 2 * w)
            {
                acc0 = TW.Fma(TW.Load(a + i), TW.Load(b + i), acc0);
                acc1 = TW.Fma(TW.Load(a + i + w), TW.Load(b + i + w), acc1);
            }
            for (; i + w <= n; i += w)
            {
                acc0 = TW.Fma(TW.Load(a + i), TW.Load(b + i), acc0);
            }
            sum = TW.Sum(TW.Add(acc0, acc1));
        }
        for (; i < n; i++)
        {
            sum += a[i] * b[i];
        }
        return sum;
    }

    internal static float DotScalar(float* a, float* b, int n)
    {
        float sum = 0;
        for (int i = 0; i < n; i++)
        {
            sum += a[i] * b[i];
        }
        return sum;
    }

    private static float MaxAbsTail(float* x, int start, int n, float max)
    {
        for (int i = start; i < n; i++)
        {
            max = MathF.Max(max, MathF.Abs(x[i]));
        }
        return max;
    }

    internal static float ScaleIntoMaxAbs(ReadOnlySpan<float> x, float alpha, Span<float> y, KernelIsa isa = KernelIsa.Auto)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(y.Length, x.Length);
        fixed (float* px = x, py = y)
        {
            return ScaleIntoMaxAbs(px, alpha, py, x.Length, KernelIsas.Resolve(isa));
        }
    }

    /// <summary>
    /// y[i] = alpha * x[i], returning max |y[i]| (0 for n == 0): exact on every path (a max does not round); a NaN in y
    /// may or may not win over the finite values, as the vector max orders it. With alpha = 1, max |x| (and a copy).
    /// </summary>
    internal static float ScaleIntoMaxAbs(float* x, float alpha, float* y, int n, KernelIsa isa)
    {
        switch (isa)
        {
            case KernelIsa.Vector512: return ScaleIntoMaxAbs<Vector512<float>, Simd512>(x, alpha, y, n);
            case KernelIsa.Vector256: return ScaleIntoMaxAbs<Vector256<float>, Simd256>(x, alpha, y, n);
            case KernelIsa.Vector128: return ScaleIntoMaxAbs<Vector128<float>, Simd128>(x, alpha, y, n);
            default:
                ScaleInto(x, alpha, y, n, isa);
                return MaxAbsTail(y, 0, n, 0f);
        }
    }

    /// <summary>Two vectors per iteration into two maxima, so the max chain (4 cycles a link) does not bound the loop.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float ScaleIntoMaxAbs<TVec, TW>(float* x, float alpha, float* y, int n) where TVec : struct where TW : struct, ISimd<TVec>
    {
        int i = 0;
        var a = TW.Splat(alpha);
        var max0 = TW.Zero;
        var max1 = TW.Zero;
        for (; i + 2 * TW.Count <= n; i += 2 * TW.Count)
        {
            var v0 = TW.Multiply(TW.Load(x + i), a);
            var v1 = TW.Multiply(TW.Load(x + i + TW.Count), a);
            TW.Store(v0, y + i);
            TW.Store(v1, y + i + TW.Count);
            max0 = TW.Max(max0, TW.Max(v0, TW.Subtract(TW.Zero, v0)));
            max1 = TW.Max(max1, TW.Max(v1, TW.Subtract(TW.Zero, v1)));
        }
        int tail = i;
        for (; i < n; i++)
        {
            y[i] = x[i] * alpha;
        }
        return MaxAbsTail(y, tail, n, TW.MaxAcross(TW.Max(max0, max1)));
    }

    /// <summary>y[i] = alpha * x[i] (x and y may be the same).</summary>
    internal static void ScaleInto(float* x, float alpha, float* y, int n, KernelIsa isa)
    {
        switch (isa)
        {
            case KernelIsa.Vector512: ScaleInto<Vector512<float>, Simd512>(x, alpha, y, n); break;
            case KernelIsa.Vector256: ScaleInto<Vector256<float>, Simd256>(x, alpha, y, n); break;
            case KernelIsa.Vector128: ScaleInto<Vector128<float>, Simd128>(x, alpha, y, n); break;
            default:
                for (int i = 0; i < n; i++)
                {
                    y[i] = x[i] * alpha;
                }
                break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ScaleInto<TVec, TW>(float* x, float alpha, float* y, int n) where TVec : struct where TW : struct, ISimd<TVec>
    {
        int i = 0;
        var a = TW.Splat(alpha);
        for (; i + TW.Count <= n; i += TW.Count)
        {
            TW.Store(TW.Multiply(TW.Load(x + i), a), y + i);
        }
        for (; i < n; i++)
        {
            y[i] = x[i] * alpha;
        }
    }

    /// <summary>y += alpha * x.</summary>
    public static void MultiplyAdd(ReadOnlySpan<float> x, float alpha, Span<float> y, KernelIsa isa = KernelIsa.Auto)
    {
        if (x.Length != y.Length)
        {
            throw new ArgumentException($"lengths differ: {x.Length} vs {y.Length}");
        }
        fixed (float* px = x, py = y)
        {
            MultiplyAdd(px, alpha, py, x.Length, KernelIsas.Resolve(isa));
        }
    }

    internal static void MultiplyAdd(float* x, float alpha, float* y, int n, KernelIsa isa)
    {
        switch (isa)
        {
            case KernelIsa.Vector512: MultiplyAdd<Vector512<float>, Simd512>(x, alpha, y, n); break;
            case KernelIsa.Vector256: MultiplyAdd<Vector256<float>, Simd256>(x, alpha, y, n); break;
            case KernelIsa.Vector128: MultiplyAdd<Vector128<float>, Simd128>(x, alpha, y, n); break;
            default:
                for (int i = 0; i < n; i++)
                {
                    y[i] += alpha * x[i];
                }
                break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void MultiplyAdd<TVec, TW>(float* x, float alpha, float* y, int n) where TVec : struct where TW : struct, ISimd<TVec>
    {
        int i = 0;
        var a = TW.Splat(alpha);
        for (; i + TW.Count <= n; i += TW.Count)
        {
            TW.Store(TW.Fma(TW.Load(x + i), a, TW.Load(y + i)), y + i);
        }
        for (; i < n; i++)
        {
            y[i] += alpha * x[i];
        }
    }

    /// <summary>y += x.</summary>
    public static void Add(ReadOnlySpan<float> x, Span<float> y, KernelIsa isa = KernelIsa.Auto) => MultiplyAdd(x, 1f, y, isa);

    /// <summary>x *= alpha.</summary>
    public static void Scale(Span<float> x, float alpha, KernelIsa isa = KernelIsa.Auto)
    {
        fixed (float* p = x)
        {
            ScaleInto(p, alpha, p, x.Length, KernelIsas.Resolve(isa));
        }
    }

    /// <summary>
    /// RMSNorm: y = w * (x / sqrt(mean(x^2) + eps)), no "+1" on w. x and y may be the same span.
    /// </summary>
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> y, KernelIsa isa = KernelIsa.Auto)
    {
        if (x.Length != weight.Length || y.Length != x.Length)
        {
            throw new ArgumentException($"RmsNorm lengths differ: x {x.Length}, weight {weight.Length}, y {y.Length}");
        }
        isa = KernelIsas.Resolve(isa);
        fixed (float* px = x, pw = weight, py = y)
        {
            float sumSquares = Dot(px, px, x.Length, isa);
            ScaleByWeight(px, pw, 1f / MathF.Sqrt(sumSquares / x.Length + eps), py, x.Length, isa);
        }
    }

    /// <summary>
    /// The residual step between sublayers, fused: x += delta, then y = RmsNorm(x) with <paramref name="weight"/>.
    /// One pass adds and sums the squares, one writes y (instead of three passes).
    /// </summary>
    public static void AddRmsNorm(ReadOnlySpan<float> delta, Span<float> x, ReadOnlySpan<float> weight, float eps, Span<float> y, KernelIsa isa = KernelIsa.Auto)
    {
        if (delta.Length != x.Length || weight.Length != x.Length || y.Length != x.Length)
        {
            throw new ArgumentException($"AddRmsNorm lengths differ: delta {delta.Length}, x {x.Length}, weight {weight.Length}, y {y.Length}");
        }
        isa = KernelIsas.Resolve(isa);
        int n = x.Length;
        fixed (float* pd = delta, px = x, pw = weight, py = y)
        {
            float sumSquares = isa switch
            {
                KernelIsa.Vector512 => AddSumSquares<Vector512<float>, Simd512>(pd, px, n),
                KernelIsa.Vector256 => AddSumSquares<Vector256<float>, Simd256>(pd, px, n),
                KernelIsa.Vector128 => AddSumSquares<Vector128<float>, Simd128>(pd, px, n),
                _ => AddSumSquaresScalar(pd, px, 0, n, 0),
            };
            ScaleByWeight(px, pw, 1f / MathF.Sqrt(sumSquares / n + eps), py, n, isa);
        }
    }

    /// <summary>x += delta; returns Σ x².</summary>
    private static float AddSumSquares<TVec, TW>(float* delta, float* x, int n) where TVec : struct where TW : struct, ISimd<TVec>
    {
        int i = 0;
        float sumSquares = 0;
        if (n >= TW.Count)
        {
            var acc = TW.Zero;
            for (; i + TW.Count <= n; i += TW.Count)
            {
                var v = TW.Add(TW.Load(x + i), TW.Load(delta + i));
                TW.Store(v, x + i);
                acc = TW.Fma(v, v, acc);
            }
            sumSquares = TW.Sum(acc);
        }
        return AddSumSquaresScalar(delta, x, i, n, sumSquares);
    }

    private static float AddSumSquaresScalar(float* delta, float* x, int i, int n, float sumSquares)
    {
        for (; i < n; i++)
        {
            float v = x[i] + delta[i];
            x[i] = v;
            sumSquares += v * v;
        }
        return sumSquares;
    }

    /// <summary>y = w * (x * scale).</summary>
    private static void ScaleByWeight(float* x, float* w, float scale, float* y, int n, KernelIsa isa)
    {
        int i = isa switch
        {
            KernelIsa.Vector512 => ScaleByWeight<Vector512<float>, Simd512>(x, w, scale, y, n),
            KernelIsa.Vector256 => ScaleByWeight<Vector256<float>, Simd256>(x, w, scale, y, n),
            KernelIsa.Vector128 => ScaleByWeight<Vector128<float>, Simd128>(x, w, scale, y, n),
            _ => 0,
        };
        for (; i < n; i++)
        {
            y[i] = w[i] * (x[i] * scale);
        }
    }

    /// <summary>The vector part of <see cref="ScaleByWeight(float*, float*, float, float*, int, KernelIsa)"/>; returns where the scalar tail starts.</summary>
    private static int ScaleByWeight<TVec, TW>(float* x, float* w, float scale, float* y, int n) where TVec : struct where TW : struct, ISimd<TVec>
    {
        int i = 0;
        var s = TW.Splat(scale);
        for (; i + TW.Count <= n; i += TW.Count)
        {
            TW.Store(TW.Multiply(TW.Load(w + i), TW.Multiply(TW.Load(x + i), s)), y + i);
        }
        return i;
    }

    /// <summary>SwiGLU in place: gate[i] = silu(gate[i]) * up[i], silu(z) = z * sigmoid(z) = z / (1 + e^-z).</summary>
    public static void SwiGlu(Span<float> gate, ReadOnlySpan<float> up, KernelIsa isa = KernelIsa.Auto)
    {
        if (gate.Length != up.Length)
        {
            throw new ArgumentException($"lengths differ: {gate.Length} vs {up.Length}");
        }
        fixed (float* g = gate, u = up)
        {
            int n = gate.Length;
            int i = KernelIsas.Resolve(isa) switch
            {
                KernelIsa.Vector512 => SwiGlu<Vector512<float>, Simd512>(g, u, n),
                KernelIsa.Vector256 => SwiGlu<Vector256<float>, Simd256>(g, u, n),
                KernelIsa.Vector128 => SwiGlu<Vector128<float>, Simd128>(g, u, n),
                _ => 0,
            };
            for (; i < n; i++)
            {
                float z = g[i];
                g[i] = z / (1f + ExpScalar(-z)) * u[i];
            }
        }
    }

    private static int SwiGlu<TVec, TW>(float* g, float* u, int n) where TVec : struct where TW : struct, ISimd<TVec>
    {
        int i = 0;
        var one = TW.Splat(1f);
        for (; i + TW.Count <= n; i += TW.Count)
        {
            var z = TW.Load(g + i);
            TW.Store(TW.Multiply(TW.Divide(z, TW.Add(one, Exp<TVec, TW>(TW.Subtract(TW.Zero, z)))), TW.Load(u + i)), g + i);
        }
        return i;
    }

    /// <summary>
    /// Index of the largest value, the first on ties; NaN values are passed over (as `x[i] &gt; x[best]`
    /// would), except that a NaN at index 0 is returned when nothing compares greater than it (nothing does).
    /// </summary>
    public static int ArgMax(ReadOnlySpan<float> x, KernelIsa isa = KernelIsa.Auto)
    {
        if (x.IsEmpty || float.IsNaN(x[0]))
        {
            return 0;
        }
        fixed (float* p = x)
        {
            // Per lane: the largest value so far and its first index (strictly greater replaces: NaN never does).
            (int best, int i) = KernelIsas.Resolve(isa) switch
            {
                KernelIsa.Vector512 => ArgMax512(p, x.Length),
                KernelIsa.Vector256 => ArgMax256(p, x.Length),
                KernelIsa.Vector128 => ArgMax128(p, x.Length),
                _ => (0, 1),
            };
            for (; i < x.Length; i++)
            {
                if (p[i] > p[best])
                {
                    best = i;
                }
            }
            return best;
        }
    }

    // ArgMax needs integer lanes beside the float ones (an index per lane), which ISimd does not carry:
    // one body per width, each a few lines.
    private static (int Best, int Next) ArgMax512(float* p, int n)
    {
        if (n < 16)
        {
            return (0, 1);
        }
        // Lanes start at -inf with index 0 (p[0] is not NaN), so a NaN is never a lane's best.
        var bestValue = Vector512.Create(float.NegativeInfinity);
        var bestIndex = Vector512<int>.Zero;
        var index = Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        int i = 0;
        for (; i + 16 <= n; i += 16, index += Vector512.Create(16))
        {
            var v = Vector512.Load(p + i);
            var greater = Vector512.GreaterThan(v, bestValue);
            bestValue = Vector512.ConditionalSelect(greater, v, bestValue);
            bestIndex = Vector512.ConditionalSelect(greater.AsInt32(), index, bestIndex);
        }
        return (FirstOfMax(p, (int*)&bestIndex, 16), i);
    }

    private static (int Best, int Next) ArgMax256(float* p, int n)
    {
        if (n < 8)
        {
            return (0, 1);
        }
        // Lanes start at -inf with index 0 (p[0] is not NaN), so a NaN is never a lane's best.
        var bestValue = Vector256.Create(float.NegativeInfinity);
        var bestIndex = Vector256<int>.Zero;
        var index = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7);
        int i = 0;
        for (; i + 8 <= n; i += 8, index += Vector256.Create(8))
        {
            var v = Vector256.Load(p + i);
            var greater = Vector256.GreaterThan(v, bestValue);
            bestValue = Vector256.ConditionalSelect(greater, v, bestValue);
            bestIndex = Vector256.ConditionalSelect(greater.AsInt32(), index, bestIndex);
        }
        return (FirstOfMax(p, (int*)&bestIndex, 8), i);
    }

    private static (int Best, int Next) ArgMax128(float* p, int n)
    {
        if (n < 4)
        {
            return (0, 1);
        }
        // Lanes start at -inf with index 0 (p[0] is not NaN), so a NaN is never a lane's best.
        var bestValue = Vector128.Create(float.NegativeInfinity);
        var bestIndex = Vector128<int>.Zero;
        var index = Vector128.Create(0, 1, 2, 3);
        int i = 0;
        for (; i + 4 <= n; i += 4, index += Vector128.Create(4))
        {
            var v = Vector128.Load(p + i);
            var greater = Vector128.GreaterThan(v, bestValue);
            bestValue = Vector128.ConditionalSelect(greater, v, bestValue);
            bestIndex = Vector128.ConditionalSelect(greater.AsInt32(), index, bestIndex);
        }
        return (FirstOfMax(p, (int*)&bestIndex, 4), i);
    }

    /// <summary>Across the lanes' candidates: the largest value, the smallest index on ties (NaN lanes lose: index 0 is not NaN here).</summary>
    private static int FirstOfMax(float* p, int* candidates, int lanes)
    {
        int best = 0;
        for (int l = 0; l < lanes; l++)
        {
            int c = candidates[l];
            if (p[c] > p[best] || (p[c] == p[best] && c < best))
            {
                best = c;
            }
        }
        return best;
    }

    /// <summary>y[i] = e^x[i] (within 2 ulp of the true value; saturating as <see cref="ExpScalar"/>).</summary>
    public static void Exp(ReadOnlySpan<float> x, Span<float> y, KernelIsa isa = KernelIsa.Auto)
    {
        if (y.Length < x.Length)
        {
            throw new ArgumentException($"Exp: destination holds {y.Length} values, source {x.Length}");
        }
        fixed (float* px = x, py = y)
        {
            int n = x.Length;
            int i = KernelIsas.Resolve(isa) switch
            {
                KernelIsa.Vector512 => ExpInto<Vector512<float>, Simd512>(px, py, n),
                KernelIsa.Vector256 => ExpInto<Vector256<float>, Simd256>(px, py, n),
                KernelIsa.Vector128 => ExpInto<Vector128<float>, Simd128>(px, py, n),
                _ => 0,
            };
            for (; i < n; i++)
            {
                py[i] = ExpScalar(px[i]);
            }
        }
    }

    private static int ExpInto<TVec, TW>(float* x, float* y, int n) where TVec : struct where TW : struct, ISimd<TVec>
    {
        int i = 0;
        for (; i + TW.Count <= n; i += TW.Count)
        {
            TW.Store(Exp<TVec, TW>(TW.Load(x + i)), y + i);
        }
        return i;
    }

    /// <summary>
    /// Softmax in place: x[i] = e^(x[i] - max) / Σ e^(x[j] - max). Empty input is left alone.
    /// </summary>
    public static void Softmax(Span<float> x, KernelIsa isa = KernelIsa.Auto)
    {
        if (x.IsEmpty)
        {
            return;
        }
        isa = KernelIsas.Resolve(isa);
        fixed (float* p = x)
        {
            int n = x.Length;
            float max = float.NegativeInfinity;
            for (int i = 0; i < n; i++)
            {
                max = MathF.Max(max, p[i]);
            }
            float sum = isa switch
            {
                KernelIsa.Vector512 => ExpShiftSum<Vector512<float>, Simd512>(p, n, max),
                KernelIsa.Vector256 => ExpShiftSum<Vector256<float>, Simd256>(p, n, max),
                KernelIsa.Vector128 => ExpShiftSum<Vector128<float>, Simd128>(p, n, max),
                _ => ExpShiftSumScalar(p, 0, n, max, 0),
            };
            ScaleInto(p, 1f / sum, p, n, isa);
        }
    }

    /// <summary>x[i] = e^(x[i] - max); returns Σ x[i].</summary>
    private static float ExpShiftSum<TVec, TW>(float* x, int n, float max) where TVec : struct where TW : struct, ISimd<TVec>
    {
        int i = 0;
        var shift = TW.Splat(max);
        var acc = TW.Zero;
        for (; i + TW.Count <= n; i += TW.Count)
        {
            var e = Exp<TVec, TW>(TW.Subtract(TW.Load(x + i), shift));
            TW.Store(e, x + i);
            acc = TW.Add(acc, e);
        }
        return ExpShiftSumScalar(x, i, n, max, TW.Sum(acc));
    }

    private static float ExpShiftSumScalar(float* x, int i, int n, float max, float sum)
    {
        for (; i < n; i++)
        {
            float e = ExpScalar(x[i] - max);
            x[i] = e;
            sum += e;
        }
        return sum;
    }

    /// <summary>
    /// Rotate-half rotary embedding of one head's first 2·half dims: with a = x[i], b = x[i + half],
    /// x[i] = a cos[i] - b sin[i], x[i + half] = b cos[i] + a sin[i] (i &lt; half).
    /// </summary>
    public static void RotateHalf(Span<float> x, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, KernelIsa isa = KernelIsa.Auto)
    {
        int half = cos.Length;
        if (sin.Length != half || x.Length < 2 * half)
        {
            throw new ArgumentException($"RotateHalf: {x.Length} values against cos {cos.Length} / sin {sin.Length} (needs 2 · half values and equal tables)");
        }
        fixed (float* p = x, c = cos, s = sin)
        {
            int i = KernelIsas.Resolve(isa) switch
            {
                KernelIsa.Vector512 => RotateHalf<Vector512<float>, Simd512>(p, c, s, half),
                KernelIsa.Vector256 => RotateHalf<Vector256<float>, Simd256>(p, c, s, half),
                KernelIsa.Vector128 => RotateHalf<Vector128<float>, Simd128>(p, c, s, half),
                _ => 0,
            };
            for (; i < half; i++)
            {
                float a = p[i], b = p[i + half];
                p[i] = a * c[i] - b * s[i];
                p[i + half] = b * c[i] + a * s[i];
            }
        }
    }

    private static int RotateHalf<TVec, TW>(float* x, float* cos, float* sin, int half) where TVec : struct where TW : struct, ISimd<TVec>
    {
        int i = 0;
        for (; i + TW.Count <= half; i += TW.Count)
        {
            var a = TW.Load(x + i);
            var b = TW.Load(x + i + half);
            var c = TW.Load(cos + i);
            var s = TW.Load(sin + i);
            // Products rounded as the scalar a·c - b·s (no fused multiply-add): every path gives the same bits.
            TW.Store(TW.Subtract(TW.Multiply(a, c), TW.Multiply(b, s)), x + i);
            TW.Store(TW.Add(TW.Multiply(b, c), TW.Multiply(a, s)), x + i + half);
        }
        return i;
    }

    /// <summary>e^x with the vector paths' clamp: saturates near 2.4e38 instead of overflowing to infinity.</summary>
    internal static float ExpScalar(float x) => MathF.Exp(Math.Clamp(x, ExpLowest, ExpHighest));

    private const float ExpLowest = -87.33654f, ExpHighest = 88.37626f;

    /// <summary>
    /// e^x per lane: x = n·ln2 + r with |r| ≤ ln2/2 (Cody-Waite split of ln2), e^r by a degree-6
    /// polynomial (the Cephes expf coefficients), 2^n built in the exponent bits. Inputs are clamped to
    /// [-87.3, 88.37] (n in -126..127): below, the result stays near the smallest normal (softmax terms that
    /// small vanish against the max's 1 anyway); above, it saturates near 2.4e38 instead of overflowing.
    /// Vector512.Exp exists but runs a scalar loop on .NET 10 (slower than MathF.Exp); this is ~10x faster.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static TVec Exp<TVec, TW>(TVec x) where TVec : struct where TW : struct, ISimd<TVec>
    {
        x = TW.Min(TW.Max(x, TW.Splat(ExpLowest)), TW.Splat(ExpHighest));
        var n = TW.Round(TW.Multiply(x, TW.Splat(1.44269504f)));
        var r = TW.Fma(n, TW.Splat(-0.693359375f), x);
        r = TW.Fma(n, TW.Splat(2.12194440e-4f), r);
        var p = TW.Splat(1.9875691500e-4f);
        p = TW.Fma(p, r, TW.Splat(1.3981999507e-3f));
        p = TW.Fma(p, r, TW.Splat(8.3334519073e-3f));
        p = TW.Fma(p, r, TW.Splat(4.1665795894e-2f));
        p = TW.Fma(p, r, TW.Splat(1.6666665459e-1f));
        p = TW.Fma(p, r, TW.Splat(5.0000001201e-1f));
        p = TW.Fma(p, TW.Multiply(r, r), TW.Add(r, TW.Splat(1f)));
        return TW.Multiply(p, TW.Pow2(n));
    }
}
