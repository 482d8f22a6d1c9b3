using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MimoSharp.Tensors.Kernels;

/// <summary>Element-wise and reduction kernels on float spans. Vector512 / Vector256 paths chosen at run time.</summary>
public static unsafe class VectorMath
{
    /// <summary>Dot product of two equal-length spans.</summary>
    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length)
        {
            throw new ArgumentException($"lengths differ: {a.Length} vs {b.Length}");
        }
        fixed (float* pa = a, pb = b)
        {
            return Dot(pa, pb, a.Length);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Dot(float* a, float* b, int n)
    {
        int i = 0;
        float sum = 0;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            var acc0 = Vector512<float>.Zero;
            var acc1 = Vector512<float>.Zero;
            for (; i + 32 <= n; i += 32)
            {
                acc0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), acc0);
                acc1 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i + 16), Vector512.Load(b + i + 16), acc1);
            }
            for (; i + 16 <= n; i += 16)
            {
                acc0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), acc0);
            }
            sum = Vector512.Sum(acc0 + acc1);
        }
        else if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            var acc0 = Vector256<float>.Zero;
            var acc1 = Vector256<float>.Zero;
            for (; i + 16 <= n; i += 16)
            {
                acc0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), acc0);
                acc1 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i + 8), Vector256.Load(b + i + 8), acc1);
            }
            for (; i + 8 <= n; i += 8)
            {
                acc0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), acc0);
            }
            sum = Vector256.Sum(acc0 + acc1);
        }
        for (; i < n; i++)
        {
            sum += a[i] * b[i];
        }
        return sum;
    }

    /// <summary>y[i] = alpha * x[i].</summary>
    internal static void ScaleInto(float* x, float alpha, float* y, int n)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var a = Vector512.Create(alpha);
            for (; i + 16 <= n; i += 16)
            {
                (Vector512.Load(x + i) * a).Store(y + i);
            }
        }
        for (; i < n; i++)
        {
            y[i] = x[i] * alpha;
        }
    }

    /// <summary>y += alpha * x.</summary>
    public static void MultiplyAdd(ReadOnlySpan<float> x, float alpha, Span<float> y)
    {
        if (x.Length != y.Length)
        {
            throw new ArgumentException($"lengths differ: {x.Length} vs {y.Length}");
        }
        fixed (float* px = x, py = y)
        {
            MultiplyAdd(px, alpha, py, x.Length);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void MultiplyAdd(float* x, float alpha, float* y, int n)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var va = Vector512.Create(alpha);
            for (; i + 16 <= n; i += 16)
            {
                Vector512.FusedMultiplyAdd(Vector512.Load(x + i), va, Vector512.Load(y + i)).Store(y + i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var va = Vector256.Create(alpha);
            for (; i + 8 <= n; i += 8)
            {
                Vector256.FusedMultiplyAdd(Vector256.Load(x + i), va, Vector256.Load(y + i)).Store(y + i);
            }
        }
        for (; i < n; i++)
        {
            y[i] += alpha * x[i];
        }
    }

    /// <summary>y += x.</summary>
    public static void Add(ReadOnlySpan<float> x, Span<float> y) => MultiplyAdd(x, 1f, y);

    /// <summary>x *= alpha.</summary>
    public static void Scale(Span<float> x, float alpha)
    {
        fixed (float* p = x)
        {
            ScaleInto(p, alpha, p, x.Length);
        }
    }

    /// <summary>Converts n bfloat16 values to float32.</summary>
    internal static void Bf16ToSingle(ushort* src, float* dst, int n)
    {
        int i = 0;
        if (Avx512F.IsSupported)
        {
            for (; i + 16 <= n; i += 16)
            {
                Vector512<int> wide = Avx512F.ConvertToVector512Int32(Vector256.Load(src + i));
                Vector512.ShiftLeft(wide, 16).AsSingle().Store(dst + i);
            }
        }
        else if (Avx2.IsSupported)
        {
            for (; i + 8 <= n; i += 8)
            {
                Vector256<int> wide = Avx2.ConvertToVector256Int32(Vector128.Load(src + i));
                Vector256.ShiftLeft(wide, 16).AsSingle().Store(dst + i);
            }
        }
        for (; i < n; i++)
        {
            dst[i] = BitConverter.Int32BitsToSingle(src[i] << 16);
        }
    }

    /// <summary>
    /// RMSNorm: y = w * (x / sqrt(mean(x^2) + eps)), no "+1" on w. x and y may be the same span.
    /// </summary>
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> y)
    {
        if (x.Length != weight.Length || y.Length != x.Length)
        {
            throw new ArgumentException($"RmsNorm lengths differ: x {x.Length}, weight {weight.Length}, y {y.Length}");
        }
        float sumSquares;
        fixed (float* px = x)
        {
            sumSquares = Dot(px, px, x.Length);
        }
        float inv = 1f / MathF.Sqrt(sumSquares / x.Length + eps);
        fixed (float* px = x, pw = weight, py = y)
        {
            ScaleByWeight(px, pw, inv, py, x.Length);
        }
    }

    /// <summary>
    /// The residual step between sublayers, fused: x += delta, then y = RmsNorm(x) with <paramref name="weight"/>.
    /// One pass adds and sums the squares, one writes y (instead of three passes).
    /// </summary>
    public static void AddRmsNorm(ReadOnlySpan<float> delta, Span<float> x, ReadOnlySpan<float> weight, float eps, Span<float> y)
    {
        if (delta.Length != x.Length || weight.Length != x.Length || y.Length != x.Length)
        {
            throw new ArgumentException($"AddRmsNorm lengths differ: delta {delta.Length}, x {x.Length}, weight {weight.Length}, y {y.Length}");
        }
        int n = x.Length;
        fixed (float* pd = delta, px = x, pw = weight, py = y)
        {
            int i = 0;
            float sumSquares = 0;
            if (Vector512.IsHardwareAccelerated && n >= 16)
            {
                var acc = Vector512<float>.Zero;
                for (; i + 16 <= n; i += 16)
                {
                    var v = Vector512.Load(px + i) + Vector512.Load(pd + i);
                    v.Store(px + i);
                    acc = Vector512.FusedMultiplyAdd(v, v, acc);
                }
                sumSquares = Vector512.Sum(acc);
            }
            else if (Vector256.IsHardwareAccelerated && n >= 8)
            {
                var acc = Vector256<float>.Zero;
                for (; i + 8 <= n; i += 8)
                {
                    var v = Vector256.Load(px + i) + Vector256.Load(pd + i);
                    v.Store(px + i);
                    acc = Vector256.FusedMultiplyAdd(v, v, acc);
                }
                sumSquares = Vector256.Sum(acc);
            }
            for (; i < n; i++)
            {
                float v = px[i] + pd[i];
                px[i] = v;
                sumSquares += v * v;
            }
            ScaleByWeight(px, pw, 1f / MathF.Sqrt(sumSquares / n + eps), py, n);
        }
    }

    /// <summary>y = w * (x * scale).</summary>
    private static void ScaleByWeight(float* x, float* w, float scale, float* y, int n)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var s = Vector512.Create(scale);
            for (; i + 16 <= n; i += 16)
            {
                (Vector512.Load(w + i) * (Vector512.Load(x + i) * s)).Store(y + i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var s = Vector256.Create(scale);
            for (; i + 8 <= n; i += 8)
            {
                (Vector256.Load(w + i) * (Vector256.Load(x + i) * s)).Store(y + i);
            }
        }
        for (; i < n; i++)
        {
            y[i] = w[i] * (x[i] * scale);
        }
    }

    /// <summary>SwiGLU in place: gate[i] = silu(gate[i]) * up[i], silu(z) = z * sigmoid(z).</summary>
    public static void SwiGlu(Span<float> gate, ReadOnlySpan<float> up)
    {
        if (gate.Length != up.Length)
        {
            throw new ArgumentException($"lengths differ: {gate.Length} vs {up.Length}");
        }
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            fixed (float* g = gate, u = up)
            {
                var one = Vector512.Create(1f);
                for (; i + 16 <= gate.Length; i += 16)
                {
                    var z = Vector512.Load(g + i);
                    (z / (one + Exp(-z)) * Vector512.Load(u + i)).Store(g + i);
                }
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            fixed (float* g = gate, u = up)
            {
                var one = Vector256.Create(1f);
                for (; i + 8 <= gate.Length; i += 8)
                {
                    var z = Vector256.Load(g + i);
                    (z / (one + Exp(-z)) * Vector256.Load(u + i)).Store(g + i);
                }
            }
        }
        for (; i < gate.Length; i++)
        {
            float z = gate[i];
            gate[i] = z / (1f + ExpScalar(-z)) * up[i];
        }
    }

    /// <summary>Index of the largest value (first on ties).</summary>
    public static int ArgMax(ReadOnlySpan<float> x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++)
        {
            if (x[i] > x[best])
            {
                best = i;
            }
        }
        return best;
    }

    /// <summary>y[i] = e^x[i] (Vector512 path: <see cref="Exp(Vector512{float})"/>; within 2 ulp of the true value).</summary>
    public static void Exp(ReadOnlySpan<float> x, Span<float> y)
    {
        if (y.Length < x.Length)
        {
            throw new ArgumentException($"Exp: destination holds {y.Length} values, source {x.Length}");
        }
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            fixed (float* px = x, py = y)
            {
                for (; i + 16 <= x.Length; i += 16)
                {
                    Exp(Vector512.Load(px + i)).Store(py + i);
                }
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            fixed (float* px = x, py = y)
            {
                for (; i + 8 <= x.Length; i += 8)
                {
                    Exp(Vector256.Load(px + i)).Store(py + i);
                }
            }
        }
        for (; i < x.Length; i++)
        {
            y[i] = ExpScalar(x[i]);
        }
    }

    /// <summary>e^x with the vector paths' clamp: saturates near 2.4e38 instead of overflowing to infinity.</summary>
    internal static float ExpScalar(float x) => MathF.Exp(Math.Clamp(x, ExpLowest, ExpHighest));

    private const float ExpLowest = -87.33654f, ExpHighest = 88.37626f;

    /// <summary>
    /// e^x, 16 lanes: x = n·ln2 + r with |r| ≤ ln2/2 (Cody-Waite split of ln2), e^r by a degree-6
    /// polynomial (the Cephes expf coefficients), 2^n built in the exponent bits. Inputs are clamped to
    /// [-87.3, 88.37] (n in -126..127): below, the result stays near the smallest normal (softmax terms that
    /// small vanish against the max's 1 anyway); above, it saturates near 2.4e38 instead of overflowing.
    /// Vector512.Exp exists but runs a scalar loop on .NET 10 (slower than MathF.Exp); this is ~10x faster.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Exp(Vector512<float> x)
    {
        x = Vector512.Min(Vector512.Max(x, Vector512.Create(ExpLowest)), Vector512.Create(ExpHighest));
        var n = Vector512.Round(x * Vector512.Create(1.44269504f));
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-0.693359375f), x);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(2.12194440e-4f), r);
        var p = Vector512.Create(1.9875691500e-4f);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.3981999507e-3f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(8.3334519073e-3f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(4.1665795894e-2f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.6666665459e-1f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(5.0000001201e-1f));
        p = Vector512.FusedMultiplyAdd(p, r * r, r + Vector512<float>.One);
        var twoToN = Vector512.ShiftLeft(Vector512.ConvertToInt32(n) + Vector512.Create(127), 23).AsSingle();
        return p * twoToN;
    }

    /// <summary>e^x, 8 lanes: the same algorithm as <see cref="Exp(Vector512{float})"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> Exp(Vector256<float> x)
    {
        x = Vector256.Min(Vector256.Max(x, Vector256.Create(ExpLowest)), Vector256.Create(ExpHighest));
        var n = Vector256.Round(x * Vector256.Create(1.44269504f));
        var r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-0.693359375f), x);
        r = Vector256.FusedMultiplyAdd(n, Vector256.Create(2.12194440e-4f), r);
        var p = Vector256.Create(1.9875691500e-4f);
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.3981999507e-3f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(8.3334519073e-3f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(4.1665795894e-2f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.6666665459e-1f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(5.0000001201e-1f));
        p = Vector256.FusedMultiplyAdd(p, r * r, r + Vector256<float>.One);
        var twoToN = Vector256.ShiftLeft(Vector256.ConvertToInt32(n) + Vector256.Create(127), 23).AsSingle();
        return p * twoToN;
    }

    /// <summary>[Σ a, Σ b, Σ c, Σ d] of four vectors: halve each to 4 lanes, then one 4x4 transpose-add.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector128<float> Sum4(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d)
    {
        Vector256<float> a8 = a.GetLower() + a.GetUpper(), b8 = b.GetLower() + b.GetUpper();
        Vector256<float> c8 = c.GetLower() + c.GetUpper(), d8 = d.GetLower() + d.GetUpper();
        Vector128<float> a4 = a8.GetLower() + a8.GetUpper(), b4 = b8.GetLower() + b8.GetUpper();
        Vector128<float> c4 = c8.GetLower() + c8.GetUpper(), d4 = d8.GetLower() + d8.GetUpper();
        // [a0+a2, b0+b2, a1+a3, b1+b3] and the same for c, d; then fold the halves.
        Vector128<float> ab = Sse.UnpackLow(a4, b4) + Sse.UnpackHigh(a4, b4);
        Vector128<float> cd = Sse.UnpackLow(c4, d4) + Sse.UnpackHigh(c4, d4);
        return Sse.MoveLowToHigh(ab, cd) + Sse.MoveHighToLow(cd, ab);
    }

}
