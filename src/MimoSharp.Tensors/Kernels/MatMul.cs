using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using MimoSharp.Tensors.Threading;

namespace MimoSharp.Tensors.Kernels;

/// <summary>Which instruction set the kernels use; tests force the narrower paths to compare them.</summary>
public enum KernelIsa
{
    Scalar,
    Vector256,
    Vector512,
}

/// <summary>
/// y = x · Wᵀ for a weight matrix W [rows, cols] in its stored format (F32, BF16, F16, FP8 with block
/// scales, Q8_0, Q4_0): x [n, cols], y [n, rows]. Rows are split across the worker pool in groups of four.
/// Q8_0 / Q4_0 decode widens their codes to float in registers and applies each group's scale once per
/// 32 weights (activations stay float: no activation quantization).
/// Decode (n == 1) reads each weight once, dequantizing FP8/BF16 in registers: an FP8 code b is
/// sign-extended to int32, shifted left 20 and masked, which lays its sign, exponent and mantissa
/// into a float32 whose value is decode(b)·2^-120 (subnormal codes land on float subnormals, still
/// exact). x is prescaled by 2^100 and each block's scale by 2^20, so no per-weight multiply remains
/// and the products stay in the normal float range.
/// Batches (n > 1) dequantize four rows at a time into a per-thread buffer and reuse them for every
/// token, so each weight is still read once per call.
/// </summary>
public static unsafe class MatMul
{
    private const float XPrescale = 1.2676506e30f; // 2^100
    private const int Fp8Mask = unchecked((int)0x87F00000);
    private const int RowGroup = 4;
    /// <summary>Up to this many tokens, each weight vector is decoded once in registers and used for every token.</summary>
    private const int MaxFusedTokens = 8;

    private static KernelIsa s_isa = DetectIsa();

    [ThreadStatic] private static float* t_scratch;
    [ThreadStatic] private static int t_scratchLength;
    [ThreadStatic] private static Job? t_job;
    [ThreadStatic] private static float* t_prescaled;
    [ThreadStatic] private static int t_prescaledLength;

    /// <summary>The widest path this machine supports.</summary>
    public static KernelIsa DetectIsa() =>
        Avx512F.IsSupported && Avx512BW.IsSupported ? KernelIsa.Vector512
        : Avx2.IsSupported && Fma.IsSupported ? KernelIsa.Vector256
        : KernelIsa.Scalar;

    /// <summary>The path in use. Setting a path wider than the machine supports throws.</summary>
    public static KernelIsa Isa
    {
        get => s_isa;
        set
        {
            if (value > DetectIsa())
            {
                throw new NotSupportedException($"{value} is not supported on this machine (widest: {DetectIsa()})");
            }
            s_isa = value;
        }
    }

    /// <summary>y [n, W.Rows] = x [n, W.Cols] · Wᵀ.</summary>
    public static void Multiply(WeightMatrix weight, ReadOnlySpan<float> x, Span<float> y, int n, WorkerPool? pool = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        if (x.Length < (long)n * weight.Cols || y.Length < (long)n * weight.Rows)
        {
            throw new ArgumentException(
                $"MatMul of [{n}, {weight.Cols}] by W[{weight.Rows}, {weight.Cols}]ᵀ needs x of {(long)n * weight.Cols} and y of {(long)n * weight.Rows} floats; got {x.Length} and {y.Length}");
        }
        if (n == 0)
        {
            return;
        }
        pool ??= WorkerPool.Shared;
        var job = t_job ??= new Job();
        // Scales are pinned or live in the weight's storage; job.Weight keeps both alive during the call.
        float* scales = weight.KernelScalePointer;
        fixed (float* px = x, py = y)
        {
            job.Weight = weight;
            job.X = px;
            job.Y = py;
            job.N = n;
            job.Scales = scales;
            job.Isa = s_isa;
            job.Fused = n == 1 && s_isa != KernelIsa.Scalar && weight.DType is DType.F8E4M3 or DType.BF16 or DType.I8 or DType.Q4;
            job.FusedMulti = n > 1 && n <= MaxFusedTokens && s_isa == KernelIsa.Vector512 && weight.DType is DType.F8E4M3 or DType.BF16;
            float* prescaled = null;
            if ((job.Fused || job.FusedMulti) && weight.DType == DType.F8E4M3)
            {
                // The calling thread's buffer, kept between calls: no allocation per product.
                int length = checked(n * weight.Cols);
                prescaled = PrescaleBuffer(length);
                VectorMath.ScaleInto(px, XPrescale, prescaled, length);
            }
            job.XPrescaled = prescaled;
            try
            {
                int groups = (weight.Rows + RowGroup - 1) / RowGroup;
                pool.Run(job, groups, pool.GrainFor(groups, minimum: 4));
            }
            finally
            {
                job.Weight = null;
            }
        }
    }

    private sealed class Job : IParallelJob
    {
        public WeightMatrix? Weight;
        public float* X, Y, XPrescaled, Scales;
        public int N;
        public bool Fused;
        public bool FusedMulti;
        public KernelIsa Isa;

        public void Execute(int start, int end)
        {
            WeightMatrix w = Weight!;
            int rowStart = start * RowGroup;
            int rowEnd = Math.Min(end * RowGroup, w.Rows);
            if (Fused)
            {
                ExecuteFused(w, rowStart, rowEnd);
            }
            else if (FusedMulti)
            {
                for (int r = rowStart; r < rowEnd; r++)
                {
                    if (w.DType == DType.F8E4M3)
                    {
                        Fp8RowTokensV512(w, r, N, XPrescaled, w.KernelScaleRow(r, Scales), Y);
                    }
                    else
                    {
                        Bf16RowTokensV512(w, r, N, X, Y);
                    }
                }
            }
            else
            {
                ExecuteGeneric(w, rowStart, rowEnd);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]

        private void ExecuteFused(WeightMatrix w, int rowStart, int rowEnd)
        {
            int cols = w.Cols;
            int r = rowStart;
            if (Isa == KernelIsa.Vector512)
            {
                for (; r + RowGroup <= rowEnd; r += RowGroup)
                {
                    switch (w.DType)
                    {
                        case DType.F8E4M3:
                            Fp8Rows4V512(w, r, XPrescaled, Scales, Y + r);
                            break;
                        case DType.I8:
                            Q8Rows4V512(w, r, X, Scales, Y + r);
                            break;
                        case DType.Q4:
                            Q4Rows4V512(w, r, X, Scales, Y + r);
                            break;
                        default:
                            Bf16Rows4V512((ushort*)w.RowPointer(r), cols, X, Y + r);
                            break;
                    }
                }
            }
            else if (w.DType is DType.F8E4M3 or DType.BF16)
            {
                // AVX2 machines: four rows share each load of x and give four independent FMA chains.
                for (; r + RowGroup <= rowEnd; r += RowGroup)
                {
                    if (w.DType == DType.F8E4M3)
                    {
                        Fp8Rows4V256(w, r, XPrescaled, Scales, Y + r);
                    }
                    else
                    {
                        Bf16Rows4V256((ushort*)w.RowPointer(r), cols, X, Y + r);
                    }
                }
            }
            for (; r < rowEnd; r++)
            {
                Y[r] = w.DType switch
                {
                    DType.F8E4M3 => Fp8RowV256(w.RowPointer(r), cols, w.BlockCols, XPrescaled, w.KernelScaleRow(r, Scales)),
                    DType.I8 => Q8RowV256((sbyte*)w.RowPointer(r), cols, X, w.KernelScaleRow(r, Scales)),
                    DType.Q4 => Q4RowV256(w.RowPointer(r), cols, X, w.KernelScaleRow(r, Scales)),
                    _ => Bf16RowV256((ushort*)w.RowPointer(r), cols, X),
                };
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]

        private void ExecuteGeneric(WeightMatrix w, int rowStart, int rowEnd)
        {
            int cols = w.Cols;
            int rowCount = rowEnd - rowStart;
            float* rows;
            if (w.DType == DType.F32)
            {
                rows = (float*)w.RowPointer(rowStart);
            }
            else
            {
                rows = Scratch(rowCount * cols);
                for (int i = 0; i < rowCount; i++)
                {
                    w.DequantizeRowUnchecked(rowStart + i, rows + (long)i * cols);
                }
            }
            int outStride = w.Rows;
            for (int t = 0; t < N; t += Isa == KernelIsa.Vector512 && t + 4 <= N ? 4 : Isa == KernelIsa.Vector256 && t + 2 <= N ? 2 : 1)
            {
                float* xt = X + (long)t * cols;
                float* yt = Y + (long)t * outStride + rowStart;
                int i = 0;
                if (Isa == KernelIsa.Vector256 && t + 2 <= N)
                {
                    // Two tokens against four rows: 8 accumulators (AVX2 has 16 registers).
                    for (; i + 4 <= rowCount; i += 4)
                    {
                        Dot4x2V256(rows + (long)i * cols, cols, xt, yt + i, outStride);
                    }
                    for (; i < rowCount; i++)
                    {
                        yt[i] = VectorMath.Dot(rows + (long)i * cols, xt, cols);
                        yt[outStride + i] = VectorMath.Dot(rows + (long)i * cols, xt + cols, cols);
                    }
                    continue;
                }
                if (Isa == KernelIsa.Vector512)
                {
                    if (t + 4 <= N)
                    {
                        // Four tokens at once against four rows: 16 accumulators, half the loads per FMA.
                        for (; i + 4 <= rowCount; i += 4)
                        {
                            Dot4x4V512(rows + (long)i * cols, cols, xt, yt + i, outStride);
                        }
                        for (; i < rowCount; i++)
                        {
                            for (int u = 0; u < 4; u++)
                            {
                                yt[(long)u * outStride + i] = VectorMath.Dot(rows + (long)i * cols, xt + (long)u * cols, cols);
                            }
                        }
                        continue;
                    }
                    for (; i + 4 <= rowCount; i += 4)
                    {
                        Dot4V512(rows + (long)i * cols, cols, xt, yt + i);
                    }
                }
                for (; i < rowCount; i++)
                {
                    yt[i] = Isa == KernelIsa.Scalar ? DotScalar(rows + (long)i * cols, xt, cols) : VectorMath.Dot(rows + (long)i * cols, xt, cols);
                }
            }
        }
    }

    /// <summary>The calling thread's buffer for the FP8 kernels' prescaled activations.</summary>
    private static float* PrescaleBuffer(int length) => Grow(ref t_prescaled, ref t_prescaledLength, length);

    /// <summary>The calling thread's buffer for dequantized rows.</summary>
    private static float* Scratch(int length) => Grow(ref t_scratch, ref t_scratchLength, length);

    /// <summary>A per-thread buffer of at least <paramref name="length"/> floats, kept between calls (grown, never shrunk).</summary>
    private static float* Grow(ref float* buffer, ref int capacity, int length)
    {
        if (capacity < length)
        {
            if (buffer != null)
            {
                NativeMemory.AlignedFree(buffer);
            }
            buffer = (float*)NativeMemory.AlignedAlloc((nuint)length * sizeof(float), 64);
            capacity = length;
        }
        return buffer;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]

    private static float DotScalar(float* a, float* b, int n)
    {
        float sum = 0;
        for (int i = 0; i < n; i++)
        {
            sum += a[i] * b[i];
        }
        return sum;
    }

    /// <summary>16 FP8 codes as floats of value decode(b) · 2^-120 (see the class summary).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> DecodeFp8V512(byte* p) =>
        (Vector512.ShiftLeft(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)p)), 20) & Vector512.Create(Fp8Mask)).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> DecodeFp8V256(byte* p) =>
        (Vector256.ShiftLeft(Avx2.ConvertToVector256Int32((sbyte*)p), 20) & Vector256.Create(Fp8Mask)).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float DecodeFp8Scalar(byte b) => BitConverter.Int32BitsToSingle(((sbyte)b << 20) & Fp8Mask);

    /// <summary>Four FP8 rows r..r+3 against the prescaled x; y[0..3] = results.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Fp8Rows4V512(WeightMatrix w, int r, float* xs, float* scales, float* y)
    {
        int cols = w.Cols, blockCols = w.BlockCols;
        byte* p0 = w.RowPointer(r);
        byte* p1 = p0 + cols, p2 = p1 + cols, p3 = p2 + cols;
        float* s0 = w.KernelScaleRow(r, scales), s1 = w.KernelScaleRow(r + 1, scales);
        float* s2 = w.KernelScaleRow(r + 2, scales), s3 = w.KernelScaleRow(r + 3, scales);
        var acc0 = Vector512<float>.Zero;
        var acc1 = Vector512<float>.Zero;
        var acc2 = Vector512<float>.Zero;
        var acc3 = Vector512<float>.Zero;
        float tail0 = 0, tail1 = 0, tail2 = 0, tail3 = 0;
        for (int b = 0, start = 0; start < cols; b++, start += blockCols)
        {
            int end = Math.Min(start + blockCols, cols);
            var b0 = Vector512<float>.Zero;
            var b1 = Vector512<float>.Zero;
            var b2 = Vector512<float>.Zero;
            var b3 = Vector512<float>.Zero;
            int c = start;
            for (; c + 16 <= end; c += 16)
            {
                // The next row group follows these four rows in memory (4 · cols bytes): fetch one line
                // of it per 64 bytes consumed, so it is in cache when we get there, page boundaries included.
                Sse.Prefetch0(p0 + 4 * cols + 4 * c);
                var xv = Vector512.Load(xs + c);
                b0 = Vector512.FusedMultiplyAdd(DecodeFp8V512(p0 + c), xv, b0);
                b1 = Vector512.FusedMultiplyAdd(DecodeFp8V512(p1 + c), xv, b1);
                b2 = Vector512.FusedMultiplyAdd(DecodeFp8V512(p2 + c), xv, b2);
                b3 = Vector512.FusedMultiplyAdd(DecodeFp8V512(p3 + c), xv, b3);
            }
            if (c < end)
            {
                float t0 = 0, t1 = 0, t2 = 0, t3 = 0;
                for (; c < end; c++)
                {
                    float xc = xs[c];
                    t0 += DecodeFp8Scalar(p0[c]) * xc;
                    t1 += DecodeFp8Scalar(p1[c]) * xc;
                    t2 += DecodeFp8Scalar(p2[c]) * xc;
                    t3 += DecodeFp8Scalar(p3[c]) * xc;
                }
                tail0 += t0 * s0[b];
                tail1 += t1 * s1[b];
                tail2 += t2 * s2[b];
                tail3 += t3 * s3[b];
            }
            acc0 = Vector512.FusedMultiplyAdd(b0, Vector512.Create(s0[b]), acc0);
            acc1 = Vector512.FusedMultiplyAdd(b1, Vector512.Create(s1[b]), acc1);
            acc2 = Vector512.FusedMultiplyAdd(b2, Vector512.Create(s2[b]), acc2);
            acc3 = Vector512.FusedMultiplyAdd(b3, Vector512.Create(s3[b]), acc3);
        }
        (VectorMath.Sum4(acc0, acc1, acc2, acc3) + Vector128.Create(tail0, tail1, tail2, tail3)).Store(y);
    }

    /// <summary>Four FP8 rows r..r+3 against the prescaled x with Vector256 (AVX2): y[0..3].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Fp8Rows4V256(WeightMatrix w, int r, float* xs, float* scales, float* y)
    {
        int cols = w.Cols, blockCols = w.BlockCols;
        byte* p0 = w.RowPointer(r);
        byte* p1 = p0 + cols, p2 = p1 + cols, p3 = p2 + cols;
        float* s0 = w.KernelScaleRow(r, scales), s1 = w.KernelScaleRow(r + 1, scales);
        float* s2 = w.KernelScaleRow(r + 2, scales), s3 = w.KernelScaleRow(r + 3, scales);
        var acc0 = Vector256<float>.Zero;
        var acc1 = Vector256<float>.Zero;
        var acc2 = Vector256<float>.Zero;
        var acc3 = Vector256<float>.Zero;
        float tail0 = 0, tail1 = 0, tail2 = 0, tail3 = 0;
        for (int b = 0, start = 0; start < cols; b++, start += blockCols)
        {
            int end = Math.Min(start + blockCols, cols);
            var b0 = Vector256<float>.Zero;
            var b1 = Vector256<float>.Zero;
            var b2 = Vector256<float>.Zero;
            var b3 = Vector256<float>.Zero;
            int c = start;
            for (; c + 8 <= end; c += 8)
            {
                var xv = Vector256.Load(xs + c);
                b0 = Vector256.FusedMultiplyAdd(DecodeFp8V256(p0 + c), xv, b0);
                b1 = Vector256.FusedMultiplyAdd(DecodeFp8V256(p1 + c), xv, b1);
                b2 = Vector256.FusedMultiplyAdd(DecodeFp8V256(p2 + c), xv, b2);
                b3 = Vector256.FusedMultiplyAdd(DecodeFp8V256(p3 + c), xv, b3);
            }
            if (c < end)
            {
                float t0 = 0, t1 = 0, t2 = 0, t3 = 0;
                for (; c < end; c++)
                {
                    float xc = xs[c];
                    t0 += DecodeFp8Scalar(p0[c]) * xc;
                    t1 += DecodeFp8Scalar(p1[c]) * xc;
                    t2 += DecodeFp8Scalar(p2[c]) * xc;
                    t3 += DecodeFp8Scalar(p3[c]) * xc;
                }
                tail0 += t0 * s0[b];
                tail1 += t1 * s1[b];
                tail2 += t2 * s2[b];
                tail3 += t3 * s3[b];
            }
            acc0 = Vector256.FusedMultiplyAdd(b0, Vector256.Create(s0[b]), acc0);
            acc1 = Vector256.FusedMultiplyAdd(b1, Vector256.Create(s1[b]), acc1);
            acc2 = Vector256.FusedMultiplyAdd(b2, Vector256.Create(s2[b]), acc2);
            acc3 = Vector256.FusedMultiplyAdd(b3, Vector256.Create(s3[b]), acc3);
        }
        y[0] = Vector256.Sum(acc0) + tail0;
        y[1] = Vector256.Sum(acc1) + tail1;
        y[2] = Vector256.Sum(acc2) + tail2;
        y[3] = Vector256.Sum(acc3) + tail3;
    }

    /// <summary>Four BF16 rows against x with Vector256 (AVX2): y[0..3].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Bf16Rows4V256(ushort* p0, int cols, float* x, float* y)
    {
        ushort* p1 = p0 + cols, p2 = p1 + cols, p3 = p2 + cols;
        var acc0 = Vector256<float>.Zero;
        var acc1 = Vector256<float>.Zero;
        var acc2 = Vector256<float>.Zero;
        var acc3 = Vector256<float>.Zero;
        int c = 0;
        for (; c + 8 <= cols; c += 8)
        {
            var xv = Vector256.Load(x + c);
            acc0 = Vector256.FusedMultiplyAdd(Vector256.ShiftLeft(Avx2.ConvertToVector256Int32(Vector128.Load(p0 + c)), 16).AsSingle(), xv, acc0);
            acc1 = Vector256.FusedMultiplyAdd(Vector256.ShiftLeft(Avx2.ConvertToVector256Int32(Vector128.Load(p1 + c)), 16).AsSingle(), xv, acc1);
            acc2 = Vector256.FusedMultiplyAdd(Vector256.ShiftLeft(Avx2.ConvertToVector256Int32(Vector128.Load(p2 + c)), 16).AsSingle(), xv, acc2);
            acc3 = Vector256.FusedMultiplyAdd(Vector256.ShiftLeft(Avx2.ConvertToVector256Int32(Vector128.Load(p3 + c)), 16).AsSingle(), xv, acc3);
        }
        float t0 = 0, t1 = 0, t2 = 0, t3 = 0;
        for (; c < cols; c++)
        {
            float xc = x[c];
            t0 += Bf16Scalar(p0[c]) * xc;
            t1 += Bf16Scalar(p1[c]) * xc;
            t2 += Bf16Scalar(p2[c]) * xc;
            t3 += Bf16Scalar(p3[c]) * xc;
        }
        y[0] = Vector256.Sum(acc0) + t0;
        y[1] = Vector256.Sum(acc1) + t1;
        y[2] = Vector256.Sum(acc2) + t2;
        y[3] = Vector256.Sum(acc3) + t3;
    }

    /// <summary>Four float rows (stride cols) against two tokens x[0], x[1] (stride cols) with Vector256: y[u · yStride + 0..3].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4x2V256(float* r0, int cols, float* x0, float* y, int yStride)
    {
        float* r1 = r0 + cols, r2 = r1 + cols, r3 = r2 + cols;
        float* x1 = x0 + cols;
        Vector256<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector256<float> a10 = default, a11 = default, a12 = default, a13 = default;
        int c = 0;
        for (; c + 8 <= cols; c += 8)
        {
            var w0 = Vector256.Load(r0 + c);
            var w1 = Vector256.Load(r1 + c);
            var w2 = Vector256.Load(r2 + c);
            var w3 = Vector256.Load(r3 + c);
            var v = Vector256.Load(x0 + c);
            a00 = Vector256.FusedMultiplyAdd(w0, v, a00); a01 = Vector256.FusedMultiplyAdd(w1, v, a01);
            a02 = Vector256.FusedMultiplyAdd(w2, v, a02); a03 = Vector256.FusedMultiplyAdd(w3, v, a03);
            v = Vector256.Load(x1 + c);
            a10 = Vector256.FusedMultiplyAdd(w0, v, a10); a11 = Vector256.FusedMultiplyAdd(w1, v, a11);
            a12 = Vector256.FusedMultiplyAdd(w2, v, a12); a13 = Vector256.FusedMultiplyAdd(w3, v, a13);
        }
        float* o0 = y, o1 = y + yStride;
        o0[0] = Vector256.Sum(a00); o0[1] = Vector256.Sum(a01); o0[2] = Vector256.Sum(a02); o0[3] = Vector256.Sum(a03);
        o1[0] = Vector256.Sum(a10); o1[1] = Vector256.Sum(a11); o1[2] = Vector256.Sum(a12); o1[3] = Vector256.Sum(a13);
        for (; c < cols; c++)
        {
            for (int u = 0; u < 2; u++)
            {
                float xv = x0[(long)u * cols + c];
                float* o = y + (long)u * yStride;
                o[0] += r0[c] * xv;
                o[1] += r1[c] * xv;
                o[2] += r2[c] * xv;
                o[3] += r3[c] * xv;
            }
        }
    }

    /// <summary>One FP8 row against the prescaled x (Vector256, scalar tails).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Fp8RowV256(byte* p, int cols, int blockCols, float* xs, float* s)
    {
        var acc = Vector256<float>.Zero;
        float tail = 0;
        for (int b = 0, start = 0; start < cols; b++, start += blockCols)
        {
            int end = Math.Min(start + blockCols, cols);
            var blockAcc = Vector256<float>.Zero;
            int c = start;
            for (; c + 8 <= end; c += 8)
            {
                blockAcc = Vector256.FusedMultiplyAdd(DecodeFp8V256(p + c), Vector256.Load(xs + c), blockAcc);
            }
            float t = 0;
            for (; c < end; c++)
            {
                t += DecodeFp8Scalar(p[c]) * xs[c];
            }
            tail += t * s[b];
            acc = Vector256.FusedMultiplyAdd(blockAcc, Vector256.Create(s[b]), acc);
        }
        return Vector256.Sum(acc) + tail;
    }

    /// <summary>One FP8 row against n (≤ 8) prescaled token vectors x [n, cols]: y[t, r] for every t.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Fp8RowTokensV512(WeightMatrix w, int r, int n, float* xs, float* s, float* y)
    {
        int cols = w.Cols, blockCols = w.BlockCols, rows = w.Rows;
        byte* p = w.RowPointer(r);
        Vector512<float>* block = stackalloc Vector512<float>[MaxFusedTokens];
        Vector512<float>* total = stackalloc Vector512<float>[MaxFusedTokens];
        float* tail = stackalloc float[MaxFusedTokens];
        for (int t = 0; t < n; t++)
        {
            total[t] = Vector512<float>.Zero;
            tail[t] = 0;
        }
        for (int b = 0, start = 0; start < cols; b++, start += blockCols)
        {
            int end = Math.Min(start + blockCols, cols);
            for (int t = 0; t < n; t++)
            {
                block[t] = Vector512<float>.Zero;
            }
            int c = start;
            for (; c + 16 <= end; c += 16)
            {
                Sse.Prefetch0(p + cols + c); // the next row
                var wv = DecodeFp8V512(p + c);
                for (int t = 0; t < n; t++)
                {
                    block[t] = Vector512.FusedMultiplyAdd(wv, Vector512.Load(xs + (long)t * cols + c), block[t]);
                }
            }
            var scale = Vector512.Create(s[b]);
            for (int t = 0; t < n; t++)
            {
                total[t] = Vector512.FusedMultiplyAdd(block[t], scale, total[t]);
            }
            for (; c < end; c++)
            {
                float wc = DecodeFp8Scalar(p[c]) * s[b];
                for (int t = 0; t < n; t++)
                {
                    tail[t] += wc * xs[(long)t * cols + c];
                }
            }
        }
        for (int t = 0; t < n; t++)
        {
            y[(long)t * rows + r] = Vector512.Sum(total[t]) + tail[t];
        }
    }

    private const int Group = WeightMatrix.GroupSize;

    /// <summary>16 Q8_0 codes as floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Q8V512(sbyte* p) =>
        Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(p)));

    /// <summary>Four Q8_0 rows r..r+3 against x: y[0..3]. Per group of 32: two 16-wide products per row, then one scale.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q8Rows4V512(WeightMatrix w, int r, float* x, float* scales, float* y)
    {
        int cols = w.Cols, groups = w.ScaleCols;
        sbyte* p0 = (sbyte*)w.RowPointer(r);
        sbyte* p1 = p0 + cols, p2 = p1 + cols, p3 = p2 + cols;
        float* s0 = w.KernelScaleRow(r, scales), s1 = s0 + groups, s2 = s1 + groups, s3 = s2 + groups;
        var acc0 = Vector512<float>.Zero;
        var acc1 = Vector512<float>.Zero;
        var acc2 = Vector512<float>.Zero;
        var acc3 = Vector512<float>.Zero;
        int g = 0, c = 0;
        for (; c + Group <= cols; g++, c += Group)
        {
            Sse.Prefetch0(p0 + 4 * cols + 4 * c);
            Sse.Prefetch0(p0 + 4 * cols + 4 * c + 64);
            var xa = Vector512.Load(x + c);
            var xb = Vector512.Load(x + c + 16);
            var g0 = Vector512.FusedMultiplyAdd(Q8V512(p0 + c + 16), xb, Q8V512(p0 + c) * xa);
            var g1 = Vector512.FusedMultiplyAdd(Q8V512(p1 + c + 16), xb, Q8V512(p1 + c) * xa);
            var g2 = Vector512.FusedMultiplyAdd(Q8V512(p2 + c + 16), xb, Q8V512(p2 + c) * xa);
            var g3 = Vector512.FusedMultiplyAdd(Q8V512(p3 + c + 16), xb, Q8V512(p3 + c) * xa);
            acc0 = Vector512.FusedMultiplyAdd(g0, Vector512.Create(s0[g]), acc0);
            acc1 = Vector512.FusedMultiplyAdd(g1, Vector512.Create(s1[g]), acc1);
            acc2 = Vector512.FusedMultiplyAdd(g2, Vector512.Create(s2[g]), acc2);
            acc3 = Vector512.FusedMultiplyAdd(g3, Vector512.Create(s3[g]), acc3);
        }
        VectorMath.Sum4(acc0, acc1, acc2, acc3).Store(y);
        if (c < cols)
        {
            // The ragged last group (g < groups here).
            float t0 = 0, t1 = 0, t2 = 0, t3 = 0;
            for (; c < cols; c++)
            {
                float xc = x[c];
                t0 += p0[c] * xc;
                t1 += p1[c] * xc;
                t2 += p2[c] * xc;
                t3 += p3[c] * xc;
            }
            y[0] += t0 * s0[g];
            y[1] += t1 * s1[g];
            y[2] += t2 * s2[g];
            y[3] += t3 * s3[g];
        }
    }

    /// <summary>One Q8_0 row against x (Vector256, scalar tail).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Q8RowV256(sbyte* p, int cols, float* x, float* s)
    {
        var acc = Vector256<float>.Zero;
        int g = 0, c = 0;
        for (; c + Group <= cols; g++, c += Group)
        {
            var sum = Vector256<float>.Zero;
            for (int k = 0; k < Group; k += 8)
            {
                var wv = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(p + c + k));
                sum = Vector256.FusedMultiplyAdd(wv, Vector256.Load(x + c + k), sum);
            }
            acc = Vector256.FusedMultiplyAdd(sum, Vector256.Create(s[g]), acc);
        }
        float result = Vector256.Sum(acc);
        if (c < cols)
        {
            float tail = 0;
            for (; c < cols; c++)
            {
                tail += p[c] * x[c];
            }
            result += tail * s[g];
        }
        return result;
    }

    /// <summary>
    /// The 32 weights of one Q4_0 group (16 bytes) as q - 8: its bytes widen to 16 int32 lanes, the low
    /// nibbles are codes 0..15 of the group and the high nibbles codes 16..31. vpermps picks lane
    /// (index &amp; 15) of a table holding -8..7, so the low nibble needs no mask and neither a conversion.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void DecodeQ4GroupV512(byte* group, Vector512<float> table, out Vector512<float> low, out Vector512<float> high)
    {
        var codes = Avx512F.ConvertToVector512Int32(Vector128.Load(group));
        low = Avx512F.PermuteVar16x32(table, codes);
        high = Avx512F.PermuteVar16x32(table, Vector512.ShiftRightLogical(codes, 4));
    }

    /// <summary>The table of <see cref="DecodeQ4GroupV512"/>: lane q holds q - 8.</summary>
    internal static Vector512<float> Q4TableV512 => Vector512.Create(-8f, -7f, -6f, -5f, -4f, -3f, -2f, -1f, 0f, 1f, 2f, 3f, 4f, 5f, 6f, 7f);

    /// <summary>Four Q4_0 rows r..r+3 against x: y[0..3], one group of 32 weights per row at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q4Rows4V512(WeightMatrix w, int r, float* x, float* scales, float* y)
    {
        int cols = w.Cols, groups = w.ScaleCols;
        long stride = w.RowStrideBytes;
        byte* p0 = w.RowPointer(r);
        byte* p1 = p0 + stride, p2 = p1 + stride, p3 = p2 + stride;
        float* s0 = w.KernelScaleRow(r, scales), s1 = s0 + groups, s2 = s1 + groups, s3 = s2 + groups;
        var acc0 = Vector512<float>.Zero;
        var acc1 = Vector512<float>.Zero;
        var acc2 = Vector512<float>.Zero;
        var acc3 = Vector512<float>.Zero;
        var table = Q4TableV512;
        int g = 0;
        for (; (g + 1) * Group <= cols; g++)
        {
            int c = g * Group;
            Sse.Prefetch0(p0 + 4 * stride + 64 * g);
            var xa = Vector512.Load(x + c);
            var xb = Vector512.Load(x + c + 16);
            DecodeQ4GroupV512(p0 + 16 * g, table, out var l0, out var h0);
            DecodeQ4GroupV512(p1 + 16 * g, table, out var l1, out var h1);
            DecodeQ4GroupV512(p2 + 16 * g, table, out var l2, out var h2);
            DecodeQ4GroupV512(p3 + 16 * g, table, out var l3, out var h3);
            var g0 = Vector512.FusedMultiplyAdd(h0, xb, l0 * xa);
            var g1 = Vector512.FusedMultiplyAdd(h1, xb, l1 * xa);
            var g2 = Vector512.FusedMultiplyAdd(h2, xb, l2 * xa);
            var g3 = Vector512.FusedMultiplyAdd(h3, xb, l3 * xa);
            acc0 = Vector512.FusedMultiplyAdd(g0, Vector512.Create(s0[g]), acc0);
            acc1 = Vector512.FusedMultiplyAdd(g1, Vector512.Create(s1[g]), acc1);
            acc2 = Vector512.FusedMultiplyAdd(g2, Vector512.Create(s2[g]), acc2);
            acc3 = Vector512.FusedMultiplyAdd(g3, Vector512.Create(s3[g]), acc3);
        }
        (VectorMath.Sum4(acc0, acc1, acc2, acc3) + Vector128.Create(Q4TailScalar(p0, g, cols, x, s0), Q4TailScalar(p1, g, cols, x, s1),
            Q4TailScalar(p2, g, cols, x, s2), Q4TailScalar(p3, g, cols, x, s3))).Store(y);
    }

    /// <summary>One Q4_0 row against x (Vector256): 8 bytes give codes j..j+7 (low nibbles) and j+16..j+23 (high).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Q4RowV256(byte* p, int cols, float* x, float* s)
    {
        var acc = Vector256<float>.Zero;
        var low = Vector256.Create(15);
        var eight = Vector256.Create(8f);
        int g = 0;
        for (; (g + 1) * Group <= cols; g++)
        {
            var sum = Vector256<float>.Zero;
            for (int j = 0; j < Group / 2; j += 8)
            {
                var v = Avx2.ConvertToVector256Int32(p + 16 * g + j);
                var xa = Vector256.Load(x + g * Group + j);
                var xb = Vector256.Load(x + g * Group + j + 16);
                sum = Vector256.FusedMultiplyAdd(Avx.ConvertToVector256Single(v & low), xa, sum);
                sum = Vector256.FusedMultiplyAdd(Avx.ConvertToVector256Single(Vector256.ShiftRightLogical(v, 4)), xb, sum);
                sum -= (xa + xb) * eight;
            }
            acc = Vector256.FusedMultiplyAdd(sum, Vector256.Create(s[g]), acc);
        }
        return Vector256.Sum(acc) + Q4TailScalar(p, g, cols, x, s);
    }

    /// <summary>The ragged last group of a Q4_0 row (fewer than 32 columns from group <paramref name="g"/>), if any.</summary>
    private static float Q4TailScalar(byte* p, int g, int cols, float* x, float* s)
    {
        if (g * Group >= cols)
        {
            return 0;
        }
        float sum = 0;
        for (int c = g * Group; c < cols; c++)
        {
            sum += WeightMatrix.Q4Value(p, c) * x[c];
        }
        return sum * s[g];
    }

    /// <summary>One BF16 row against n (≤ 8) token vectors x [n, cols]: y[t, r] for every t.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Bf16RowTokensV512(WeightMatrix w, int r, int n, float* x, float* y)
    {
        int cols = w.Cols, rows = w.Rows;
        ushort* p = (ushort*)w.RowPointer(r);
        Vector512<float>* acc = stackalloc Vector512<float>[MaxFusedTokens];
        for (int t = 0; t < n; t++)
        {
            acc[t] = Vector512<float>.Zero;
        }
        int c = 0;
        for (; c + 16 <= cols; c += 16)
        {
            Sse.Prefetch0(p + cols + c); // the next row
            var wv = Bf16V512(p + c);
            for (int t = 0; t < n; t++)
            {
                acc[t] = Vector512.FusedMultiplyAdd(wv, Vector512.Load(x + (long)t * cols + c), acc[t]);
            }
        }
        for (int t = 0; t < n; t++)
        {
            float tailSum = 0;
            for (int k = c; k < cols; k++)
            {
                tailSum += Bf16Scalar(p[k]) * x[(long)t * cols + k];
            }
            y[(long)t * rows + r] = Vector512.Sum(acc[t]) + tailSum;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]

    private static void Bf16Rows4V512(ushort* p0, int cols, float* x, float* y)
    {
        ushort* p1 = p0 + cols, p2 = p1 + cols, p3 = p2 + cols;
        var acc0 = Vector512<float>.Zero;
        var acc1 = Vector512<float>.Zero;
        var acc2 = Vector512<float>.Zero;
        var acc3 = Vector512<float>.Zero;
        int c = 0;
        for (; c + 16 <= cols; c += 16)
        {
            // Fetch the next row group (4 · cols values, two lines per 128 bytes consumed), as for FP8.
            Sse.Prefetch0(p0 + 4 * cols + 4 * c);
            Sse.Prefetch0(p0 + 4 * cols + 4 * c + 32);
            var xv = Vector512.Load(x + c);
            acc0 = Vector512.FusedMultiplyAdd(Bf16V512(p0 + c), xv, acc0);
            acc1 = Vector512.FusedMultiplyAdd(Bf16V512(p1 + c), xv, acc1);
            acc2 = Vector512.FusedMultiplyAdd(Bf16V512(p2 + c), xv, acc2);
            acc3 = Vector512.FusedMultiplyAdd(Bf16V512(p3 + c), xv, acc3);
        }
        float t0 = 0, t1 = 0, t2 = 0, t3 = 0;
        for (; c < cols; c++)
        {
            float xc = x[c];
            t0 += Bf16Scalar(p0[c]) * xc;
            t1 += Bf16Scalar(p1[c]) * xc;
            t2 += Bf16Scalar(p2[c]) * xc;
            t3 += Bf16Scalar(p3[c]) * xc;
        }
        (VectorMath.Sum4(acc0, acc1, acc2, acc3) + Vector128.Create(t0, t1, t2, t3)).Store(y);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]

    private static float Bf16RowV256(ushort* p, int cols, float* x)
    {
        var acc = Vector256<float>.Zero;
        int c = 0;
        for (; c + 8 <= cols; c += 8)
        {
            var w = Vector256.ShiftLeft(Avx2.ConvertToVector256Int32(Vector128.Load(p + c)), 16).AsSingle();
            acc = Vector256.FusedMultiplyAdd(w, Vector256.Load(x + c), acc);
        }
        float tail = 0;
        for (; c < cols; c++)
        {
            tail += Bf16Scalar(p[c]) * x[c];
        }
        return Vector256.Sum(acc) + tail;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Bf16V512(ushort* p) =>
        Vector512.ShiftLeft(Avx512F.ConvertToVector512Int32(Vector256.Load(p)), 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Bf16Scalar(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>Four float rows (stride cols) against four tokens x[u] (stride cols): y[u · yStride + 0..3].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4x4V512(float* r0, int cols, float* x0, float* y, int yStride)
    {
        float* r1 = r0 + cols, r2 = r1 + cols, r3 = r2 + cols;
        float* x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols;
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
        Vector512<float> a30 = default, a31 = default, a32 = default, a33 = default;
        int c = 0;
        for (; c + 16 <= cols; c += 16)
        {
            var w0 = Vector512.Load(r0 + c);
            var w1 = Vector512.Load(r1 + c);
            var w2 = Vector512.Load(r2 + c);
            var w3 = Vector512.Load(r3 + c);
            var v = Vector512.Load(x0 + c);
            a00 = Vector512.FusedMultiplyAdd(w0, v, a00); a01 = Vector512.FusedMultiplyAdd(w1, v, a01);
            a02 = Vector512.FusedMultiplyAdd(w2, v, a02); a03 = Vector512.FusedMultiplyAdd(w3, v, a03);
            v = Vector512.Load(x1 + c);
            a10 = Vector512.FusedMultiplyAdd(w0, v, a10); a11 = Vector512.FusedMultiplyAdd(w1, v, a11);
            a12 = Vector512.FusedMultiplyAdd(w2, v, a12); a13 = Vector512.FusedMultiplyAdd(w3, v, a13);
            v = Vector512.Load(x2 + c);
            a20 = Vector512.FusedMultiplyAdd(w0, v, a20); a21 = Vector512.FusedMultiplyAdd(w1, v, a21);
            a22 = Vector512.FusedMultiplyAdd(w2, v, a22); a23 = Vector512.FusedMultiplyAdd(w3, v, a23);
            v = Vector512.Load(x3 + c);
            a30 = Vector512.FusedMultiplyAdd(w0, v, a30); a31 = Vector512.FusedMultiplyAdd(w1, v, a31);
            a32 = Vector512.FusedMultiplyAdd(w2, v, a32); a33 = Vector512.FusedMultiplyAdd(w3, v, a33);
        }
        float* o0 = y, o1 = y + yStride, o2 = o1 + yStride, o3 = o2 + yStride;
        VectorMath.Sum4(a00, a01, a02, a03).Store(o0);
        VectorMath.Sum4(a10, a11, a12, a13).Store(o1);
        VectorMath.Sum4(a20, a21, a22, a23).Store(o2);
        VectorMath.Sum4(a30, a31, a32, a33).Store(o3);
        for (; c < cols; c++)
        {
            for (int u = 0; u < 4; u++)
            {
                float xv = x0[(long)u * cols + c];
                float* o = y + (long)u * yStride;
                o[0] += r0[c] * xv;
                o[1] += r1[c] * xv;
                o[2] += r2[c] * xv;
                o[3] += r3[c] * xv;
            }
        }
    }

    /// <summary>Four float rows (stride cols) against x: y[0..3].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4V512(float* r0, int cols, float* x, float* y)
    {
        float* r1 = r0 + cols, r2 = r1 + cols, r3 = r2 + cols;
        var acc0 = Vector512<float>.Zero;
        var acc1 = Vector512<float>.Zero;
        var acc2 = Vector512<float>.Zero;
        var acc3 = Vector512<float>.Zero;
        int c = 0;
        for (; c + 16 <= cols; c += 16)
        {
            var xv = Vector512.Load(x + c);
            acc0 = Vector512.FusedMultiplyAdd(Vector512.Load(r0 + c), xv, acc0);
            acc1 = Vector512.FusedMultiplyAdd(Vector512.Load(r1 + c), xv, acc1);
            acc2 = Vector512.FusedMultiplyAdd(Vector512.Load(r2 + c), xv, acc2);
            acc3 = Vector512.FusedMultiplyAdd(Vector512.Load(r3 + c), xv, acc3);
        }
        float t0 = 0, t1 = 0, t2 = 0, t3 = 0;
        for (; c < cols; c++)
        {
            float xc = x[c];
            t0 += r0[c] * xc;
            t1 += r1[c] * xc;
            t2 += r2[c] * xc;
            t3 += r3[c] * xc;
        }
        (VectorMath.Sum4(acc0, acc1, acc2, acc3) + Vector128.Create(t0, t1, t2, t3)).Store(y);
    }
}
