using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using MimoSharp.Tensors.Threading;

namespace MimoSharp.Tensors.Kernels;

/// <summary>
/// y = x · Wᵀ for a weight matrix W [rows, cols] in its stored format (F32, BF16, F16, FP8 with block
/// scales, Q8_0, Q4_0): x [n, cols], y [n, rows]. Rows are split across the worker pool in groups of four.
/// Every kernel is one body generic over the vector width (<see cref="ISimd{TVec}"/>), run on the path
/// the call's <see cref="KernelMode"/> names.
/// <para>
/// Q8_0 / Q4_0, by default (n ≤ 8): x is quantized to int8 once per product, per group of 32 columns
/// (d = max|x| / 127, q = round(x / d)), and each group's dot product is exact in integers
/// (<see cref="IInt8Dot{TVec, TCodes}"/>), then scaled by d_w · d_x. With
/// <see cref="KernelMode.ExactActivations"/> (and for longer batches) the codes are widened to float in
/// registers against float activations instead: the result is the float dot product of the dequantized weights.
/// </para>
/// <para>
/// Decode (n == 1) reads each weight once, dequantizing FP8/BF16 in registers: an FP8 code b is
/// sign-extended to int32, shifted left 20 and masked, which lays its sign, exponent and mantissa
/// into a float32 whose value is decode(b)·2^-120 (subnormal codes land on float subnormals, still
/// exact; the NaN codes 0x7F/0xFF are turned into NaN by a compare). x is prescaled by 2^100 and each
/// block's scale by 2^20, so no per-weight multiply remains and the products stay in the normal float range.
/// Where max|x| ≥ 2^28 that overflows, so the prescale drops to 2^(100 - s) and y is multiplied by 2^s after
/// (both powers of two: exact).
/// (.NET exposes no F16C intrinsic, so the FP16 route, a shift into half-precision bits and vcvtph2ps,
/// is not available to C#.)
/// </para>
/// Batches (n > 1) dequantize four rows at a time into a per-thread buffer and reuse them for every
/// token, so each weight is still read once per call.
/// </summary>
public static unsafe class MatMul
{
    private const float XPrescale = 1.2676506e30f; // 2^100
    /// <summary>Below this |x|, x · 2^100 stays below 2^127.</summary>
    private const float XPrescaleLimit = 134217728f; // 2^27
    private const int RowGroup = 4;
    private const int Group = WeightMatrix.GroupSize;
    /// <summary>Up to this many tokens, each weight vector is decoded once in registers and used for every token.</summary>
    private const int MaxFusedTokens = 8;
    /// <summary>
    /// From this many FP8 tokens on (to <see cref="MaxFusedTokens"/>), Vector512 runs the packed kernel. In-process A/B
    /// of 8-row Model S steps: packing 3..8 tokens made the step 5.4% faster than no packing, and packing 2 as well
    /// (instead of the 4-row × 2-token kernel) another 3-4%.
    /// </summary>
    private const int MinPackedTokens = 2;

    [ThreadStatic] private static float* t_scratch;
    [ThreadStatic] private static int t_scratchLength;
    [ThreadStatic] private static Job? t_job;
    [ThreadStatic] private static float* t_prescaled;
    [ThreadStatic] private static int t_prescaledLength;
    [ThreadStatic] private static float* t_permuted;
    [ThreadStatic] private static int t_permutedLength;
    [ThreadStatic] private static float* t_packed;
    [ThreadStatic] private static int t_packedLength;
    [ThreadStatic] private static float* t_blockPacked;
    [ThreadStatic] private static int t_blockPackedLength;
    [ThreadStatic] private static float* t_quantized; // int8 codes, as floats' storage (4 codes per float slot)
    [ThreadStatic] private static int t_quantizedLength;
    [ThreadStatic] private static float* t_quantScales;
    [ThreadStatic] private static int t_quantScalesLength;

    private enum Route
    {
        /// <summary>Rows dequantized to float (or read as float), then float dot products.</summary>
        Generic,
        /// <summary>n == 1: weights decoded in registers (FP8, BF16, Q8_0 / Q4_0 against float x).</summary>
        Fused,
        /// <summary>2 ≤ n ≤ 8: each FP8/BF16 weight vector decoded once for every token (verify rows, small batches).</summary>
        FusedTokens,
        /// <summary>Q8_0 / Q4_0 against int8-quantized activations.</summary>
        Integer,
    }

    /// <summary>y [n, W.Rows] = x [n, W.Cols] · Wᵀ.</summary>
    public static void Multiply(WeightMatrix weight, ReadOnlySpan<float> x, Span<float> y, int n, WorkerPool? pool = null, KernelMode mode = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        if (x.Length < (long)n * weight.Cols || y.Length < (long)n * weight.Rows)
        {
            throw new ArgumentException(
                $"MatMul of [{n}, {weight.Cols}] by W[{weight.Rows}, {weight.Cols}]ᵀ needs x of {(long)n * weight.Cols} and y of {(long)n * weight.Rows} floats; got {x.Length} and {y.Length}");
        }
        KernelIsa isa = mode.ResolvedIsa;
        if (n == 0)
        {
            return;
        }
        pool ??= WorkerPool.Shared;
        var job = t_job ??= new Job();
        // Scales are pinned or live in the weight's storage; job.Weight keeps both alive during the call.
        float* scales = weight.KernelScalePointer;
        bool grouped = weight.DType is DType.I8 or DType.Q4;
        Route route = grouped && !mode.ExactActivations && n <= MaxFusedTokens ? Route.Integer
            : isa == KernelIsa.Scalar ? Route.Generic
            : n == 1 && weight.DType is DType.F8E4M3 or DType.BF16 or DType.I8 or DType.Q4 ? Route.Fused
            : n <= MaxFusedTokens && weight.DType is DType.F8E4M3 or DType.BF16 ? Route.FusedTokens
            : Route.Generic;
        fixed (float* px = x, py = y)
        {
            job.Weight = weight;
            job.X = px;
            job.Y = py;
            job.N = n;
            job.Scales = scales;
            job.Isa = isa;
            job.Route = route;
            job.XPrescaled = null;
            job.XPermuted = null;
            job.XPacked = null;
            job.XCodes = null;
            job.XScales = null;
            job.XStride = weight.Cols;
            int headroom = 0; // FP8 with max|x| ≥ 2^28: y is to be multiplied by 2^headroom (see PrescaleFp8)
            if (route == Route.Fused && weight.DType == DType.F8E4M3)
            {
                // The calling thread's buffer, kept between calls: no allocation per product.
                job.XPrescaled = PrescaleBuffer(weight.Cols);
                headroom = PrescaleFp8(px, 1, weight.Cols, job.XPrescaled, weight.Cols, isa);
                PermuteForSteps(job, weight, 1, isa);
            }
            else if (route == Route.FusedTokens)
            {
                // The tokens at a padded stride (FP8: prescaled), in the calling thread's buffer: at a
                // stride of a multiple of 4 KB (1024 columns) the tokens' vectors at one column share an
                // L1 set, and the 8-token kernel's eight of them with the two weight rows overflow its ways.
                int stride = PaddedTokenStride(weight.Cols);
                job.XPrescaled = PrescaleBuffer(checked(n * stride));
                job.XStride = stride;
                if (weight.DType == DType.F8E4M3)
                {
                    headroom = PrescaleFp8(px, n, weight.Cols, job.XPrescaled, stride, isa);
                }
                else
                {
                    for (int t = 0; t < n; t++)
                    {
                        new ReadOnlySpan<float>(px + (long)t * weight.Cols, weight.Cols).CopyTo(new Span<float>(job.XPrescaled + (long)t * stride, weight.Cols));
                    }
                }
                if (n >= MinPackedTokens && isa == KernelIsa.Vector512 && PackedStepsFit<Vector512<float>, Simd512>(weight))
                {
                    // The multi-token FP8 kernel reads the tokens packed per step (the tail rows read XPrescaled).
                    job.XPacked = Grow(ref t_packed, ref t_packedLength, checked(n * weight.Cols));
                    job.XPackedMaxAbs = PackTokens<Vector512<float>, Simd512>(job.XPrescaled, stride, n, weight.Cols, job.XPacked);
                }
                else if (weight.DType == DType.F8E4M3)
                {
                    PermuteForSteps(job, weight, n, isa);
                }
            }
            else if (route == Route.Integer)
            {
                int groups = weight.ScaleCols;
                job.XCodes = (sbyte*)Grow(ref t_quantized, ref t_quantizedLength, checked(n * groups * Group / sizeof(float)));
                job.XScales = Grow(ref t_quantScales, ref t_quantScalesLength, n * groups);
                for (int t = 0; t < n; t++)
                {
                    QuantizeActivations(px + (long)t * weight.Cols, weight.Cols, job.XCodes + (long)t * groups * Group, job.XScales + t * groups, isa);
                }
            }
            job.ScanForNaN = weight.NaNCodes != Fp8NaNCodes.None;
            job.SawNaN = false;
            try
            {
                int rowGroups = (weight.Rows + RowGroup - 1) / RowGroup;
                pool.Run(job, rowGroups, pool.GrainFor(rowGroups, minimum: 4));
            }
            finally
            {
                job.Weight = null;
            }
            if (headroom > 0)
            {
                VectorMath.ScaleInto(py, MathF.ScaleB(1f, headroom), py, checked(n * weight.Rows), isa);
            }
            // The subnormal weights, kept out of the codes so that no kernel multiplies a float32 denormal (see Fp8Subnormals).
            weight.Subnormals?.AddProducts(px, n, weight.Cols, py, weight.Rows);
            if (route is Route.Fused or Route.FusedTokens && weight.DType == DType.F8E4M3 && weight.NaNCodes == Fp8NaNCodes.Unknown)
            {
                // Every row group of the matrix was scanned (the ragged ends and tail rows decode checked).
                weight.NaNCodes = job.SawNaN ? Fp8NaNCodes.Some : Fp8NaNCodes.None;
            }
        }
    }

    /// <summary>
    /// The FP8 kernels' x: tokens x [n, cols] times 2^100 into dst [n, stride]. Where that overflows (a finite
    /// max|x| ≥ 2^28) times 2^(100 - s) instead, with s = <see cref="PrescaleHeadroom"/>, and returns s: the products
    /// are then 2^s too small (powers of two: exact). An x that is not finite keeps 2^100 (its infinities and NaNs
    /// propagate as they would unscaled). The common case is one pass: the scaled maximum is checked as it is written.
    /// </summary>
    private static int PrescaleFp8(float* x, int n, int cols, float* dst, int stride, KernelIsa isa)
    {
        float max = 0;
        for (int t = 0; t < n; t++)
        {
            max = MathF.Max(max, VectorMath.ScaleIntoMaxAbs(x + (long)t * cols, XPrescale, dst + (long)t * stride, cols, isa));
        }
        if (float.IsFinite(max))
        {
            return 0;
        }
        // Rare: max|x| itself, from a copy into dst (rewritten below when the prescale changes).
        float maxAbs = 0;
        for (int t = 0; t < n; t++)
        {
            maxAbs = MathF.Max(maxAbs, VectorMath.ScaleIntoMaxAbs(x + (long)t * cols, 1f, dst + (long)t * stride, cols, isa));
        }
        int headroom = PrescaleHeadroom(maxAbs);
        if (headroom > 0)
        {
            float factor = MathF.ScaleB(1f, 100 - headroom);
            for (int t = 0; t < n; t++)
            {
                VectorMath.ScaleInto(x + (long)t * cols, factor, dst + (long)t * stride, cols, isa);
            }
        }
        return headroom;
    }

    /// <summary>
    /// s such that max|x| · 2^(100 - s) stays below 2^127: 0 below 2^27, and for an x that is not finite.
    /// </summary>
    private static int PrescaleHeadroom(float maxAbs) =>
        maxAbs < XPrescaleLimit || !float.IsFinite(maxAbs) ? 0 : MathF.ILogB(maxAbs) - 26;

    /// <summary>
    /// x [cols] as int8 codes per group of 32 (the last group zero-padded to 32) and one scale per group:
    /// d = max|x| / 127, q = round(x · (1/d)) to nearest even (0 when the group is all zero).
    /// </summary>
    internal static void QuantizeActivations(float* x, int cols, sbyte* codes, float* scales, KernelIsa isa)
    {
        for (int g = 0, c = 0; c < cols; g++, c += Group)
        {
            int count = Math.Min(Group, cols - c);
            float* xg = x + c;
            sbyte* q = codes + g * Group;
            if (count == Group && isa is KernelIsa.Vector256 or KernelIsa.Vector512)
            {
                scales[g] = QuantizeGroup<Vector256<float>, Simd256>(xg, q);
            }
            else if (count == Group && isa == KernelIsa.Vector128)
            {
                scales[g] = QuantizeGroup<Vector128<float>, Simd128>(xg, q);
            }
            else
            {
                float max = 0;
                for (int i = 0; i < count; i++)
                {
                    max = MathF.Max(max, MathF.Abs(xg[i]));
                }
                float d = max / 127f;
                float inverse = d == 0 ? 0 : 1f / d;
                for (int i = 0; i < Group; i++)
                {
                    q[i] = i < count ? (sbyte)(int)MathF.Round(xg[i] * inverse) : (sbyte)0;
                }
                scales[g] = d;
            }
        }
    }

    /// <summary>One full group of 32: the same arithmetic as the scalar loop (max, d, 1/d, products rounded to even).</summary>
    private static float QuantizeGroup<TVec, TW>(float* x, sbyte* q) where TVec : struct where TW : struct, ISimd<TVec>
    {
        var max = TW.Zero;
        for (int i = 0; i < Group; i += TW.Count)
        {
            var v = TW.Load(x + i);
            max = TW.Max(max, TW.Max(v, TW.Subtract(TW.Zero, v)));
        }
        float d = TW.MaxAcross(max) / 127f;
        float inverse = d == 0 ? 0 : 1f / d;
        var scale = TW.Splat(inverse);
        float* rounded = stackalloc float[Group];
        for (int i = 0; i < Group; i += TW.Count)
        {
            TW.Store(TW.Round(TW.Multiply(TW.Load(x + i), scale)), rounded + i);
        }
        for (int i = 0; i < Group; i++)
        {
            q[i] = (sbyte)(int)rounded[i];
        }
        return d;
    }

    private sealed class Job : IParallelJob
    {
        public WeightMatrix? Weight;
        public float* X, Y, XPrescaled, XPermuted, Scales, XScales;
        /// <summary>The multi-token route's tokens packed per step (<see cref="PackTokens"/>), or null.</summary>
        public float* XPacked;
        /// <summary>max |XPacked| (NaN when x holds a NaN or an infinity).</summary>
        public float XPackedMaxAbs;
        public sbyte* XCodes;
        public int N;
        /// <summary>Floats between consecutive tokens of XPrescaled on the multi-token route (Cols elsewhere).</summary>
        public int XStride;
        public Route Route;
        public KernelIsa Isa;
        /// <summary>Whether the FP8 kernels scan for NaN codes (the matrix is not yet known to hold none).</summary>
        public bool ScanForNaN;
        /// <summary>Set (by any thread, only ever to true) when a scanned row group held a NaN code.</summary>
        public bool SawNaN;

        public void Execute(int start, int end)
        {
            WeightMatrix w = Weight!;
            int rowStart = start * RowGroup;
            int rowEnd = Math.Min(end * RowGroup, w.Rows);
            switch (Route)
            {
                case Route.Integer:
                    switch (Isa)
                    {
                        // AVX-512 machines run the 256-bit integer kernel (with AVX-VNNI where present).
                        case KernelIsa.Vector512:
                        case KernelIsa.Vector256:
                            ExecuteInteger<Vector256<float>, Vector256<sbyte>, Simd256>(w, rowStart, rowEnd);
                            break;
                        case KernelIsa.Vector128:
                            ExecuteInteger<Vector128<float>, Codes128, Simd128>(w, rowStart, rowEnd);
                            break;
                        default:
                            ExecuteIntegerScalar(w, rowStart, rowEnd);
                            break;
                    }
                    break;
                case Route.Fused:
                    switch (Isa)
                    {
                        case KernelIsa.Vector512: ExecuteFused<Vector512<float>, Simd512>(w, rowStart, rowEnd); break;
                        case KernelIsa.Vector256: ExecuteFused<Vector256<float>, Simd256>(w, rowStart, rowEnd); break;
                        default: ExecuteFused<Vector128<float>, Simd128>(w, rowStart, rowEnd); break;
                    }
                    break;
                case Route.FusedTokens:
                    switch (Isa)
                    {
                        case KernelIsa.Vector512: ExecuteFusedTokens<Vector512<float>, Simd512>(w, rowStart, rowEnd); break;
                        case KernelIsa.Vector256: ExecuteFusedTokens<Vector256<float>, Simd256>(w, rowStart, rowEnd); break;
                        default: ExecuteFusedTokens<Vector128<float>, Simd128>(w, rowStart, rowEnd); break;
                    }
                    break;
                default:
                    switch (Isa)
                    {
                        case KernelIsa.Vector512: ExecuteGeneric<Vector512<float>, Simd512>(w, rowStart, rowEnd); break;
                        case KernelIsa.Vector256: ExecuteGeneric<Vector256<float>, Simd256>(w, rowStart, rowEnd); break;
                        case KernelIsa.Vector128: ExecuteGeneric<Vector128<float>, Simd128>(w, rowStart, rowEnd); break;
                        default: ExecuteScalar(w, rowStart, rowEnd); break;
                    }
                    break;
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void ExecuteFused<TVec, TW>(WeightMatrix w, int rowStart, int rowEnd) where TVec : struct where TW : struct, ISimd<TVec>
        {
            int cols = w.Cols;
            int r = rowStart;
            for (; r + RowGroup <= rowEnd; r += RowGroup)
            {
                switch (w.DType)
                {
                    case DType.F8E4M3:
                        if (Fp8Rows4<TVec, TW>(w, r, XPrescaled, XPermuted, Scales, Y + r, ScanForNaN))
                        {
                            SawNaN = true;
                        }
                        break;
                    case DType.I8: Q8Rows4<TVec, TW>(w, r, X, Scales, Y + r); break;
                    case DType.Q4: Q4Rows4<TVec, TW>(w, r, X, Scales, Y + r); break;
                    default: Bf16Rows4<TVec, TW>((ushort*)w.RowPointer(r), cols, X, Y + r); break;
                }
            }
            for (; r < rowEnd; r++)
            {
                Y[r] = w.DType switch
                {
                    DType.F8E4M3 => Fp8Row<TVec, TW>(w.RowPointer(r), cols, w.BlockCols, XPrescaled, w.KernelScaleRow(r, Scales)),
                    DType.I8 => Q8TailScalar((sbyte*)w.RowPointer(r), 0, cols, X, w.KernelScaleRow(r, Scales)),
                    DType.Q4 => Q4TailScalar(w.RowPointer(r), 0, cols, X, w.KernelScaleRow(r, Scales)),
                    _ => Bf16Row<TVec, TW>((ushort*)w.RowPointer(r), cols, X),
                };
            }
        }

        /// <summary>
        /// n tokens against rows [rowStart, rowEnd): per group of four rows, eight tokens at once through the
        /// 2-row × 8-token kernels on 32-register machines (FP8 of whole steps on Vector512: 2 to 8 tokens at
        /// once through the packed kernel), else tokens four at a time through the 2-row ×
        /// 4-token kernels (each weight vector decoded once for those tokens, all accumulators in registers), a remainder
        /// of two FP8 tokens on 32-register machines through the 4-row × 2-token kernel, else a remainder of two or three tokens through the 2- or 3-token instances of the
        /// same kernels, and a last lone token through the one-token four-row kernel (the group's
        /// 4 × cols weights stay in L1 between calls). Continuous batching's MoE steps give each expert
        /// one to three rows: before the 2- and 3-token instances, those ran token by token, decoding
        /// every weight once per token. The former kernel, looping tokens inside one row with n
        /// accumulators in memory, measured 4-5x slower per multiply-add on AVX2.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void ExecuteFusedTokens<TVec, TW>(WeightMatrix w, int rowStart, int rowEnd) where TVec : struct where TW : struct, ISimd<TVec>
        {
            int cols = w.Cols, rows = w.Rows, stride = XStride;
            bool fp8 = w.DType == DType.F8E4M3;
            float* x = XPrescaled; // [N, stride]: prescaled for FP8, a padded copy for BF16
            bool sawNaN = false; // this thread's row groups; published once below (SawNaN is shared)
            float* blockPacked = null, blockPackedFor = null; // the packed tokens scaled for one block row (or null: not scalable)
            int r = rowStart;
            for (; r + RowGroup <= rowEnd; r += RowGroup)
            {
                int t = 0;
                if (XPacked != null)
                {
                    // A row group inside one block row multiplies the tokens scaled by that block row's scales
                    // (this thread's copy, made once per block row), so the kernel needs no multiply per weight vector.
                    float* scaleRow = w.KernelScaleRow(r, Scales);
                    bool oneBlockRow = scaleRow == w.KernelScaleRow(r + RowGroup - 1, Scales);
                    if (oneBlockRow && scaleRow != blockPackedFor)
                    {
                        blockPacked = ScaleForBlockRow(w, scaleRow);
                        blockPackedFor = scaleRow;
                    }
                    float* scaledTokens = oneBlockRow ? blockPacked : null;
                    sawNaN |= N switch
                    {
                        2 => RowGroupPacked<TVec, TW, TwoTokens>(w, r, scaledTokens),
                        3 => RowGroupPacked<TVec, TW, ThreeTokens>(w, r, scaledTokens),
                        4 => RowGroupPacked<TVec, TW, FourTokens>(w, r, scaledTokens),
                        5 => RowGroupPacked<TVec, TW, FiveTokens>(w, r, scaledTokens),
                        6 => RowGroupPacked<TVec, TW, SixTokens>(w, r, scaledTokens),
                        7 => RowGroupPacked<TVec, TW, SevenTokens>(w, r, scaledTokens),
                        _ => RowGroupPacked<TVec, TW, EightTokens>(w, r, scaledTokens),
                    };
                    continue;
                }
                if (TW.WideRegisterFile && N == 8)
                {
                    sawNaN |= RowGroupTokens<TVec, TW, EightTokens>(w, r, x, Y + r);
                    continue;
                }
                for (; t + 4 <= N; t += 4)
                {
                    sawNaN |= RowGroupTokens<TVec, TW, FourTokens>(w, r, x + (long)t * stride, Y + (long)t * rows + r);
                }
                switch (N - t)
                {
                    case 3:
                        sawNaN |= RowGroupTokens<TVec, TW, ThreeTokens>(w, r, x + (long)t * stride, Y + (long)t * rows + r);
                        break;
                    case 2 when fp8 && TW.WideRegisterFile:
                        sawNaN |= Fp8Rows4Tokens2<TVec, TW>(w, r, x + (long)t * stride, XPermuted + (long)t * stride, stride, Scales, rows, Y + (long)t * rows + r, ScanForNaN);
                        break;
                    case 2:
                        sawNaN |= RowGroupTokens<TVec, TW, TwoTokens>(w, r, x + (long)t * stride, Y + (long)t * rows + r);
                        break;
                    case 1:
                        float* xt = x + (long)t * stride, yt = Y + (long)t * rows + r;
                        if (fp8)
                        {
                            sawNaN |= Fp8Rows4<TVec, TW>(w, r, xt, XPermuted + (long)t * stride, Scales, yt, ScanForNaN);
                        }
                        else
                        {
                            Bf16Rows4<TVec, TW>((ushort*)w.RowPointer(r), cols, xt, yt);
                        }
                        break;
                }
            }
            for (; r < rowEnd; r++)
            {
                for (int t = 0; t < N; t++)
                {
                    float* xt = x + (long)t * stride;
                    Y[(long)t * rows + r] = fp8
                        ? Fp8Row<TVec, TW>(w.RowPointer(r), cols, w.BlockCols, xt, w.KernelScaleRow(r, Scales))
                        : Bf16Row<TVec, TW>((ushort*)w.RowPointer(r), cols, xt);
                }
            }
            if (sawNaN)
            {
                SawNaN = true;
            }
        }

        /// <summary>The four rows r..r+3 against the <typeparamref name="TN"/> tokens at xt: two 2-row kernel calls.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private bool RowGroupTokens<TVec, TW, TN>(WeightMatrix w, int r, float* xt, float* yt)
            where TVec : struct where TW : struct, ISimd<TVec> where TN : struct, ITokenCount
        {
            int rows = w.Rows, stride = XStride;
            if (w.DType == DType.F8E4M3)
            {
                bool first = Fp8Rows2Tokens<TVec, TW, TN>(w, r, xt, stride, Scales, rows, yt, ScanForNaN);
                return Fp8Rows2Tokens<TVec, TW, TN>(w, r + 2, xt, stride, Scales, rows, yt + 2, ScanForNaN) | first;
            }
            else
            {
                ushort* p = (ushort*)w.RowPointer(r);
                Bf16Rows2Tokens<TVec, TW, TN>(p, w.Cols, xt, stride, rows, yt);
                Bf16Rows2Tokens<TVec, TW, TN>(p + 2 * w.Cols, w.Cols, xt, stride, rows, yt + 2);
                return false;
            }
        }

        /// <summary>
        /// The four FP8 rows r..r+3 against the <typeparamref name="TN"/> packed tokens: those scaled for the rows'
        /// block row (<paramref name="scaledTokens"/>), or XPacked with the weights scaled in the kernel when that is null.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private bool RowGroupPacked<TVec, TW, TN>(WeightMatrix w, int r, float* scaledTokens)
            where TVec : struct where TW : struct, ISimd<TVec> where TN : struct, ITokenCount =>
            scaledTokens != null
                ? RowGroupPacked<TVec, TW, TN, ScaledTokens>(w, r, scaledTokens)
                : RowGroupPacked<TVec, TW, TN, ScaledWeights>(w, r, XPacked);

        /// <summary>The four FP8 rows r..r+3 against the <typeparamref name="TN"/> packed tokens (<paramref name="packed"/>, scaled as <typeparamref name="TS"/> says): two 2-row kernel calls.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private bool RowGroupPacked<TVec, TW, TN, TS>(WeightMatrix w, int r, float* packed)
            where TVec : struct where TW : struct, ISimd<TVec> where TN : struct, ITokenCount where TS : struct, IPackedScaling
        {
            int rows = w.Rows;
            float* yt = Y + r;
            bool first = Fp8Rows2TokensPacked<TVec, TW, TN, TS>(w, r, packed, XPrescaled, XStride, Scales, rows, yt, ScanForNaN);
            return Fp8Rows2TokensPacked<TVec, TW, TN, TS>(w, r + 2, packed, XPrescaled, XStride, Scales, rows, yt + 2, ScanForNaN) | first;
        }

        /// <summary>
        /// XPacked times the block row's scales (<paramref name="scaleRow"/>, the kernel's: × 2^20, taken back out here),
        /// each step by its column block's, in this thread's buffer; null when that could overflow (|x · 2^100 · s| ≥ 2^127)
        /// or x is not finite, where the kernel multiplies the weights by their scales instead.
        /// </summary>
        private float* ScaleForBlockRow(WeightMatrix w, float* scaleRow)
        {
            float maxScale = 0;
            for (int b = 0; b < w.ScaleCols; b++)
            {
                maxScale = MathF.Max(maxScale, MathF.Abs(scaleRow[b]));
            }
            // Scaled tokens must stay finite where x is (and non-finite x keeps the route that multiplies weights).
            if (!float.IsFinite(XPackedMaxAbs) || (double)XPackedMaxAbs * maxScale / WeightMatrix.Fp8KernelScaleFactor >= 1.7014118346046923e38)
            {
                return null;
            }
            int n = N, cols = w.Cols, blockCols = w.BlockCols, span = n * Simd512.Count * 4;
            float* scaled = Grow(ref t_blockPacked, ref t_blockPackedLength, n * cols);
            for (int c = 0; c < cols; c += span / n)
            {
                var factor = Vector512.Create(scaleRow[c / blockCols] * (1f / WeightMatrix.Fp8KernelScaleFactor));
                float* src = XPacked + (long)n * c, dst = scaled + (long)n * c;
                for (int k = 0; k < span; k += Simd512.Count)
                {
                    (Vector512.Load(src + k) * factor).Store(dst + k);
                }
            }
            return scaled;
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void ExecuteInteger<TVec, TCodes, TW>(WeightMatrix w, int rowStart, int rowEnd)
            where TVec : struct where TCodes : struct where TW : struct, ISimd<TVec>, IInt8Dot<TVec, TCodes>
        {
            int groups = w.ScaleCols;
            for (int t = 0; t < N; t++)
            {
                sbyte* xq = XCodes + (long)t * groups * Group;
                float* xd = XScales + t * groups;
                float* yt = Y + (long)t * w.Rows;
                int r = rowStart;
                for (; r + RowGroup <= rowEnd; r += RowGroup)
                {
                    if (w.DType == DType.I8)
                    {
                        Q8IntRows4<TVec, TCodes, TW>(w, r, xq, xd, Scales, yt + r);
                    }
                    else
                    {
                        Q4IntRows4<TVec, TCodes, TW>(w, r, xq, xd, Scales, yt + r);
                    }
                }
                for (; r < rowEnd; r++)
                {
                    yt[r] = IntRowScalar(w, r, xq, xd, Scales);
                }
            }
        }

        private void ExecuteIntegerScalar(WeightMatrix w, int rowStart, int rowEnd)
        {
            int groups = w.ScaleCols;
            for (int t = 0; t < N; t++)
            {
                for (int r = rowStart; r < rowEnd; r++)
                {
                    Y[(long)t * w.Rows + r] = IntRowScalar(w, r, XCodes + (long)t * groups * Group, XScales + t * groups, Scales);
                }
            }
        }

        /// <summary>Rows as float: F32 in place, the rest dequantized into the thread's buffer.</summary>
        private float* FloatRows(WeightMatrix w, int rowStart, int rowCount, KernelIsa isa)
        {
            if (w.DType == DType.F32)
            {
                return (float*)w.RowPointer(rowStart);
            }
            float* rows = Scratch(rowCount * w.Cols);
            for (int i = 0; i < rowCount; i++)
            {
                w.DequantizeRowUnchecked(rowStart + i, rows + (long)i * w.Cols, isa);
            }
            return rows;
        }

        private void ExecuteScalar(WeightMatrix w, int rowStart, int rowEnd)
        {
            int cols = w.Cols, rowCount = rowEnd - rowStart;
            float* rows = FloatRows(w, rowStart, rowCount, KernelIsa.Scalar);
            for (int t = 0; t < N; t++)
            {
                for (int i = 0; i < rowCount; i++)
                {
                    Y[(long)t * w.Rows + rowStart + i] = VectorMath.DotScalar(rows + (long)i * cols, X + (long)t * cols, cols);
                }
            }
        }

        /// <summary>
        /// Rows [rowStart, rowEnd) as float (dequantized once per call), against the tokens in blocks of
        /// about <see cref="TokenBlockBytes"/> of x: per block, each group of four rows (4 · cols floats,
        /// which stay in L1) meets every token of the block (x in L2) before the next group is read. The
        /// rows are read once per block, not once per token tile: the chunk's rows can exceed L2 (a 384-row
        /// chunk of 1024 columns is 1.5 MB), and streaming them once per tile of 2 tokens bound prefill by L3.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void ExecuteGeneric<TVec, TW>(WeightMatrix w, int rowStart, int rowEnd) where TVec : struct where TW : struct, ISimd<TVec>
        {
            int cols = w.Cols;
            int rowCount = rowEnd - rowStart;
            float* rows = FloatRows(w, rowStart, rowCount, Isa);
            int outStride = w.Rows;
            // Tokens per register tile: 4 x 4 accumulators with 32 registers, 4 rows x 3 tokens with 16 (12
            // accumulators, 3 token vectors and one weight vector: 16; 4 x 2 measured 5-15% slower per
            // multiply-add in L1/L2 on AVX2, with VEX and with EVEX encodings).
            int tile = TW.WideRegisterFile ? 4 : 3;
            // 4 x 4 tiles (32 registers) measured faster token tile by token tile over all rows (prefill
            // 512, small preset, Vector512: 330 tok/s in 32-token blocks, 358 tile by tile); 16-register tiles faster in blocks (230 -> 245).
            int block = TW.WideRegisterFile ? tile : Math.Max(tile, TokenBlockBytes / sizeof(float) / cols / tile * tile);
            for (int t0 = 0; t0 < N; t0 += block)
            {
                int t1 = Math.Min(N, t0 + block);
                int i = 0;
                for (; i + 4 <= rowCount; i += 4)
                {
                    float* r4 = rows + (long)i * cols;
                    int t = t0;
                    for (; t + tile <= t1; t += tile)
                    {
                        float* xt = X + (long)t * cols;
                        float* yt = Y + (long)t * outStride + rowStart + i;
                        if (TW.WideRegisterFile)
                        {
                            Dot4x4<TVec, TW>(r4, cols, xt, yt, outStride);
                        }
                        else
                        {
                            Dot4x3<TVec, TW>(r4, cols, xt, yt, outStride);
                        }
                    }
                    for (; t < t1; t++)
                    {
                        Dot4<TVec, TW>(r4, cols, X + (long)t * cols, Y + (long)t * outStride + rowStart + i);
                    }
                }
                for (; i < rowCount; i++)
                {
                    for (int t = t0; t < t1; t++)
                    {
                        Y[(long)t * outStride + rowStart + i] = VectorMath.Dot<TVec, TW>(rows + (long)i * cols, X + (long)t * cols, cols);
                    }
                }
            }
        }
    }

    /// <summary>x bytes per token block of the generic route: with one row group and the output, well inside a 1 MB L2.</summary>
    private const int TokenBlockBytes = 128 * 1024;

    /// <summary>
    /// The token stride of the multi-token kernels' copy of x: cols rounded up to whole 64-byte lines,
    /// plus one line when that is a multiple of 1 KB, so consecutive tokens' vectors at a column fall in
    /// different L1 sets.
    /// </summary>
    internal static int PaddedTokenStride(int cols)
    {
        int stride = (cols + 15) & ~15;
        return stride % 256 == 0 ? stride + 16 : stride;
    }

    /// <summary>The calling thread's buffer for the FP8 kernels' prescaled activations (and the multi-token kernels' padded copy of x).</summary>
    private static float* PrescaleBuffer(int length) => Grow(ref t_prescaled, ref t_prescaledLength, length);

    /// <summary>
    /// Whether the packed multi-token kernel takes this matrix: FP8 whose every block is whole steps of
    /// 4 · Count columns, so that kernel has no ragged ends.
    /// </summary>
    private static bool PackedStepsFit<TVec, TW>(WeightMatrix weight) where TVec : struct where TW : struct, ISimd<TVec>
    {
        int step = 4 * TW.Count;
        return weight.DType == DType.F8E4M3 && weight.Cols % step == 0 && weight.BlockCols % step == 0;
    }

    /// <summary>
    /// packed [cols / step, n, step]: the n prescaled FP8 tokens of x (token stride <paramref name="stride"/>)
    /// regrouped so that one step (4 · Count columns from c, in the step decode's order:
    /// <see cref="ISimd{TVec}.Fp8StepPermute"/>) of all tokens is contiguous, token t at packed + n · c + t · step.
    /// The multi-token kernel then reads every token vector of a step at a constant offset from one pointer,
    /// instead of computing n token addresses per column vector, and decodes by steps. Returns max |x| (NaN when x holds a NaN or an infinity).
    /// </summary>
    private static float PackTokens<TVec, TW>(float* x, int stride, int n, int cols, float* packed) where TVec : struct where TW : struct, ISimd<TVec>
    {
        ReadOnlySpan<int> order = StepOrder<TVec, TW>.Source;
        int step = order.Length;
        var maxAbs = TW.Zero;
        var finite = TW.Zero; // v - v: 0 for finite values, NaN for NaN and infinities
        for (int t = 0; t < n; t++)
        {
            float* src = x + (long)t * stride;
            for (int c = 0; c < cols; c += step)
            {
                float* dst = packed + (long)n * c + t * step;
                TW.Fp8StepPermute(src + c, dst, order);
                for (int k = 0; k < step; k += TW.Count)
                {
                    var v = TW.Load(dst + k);
                    maxAbs = TW.Max(maxAbs, TW.Max(v, TW.Subtract(TW.Zero, v)));
                    finite = TW.Add(finite, TW.Subtract(v, v));
                }
            }
        }
        return float.IsNaN(TW.Sum(finite)) ? float.NaN : TW.MaxAcross(maxAbs);
    }

    /// <summary>
    /// job.XPermuted: the n prescaled tokens of job.XPrescaled (at job.XStride) as the FP8 step decode reads
    /// them, in the calling thread's buffer; on Vector128 the step order is the column order.
    /// </summary>
    private static void PermuteForSteps(Job job, WeightMatrix weight, int n, KernelIsa isa)
    {
        if (isa == KernelIsa.Vector128)
        {
            job.XPermuted = job.XPrescaled;
            return;
        }
        int stride = job.XStride;
        job.XPermuted = Grow(ref t_permuted, ref t_permutedLength, checked(n * stride));
        for (int t = 0; t < n; t++)
        {
            float* src = job.XPrescaled + (long)t * stride, dst = job.XPermuted + (long)t * stride;
            if (isa == KernelIsa.Vector512)
            {
                PermuteForSteps<Vector512<float>, Simd512>(src, dst, weight.Cols, weight.BlockCols);
            }
            else
            {
                PermuteForSteps<Vector256<float>, Simd256>(src, dst, weight.Cols, weight.BlockCols);
            }
        }
    }

    /// <summary>
    /// dst = src with every whole step of 4 · Count columns of each block (the span one step decode covers)
    /// reordered as <see cref="ISimd{TVec}.Fp8StepCode"/> orders the codes; the rest copied.
    /// </summary>
    private static void PermuteForSteps<TVec, TW>(float* src, float* dst, int cols, int blockCols) where TVec : struct where TW : struct, ISimd<TVec>
    {
        ReadOnlySpan<int> order = StepOrder<TVec, TW>.Source;
        int step = order.Length;
        for (int start = 0; start < cols; start += blockCols)
        {
            int end = Math.Min(start + blockCols, cols);
            int c = start;
            for (; c + step <= end; c += step)
            {
                TW.Fp8StepPermute(src + c, dst + c, order);
            }
            for (; c < end; c++)
            {
                dst[c] = src[c];
            }
        }
    }

    /// <summary>
    /// Per width, computed once: for each column of a step of 4 · Count, the column of the step it reads
    /// (<see cref="ISimd{TVec}.Fp8StepCode"/>'s order). Every one-token FP8 product permutes
    /// its x by it, so the per-column division and the code lookup are not redone per call (they cost ~6% of a
    /// batched MoE step, whose experts make thousands of small products).
    /// </summary>
    private static class StepOrder<TVec, TW> where TVec : struct where TW : struct, ISimd<TVec>
    {
        public static readonly int[] Source = Build();

        private static int[] Build()
        {
            var order = new int[4 * TW.Count];
            for (int i = 0; i < order.Length; i++)
            {
                order[i] = TW.Fp8StepCode(i);
            }
            return order;
        }
    }

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
            buffer = (float*)NativeMemory.AlignedAlloc((nuint)Math.Max(length, 1) * sizeof(float), 64);
            capacity = length;
        }
        return buffer;
    }

    /// <summary>One FP8 code as decode(b) · 2^-120, NaN for 0x7F / 0xFF (the vector decoders' value).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float DecodeFp8Scalar(byte b) =>
        (b & 0x7F) == 0x7F ? float.NaN : BitConverter.Int32BitsToSingle(((sbyte)b << 20) & SimdConstants.Fp8Mask);

    /// <summary>Prefetches the next row group (which follows these four rows in memory) one line per 64 bytes consumed, page boundaries included.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchNext(byte* next)
    {
        if (Sse.IsSupported)
        {
            Sse.Prefetch0(next);
        }
    }

    /// <summary>
    /// Four FP8 rows r..r+3 against the prescaled x (<paramref name="xs"/>, and <paramref name="xp"/>: the
    /// same permuted by <see cref="PermuteForSteps"/>); y[0..3] = results. Per step, four vectors of
    /// each row (<see cref="ISimd{TVec}.Fp8Step"/>, against xp; two accumulators per row, so each
    /// multiply-add chain is two deep per step) decoded without the NaN compare: the step's code bytes are scanned for NaN codes instead, one byte-wise max per 4 · lanes
    /// codes, and a group holding one is recomputed with <paramref name="checkedDecode"/>: every vector
    /// through the NaN-checked decode of the ragged-end loop, so its NaN rows come out NaN. Without
    /// <paramref name="scan"/> (a matrix known to hold no NaN code) the scan is left out. Returns whether
    /// the scan met a NaN code.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool Fp8Rows4<TVec, TW>(WeightMatrix w, int r, float* xs, float* xp, float* scales, float* y, bool scan, bool checkedDecode = false)
        where TVec : struct where TW : struct, ISimd<TVec>
    {
        int cols = w.Cols, blockCols = w.BlockCols, lanes = TW.Count, step = 4 * TW.Count;
        byte* p0 = w.RowPointer(r);
        byte* p1 = p0 + cols, p2 = p1 + cols, p3 = p2 + cols;
        byte* next = p0 + 4 * cols; // the next row group, fetched at four times the pace of c (four rows consumed)
        float* s0 = w.KernelScaleRow(r, scales), s1 = w.KernelScaleRow(r + 1, scales);
        float* s2 = w.KernelScaleRow(r + 2, scales), s3 = w.KernelScaleRow(r + 3, scales);
        var acc0 = TW.Zero;
        var acc1 = TW.Zero;
        var acc2 = TW.Zero;
        var acc3 = TW.Zero;
        var seen = TW.Zero;
        TW.Fp8StepConstants(out var k0, out var k1);
        float tail0 = 0, tail1 = 0, tail2 = 0, tail3 = 0;
        for (int b = 0, start = 0; start < cols; b++, start += blockCols)
        {
            int end = Math.Min(start + blockCols, cols);
            var b0 = TW.Zero;
            var b1 = TW.Zero;
            var b2 = TW.Zero;
            var b3 = TW.Zero;
            var e0 = TW.Zero;
            var e1 = TW.Zero;
            var e2 = TW.Zero;
            var e3 = TW.Zero;
            int c = start;
            for (; !checkedDecode && c + step <= end; c += step)
            {
                // 4 · step bytes consumed: one line per 64.
                PrefetchNext(next + 4 * c);
                if (lanes >= 8)
                {
                    PrefetchNext(next + 4 * c + 64);
                }
                if (lanes >= 16)
                {
                    PrefetchNext(next + 4 * c + 128);
                    PrefetchNext(next + 4 * c + 192);
                }
                if (scan)
                {
                    seen = TW.Fp8NaNScan(p0 + c, seen);
                    seen = TW.Fp8NaNScan(p1 + c, seen);
                    seen = TW.Fp8NaNScan(p2 + c, seen);
                    seen = TW.Fp8NaNScan(p3 + c, seen);
                }
                // One step of each row, against x permuted as the step decode orders the codes.
                if (TW.WideRegisterFile || !TW.Fp8StepIsTwoPairs)
                {
                    var x0 = TW.Load(xp + c);
                    var x1 = TW.Load(xp + c + lanes);
                    var x2 = TW.Load(xp + c + 2 * lanes);
                    var x3 = TW.Load(xp + c + 3 * lanes);
                    TW.Fp8Step(p0 + c, k0, k1, out var d0, out var d1, out var d2, out var d3);
                    b0 = TW.Fma(d0, x0, b0);
                    e0 = TW.Fma(d1, x1, e0);
                    b0 = TW.Fma(d2, x2, b0);
                    e0 = TW.Fma(d3, x3, e0);
                    TW.Fp8Step(p1 + c, k0, k1, out d0, out d1, out d2, out d3);
                    b1 = TW.Fma(d0, x0, b1);
                    e1 = TW.Fma(d1, x1, e1);
                    b1 = TW.Fma(d2, x2, b1);
                    e1 = TW.Fma(d3, x3, e1);
                    TW.Fp8Step(p2 + c, k0, k1, out d0, out d1, out d2, out d3);
                    b2 = TW.Fma(d0, x0, b2);
                    e2 = TW.Fma(d1, x1, e2);
                    b2 = TW.Fma(d2, x2, b2);
                    e2 = TW.Fma(d3, x3, e2);
                    TW.Fp8Step(p3 + c, k0, k1, out d0, out d1, out d2, out d3);
                    b3 = TW.Fma(d0, x0, b3);
                    e3 = TW.Fma(d1, x1, e3);
                    b3 = TW.Fma(d2, x2, b3);
                    e3 = TW.Fma(d3, x3, e3);
                }
                else
                {
                    // 16 registers (AVX2, SSE) and the step is two pairs: the same multiply-adds in the same order, but
                    // each pair used as soon as it is decoded, so fewer vectors are live at once. With a whole step's four
                    // decoded vectors, x and the eight accumulators, the JIT spilled two accumulators and a decoded vector
                    // every step. AVX2 without GFNI (Zen 4 with AVX-512 off), one token, matrix in L2: 16.8 -> 18.4 G
                    // multiply-adds/s (512 x 1024) and 19.4 -> 21.3 (1024 x 512); decode of Model S +5%.
                    TW.Fp8Pair(p0 + c, out var lo, out var hi);
                    b0 = TW.Fma(lo, TW.Load(xp + c), b0);
                    e0 = TW.Fma(hi, TW.Load(xp + c + lanes), e0);
                    TW.Fp8Pair(p0 + c + 2 * lanes, out lo, out hi);
                    b0 = TW.Fma(lo, TW.Load(xp + c + 2 * lanes), b0);
                    e0 = TW.Fma(hi, TW.Load(xp + c + 3 * lanes), e0);
                    TW.Fp8Pair(p1 + c, out lo, out hi);
                    b1 = TW.Fma(lo, TW.Load(xp + c), b1);
                    e1 = TW.Fma(hi, TW.Load(xp + c + lanes), e1);
                    TW.Fp8Pair(p1 + c + 2 * lanes, out lo, out hi);
                    b1 = TW.Fma(lo, TW.Load(xp + c + 2 * lanes), b1);
                    e1 = TW.Fma(hi, TW.Load(xp + c + 3 * lanes), e1);
                    TW.Fp8Pair(p2 + c, out lo, out hi);
                    b2 = TW.Fma(lo, TW.Load(xp + c), b2);
                    e2 = TW.Fma(hi, TW.Load(xp + c + lanes), e2);
                    TW.Fp8Pair(p2 + c + 2 * lanes, out lo, out hi);
                    b2 = TW.Fma(lo, TW.Load(xp + c + 2 * lanes), b2);
                    e2 = TW.Fma(hi, TW.Load(xp + c + 3 * lanes), e2);
                    TW.Fp8Pair(p3 + c, out lo, out hi);
                    b3 = TW.Fma(lo, TW.Load(xp + c), b3);
                    e3 = TW.Fma(hi, TW.Load(xp + c + lanes), e3);
                    TW.Fp8Pair(p3 + c + 2 * lanes, out lo, out hi);
                    b3 = TW.Fma(lo, TW.Load(xp + c + 2 * lanes), b3);
                    e3 = TW.Fma(hi, TW.Load(xp + c + 3 * lanes), e3);
                }
            }
            // The block's ragged end (blocks narrower than a step, or not a multiple of one), or all of it when
            // checkedDecode: the checked decode.
            for (; c + lanes <= end; c += lanes)
            {
                var xv = TW.Load(xs + c);
                b0 = TW.Fma(TW.Fp8(p0 + c), xv, b0);
                b1 = TW.Fma(TW.Fp8(p1 + c), xv, b1);
                b2 = TW.Fma(TW.Fp8(p2 + c), xv, b2);
                b3 = TW.Fma(TW.Fp8(p3 + c), xv, b3);
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
            acc0 = TW.Fma(TW.Add(b0, e0), TW.Splat(s0[b]), acc0);
            acc1 = TW.Fma(TW.Add(b1, e1), TW.Splat(s1[b]), acc1);
            acc2 = TW.Fma(TW.Add(b2, e2), TW.Splat(s2[b]), acc2);
            acc3 = TW.Fma(TW.Add(b3, e3), TW.Splat(s3[b]), acc3);
        }
        if (scan && TW.Fp8SawNaN(seen))
        {
            Fp8Rows4<TVec, TW>(w, r, xs, xp, scales, y, scan: false, checkedDecode: true);
            return true;
        }
        (TW.Sum4(acc0, acc1, acc2, acc3) + Vector128.Create(tail0, tail1, tail2, tail3)).Store(y);
        return false;
    }

    /// <summary>
    /// Two FP8 rows r, r+1 against <typeparamref name="TN"/> (2..8) prescaled token vectors xs [TN, xStride]:
    /// y[t · rows + j]. Each weight vector is decoded once for every token and multiplied by its block's
    /// scale there (one multiply per decoded vector), so no per-block accumulators are needed: 2 · TN
    /// accumulators (up to four tokens they fit the 16 registers of AVX2 with the two weight vectors;
    /// eight need a 32-register file). A block's whole four-vector steps decode without the NaN compare,
    /// unrolled, their codes scanned for NaN codes as in <see cref="Fp8Rows4{TVec, TW}"/>; a pair of rows
    /// holding one is recomputed with <paramref name="checkedDecode"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool Fp8Rows2Tokens<TVec, TW, TN>(WeightMatrix w, int r, float* xs, int xStride, float* scales, int rows, float* y, bool scan, bool checkedDecode = false)
        where TVec : struct where TW : struct, ISimd<TVec> where TN : struct, ITokenCount
    {
        int n = TN.Value;
        int cols = w.Cols, blockCols = w.BlockCols, lanes = TW.Count, step = 4 * TW.Count;
        byte* p0 = w.RowPointer(r);
        byte* p1 = p0 + cols;
        byte* next = p0 + 2 * cols; // the next row pair, fetched at twice the pace of c (two rows consumed)
        float* s0 = w.KernelScaleRow(r, scales), s1 = w.KernelScaleRow(r + 1, scales);
        var a00 = TW.Zero; var a01 = TW.Zero; var a02 = TW.Zero; var a03 = TW.Zero;
        var a04 = TW.Zero; var a05 = TW.Zero; var a06 = TW.Zero; var a07 = TW.Zero;
        var a10 = TW.Zero; var a11 = TW.Zero; var a12 = TW.Zero; var a13 = TW.Zero;
        var a14 = TW.Zero; var a15 = TW.Zero; var a16 = TW.Zero; var a17 = TW.Zero;
        var seen = TW.Zero;
        // [t0..t3] and [t4..t7] of row 0 and of row 1: the blocks' scalar ends.
        Vector128<float> tail0 = default, tail0High = default, tail1 = default, tail1High = default;
        for (int b = 0, start = 0; start < cols; b++, start += blockCols)
        {
            int end = Math.Min(start + blockCols, cols);
            var scale0 = TW.Splat(s0[b]);
            var scale1 = TW.Splat(s1[b]);
            int c = start;
            for (; !checkedDecode && c + step <= end; c += step)
            {
                // 2 · step bytes consumed: one line per 64.
                PrefetchNext(next + 2 * c);
                if (lanes >= 16)
                {
                    PrefetchNext(next + 2 * c + 64);
                }
                if (scan)
                {
                    seen = TW.Fp8NaNScan(p0 + c, seen);
                    seen = TW.Fp8NaNScan(p1 + c, seen);
                }
                for (int k = c; k < c + step; k += lanes)
                {
                    AccumulateTokens<TVec, TW, TN>(TW.Multiply(TW.Fp8Finite(p0 + k), scale0), TW.Multiply(TW.Fp8Finite(p1 + k), scale1), xs + k, xStride,
                        ref a00, ref a01, ref a02, ref a03, ref a04, ref a05, ref a06, ref a07,
                        ref a10, ref a11, ref a12, ref a13, ref a14, ref a15, ref a16, ref a17);
                }
            }
            // The block's ragged end (or all of it when checkedDecode): the checked decode.
            for (; c + lanes <= end; c += lanes)
            {
                AccumulateTokens<TVec, TW, TN>(TW.Multiply(TW.Fp8(p0 + c), scale0), TW.Multiply(TW.Fp8(p1 + c), scale1), xs + c, xStride,
                    ref a00, ref a01, ref a02, ref a03, ref a04, ref a05, ref a06, ref a07,
                    ref a10, ref a11, ref a12, ref a13, ref a14, ref a15, ref a16, ref a17);
            }
            for (; c < end; c++)
            {
                float w0 = DecodeFp8Scalar(p0[c]) * s0[b], w1 = DecodeFp8Scalar(p1[c]) * s1[b];
                var xc = TokenColumn(xs + c, xStride, 0, n);
                tail0 += Vector128.Create(w0) * xc;
                tail1 += Vector128.Create(w1) * xc;
                if (n > 4)
                {
                    xc = TokenColumn(xs + c, xStride, 4, n);
                    tail0High += Vector128.Create(w0) * xc;
                    tail1High += Vector128.Create(w1) * xc;
                }
            }
        }
        if (scan && TW.Fp8SawNaN(seen))
        {
            Fp8Rows2Tokens<TVec, TW, TN>(w, r, xs, xStride, scales, rows, y, scan: false, checkedDecode: true);
            return true;
        }
        StoreRows2(TW.Sum4(a00, a01, a02, a03) + tail0, TW.Sum4(a10, a11, a12, a13) + tail1, y, rows, 0, Math.Min(n, 4));
        if (n > 4)
        {
            StoreRows2(TW.Sum4(a04, a05, a06, a07) + tail0High, TW.Sum4(a14, a15, a16, a17) + tail1High, y, rows, 4, n);
        }
        return false;
    }

    /// <summary>
    /// Two FP8 rows r, r+1 against <typeparamref name="TN"/> (2..8) prescaled tokens packed per step by
    /// <see cref="PackTokens"/> (<paramref name="packed"/>, the block's columns whole steps: <see cref="PackedStepsFit"/>):
    /// y[t · rows + j]. Per step each row's four vectors are decoded once (<see cref="ISimd{TVec}.Fp8Step"/>) and
    /// scaled by their block's scale (or not, when <typeparamref name="TS"/> says the tokens carry the scales of the
    /// rows' block row), then multiply-add against the TN tokens' vectors, all at constant offsets
    /// from one pointer: 2 · TN accumulators, the eight decoded vectors and one token vector in registers
    /// (8 tokens: 32-register machines). The 2-row kernel over x at a token stride spends a third of its
    /// instructions on token addresses and decodes column by column; against it (in-process A/B, Model S's
    /// q/k/v shapes, Sapphire Rapids) this kernel is 1.35x as fast on one thread and an 8-row step 3.3% faster.
    /// NaN codes as in <see cref="Fp8Rows4{TVec, TW}"/>: a pair of rows holding one is recomputed by the
    /// checked 2-row kernel over the column-order tokens <paramref name="xs"/> [TN, xStride].
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool Fp8Rows2TokensPacked<TVec, TW, TN, TS>(WeightMatrix w, int r, float* packed, float* xs, int xStride, float* scales, int rows, float* y, bool scan)
        where TVec : struct where TW : struct, ISimd<TVec> where TN : struct, ITokenCount where TS : struct, IPackedScaling
    {
        int n = TN.Value;
        int cols = w.Cols, blockCols = w.BlockCols, lanes = TW.Count, step = 4 * TW.Count;
        byte* p0 = w.RowPointer(r);
        byte* p1 = p0 + cols;
        byte* next = p0 + 2 * cols; // the next row pair, fetched at twice the pace of c (two rows consumed)
        float* s0 = w.KernelScaleRow(r, scales), s1 = w.KernelScaleRow(r + 1, scales);
        var a00 = TW.Zero; var a01 = TW.Zero; var a02 = TW.Zero; var a03 = TW.Zero;
        var a04 = TW.Zero; var a05 = TW.Zero; var a06 = TW.Zero; var a07 = TW.Zero;
        var a10 = TW.Zero; var a11 = TW.Zero; var a12 = TW.Zero; var a13 = TW.Zero;
        var a14 = TW.Zero; var a15 = TW.Zero; var a16 = TW.Zero; var a17 = TW.Zero;
        var seen = TW.Zero;
        TW.Fp8StepConstants(out var k0, out var k1);
        for (int b = 0, start = 0; start < cols; b++, start += blockCols)
        {
            int end = Math.Min(start + blockCols, cols);
            var scale0 = TW.Splat(s0[b]);
            var scale1 = TW.Splat(s1[b]);
            for (int c = start; c < end; c += step)
            {
                // 2 · step bytes consumed: one line per 64.
                PrefetchNext(next + 2 * c);
                if (lanes >= 16)
                {
                    PrefetchNext(next + 2 * c + 64);
                }
                if (scan)
                {
                    seen = TW.Fp8NaNScan(p0 + c, seen);
                    seen = TW.Fp8NaNScan(p1 + c, seen);
                }
                TW.Fp8Step(p0 + c, k0, k1, out var d0, out var d1, out var d2, out var d3);
                TW.Fp8Step(p1 + c, k0, k1, out var e0, out var e1, out var e2, out var e3);
                float* xc = packed + (long)n * c;
                AccumulateTokens<TVec, TW, TN>(TS.InTokens ? d0 : TW.Multiply(d0, scale0), TS.InTokens ? e0 : TW.Multiply(e0, scale1), xc, step,
                    ref a00, ref a01, ref a02, ref a03, ref a04, ref a05, ref a06, ref a07,
                    ref a10, ref a11, ref a12, ref a13, ref a14, ref a15, ref a16, ref a17);
                AccumulateTokens<TVec, TW, TN>(TS.InTokens ? d1 : TW.Multiply(d1, scale0), TS.InTokens ? e1 : TW.Multiply(e1, scale1), xc + lanes, step,
                    ref a00, ref a01, ref a02, ref a03, ref a04, ref a05, ref a06, ref a07,
                    ref a10, ref a11, ref a12, ref a13, ref a14, ref a15, ref a16, ref a17);
                AccumulateTokens<TVec, TW, TN>(TS.InTokens ? d2 : TW.Multiply(d2, scale0), TS.InTokens ? e2 : TW.Multiply(e2, scale1), xc + 2 * lanes, step,
                    ref a00, ref a01, ref a02, ref a03, ref a04, ref a05, ref a06, ref a07,
                    ref a10, ref a11, ref a12, ref a13, ref a14, ref a15, ref a16, ref a17);
                AccumulateTokens<TVec, TW, TN>(TS.InTokens ? d3 : TW.Multiply(d3, scale0), TS.InTokens ? e3 : TW.Multiply(e3, scale1), xc + 3 * lanes, step,
                    ref a00, ref a01, ref a02, ref a03, ref a04, ref a05, ref a06, ref a07,
                    ref a10, ref a11, ref a12, ref a13, ref a14, ref a15, ref a16, ref a17);
            }
        }
        if (scan && TW.Fp8SawNaN(seen))
        {
            Fp8Rows2Tokens<TVec, TW, TN>(w, r, xs, xStride, scales, rows, y, scan: false, checkedDecode: true);
            return true;
        }
        // Scales in the tokens leave the kernel's 2^20 (see WeightMatrix.Fp8KernelScaleFactor) to put back.
        var back = Vector128.Create(TS.InTokens ? WeightMatrix.Fp8KernelScaleFactor : 1f);
        StoreRows2(TW.Sum4(a00, a01, a02, a03) * back, TW.Sum4(a10, a11, a12, a13) * back, y, rows, 0, Math.Min(n, 4));
        if (n > 4)
        {
            StoreRows2(TW.Sum4(a04, a05, a06, a07) * back, TW.Sum4(a14, a15, a16, a17) * back, y, rows, 4, n);
        }
        return false;
    }

    /// <summary>
    /// Four FP8 rows r..r+3 against two prescaled token vectors xs [2, xStride] (32-register machines):
    /// y[t · rows + j]. As <see cref="Fp8Rows4{TVec, TW}"/> with a second token: per block, one unscaled
    /// accumulator per (row, token), scaled once at the block's end, so a decoded weight vector costs two
    /// multiply-adds and no multiply, and each token vector is loaded once for four rows (the 2-row kernel
    /// multiplies every decoded vector by its scale and loads x per two rows). Two tokens are the most
    /// common expert batch of an 8-stream MoE step after one. Each step decodes by <see cref="ISimd{TVec}.Fp8Step"/>
    /// against the permuted tokens (<paramref name="xp"/>, token stride <paramref name="xStride"/>); before, it decoded
    /// in column order at 3 instructions per vector (an in-process A/B of 8-stream steps: 2.6% faster).
    /// Vector512 runs the packed 2-row kernel instead where the blocks are whole steps (3-4% faster again);
    /// this one serves the other shapes and NEON. NaN codes as in <see cref="Fp8Rows4{TVec, TW}"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool Fp8Rows4Tokens2<TVec, TW>(WeightMatrix w, int r, float* xs, float* xp, int xStride, float* scales, int rows, float* y, bool scan, bool checkedDecode = false)
        where TVec : struct where TW : struct, ISimd<TVec>
    {
        int cols = w.Cols, blockCols = w.BlockCols, lanes = TW.Count, step = 4 * TW.Count;
        byte* p0 = w.RowPointer(r);
        byte* p1 = p0 + cols, p2 = p1 + cols, p3 = p2 + cols;
        byte* next = p0 + 4 * cols; // the next row group, fetched at four times the pace of c (four rows consumed)
        float* s0 = w.KernelScaleRow(r, scales), s1 = w.KernelScaleRow(r + 1, scales);
        float* s2 = w.KernelScaleRow(r + 2, scales), s3 = w.KernelScaleRow(r + 3, scales);
        float* x1 = xs + xStride, xp1 = xp + xStride;
        var acc00 = TW.Zero; var acc01 = TW.Zero; var acc10 = TW.Zero; var acc11 = TW.Zero;
        var acc20 = TW.Zero; var acc21 = TW.Zero; var acc30 = TW.Zero; var acc31 = TW.Zero;
        var seen = TW.Zero;
        Vector128<float> tail0 = default, tail1 = default; // rows 0..3 of token 0 and of token 1: the blocks' scalar ends
        TW.Fp8StepConstants(out var k0, out var k1);
        for (int b = 0, start = 0; start < cols; b++, start += blockCols)
        {
            int end = Math.Min(start + blockCols, cols);
            var b00 = TW.Zero; var b01 = TW.Zero; var b10 = TW.Zero; var b11 = TW.Zero;
            var b20 = TW.Zero; var b21 = TW.Zero; var b30 = TW.Zero; var b31 = TW.Zero;
            int c = start;
            for (; !checkedDecode && c + step <= end; c += step)
            {
                // 4 · step bytes consumed: one line per 64.
                PrefetchNext(next + 4 * c);
                if (lanes >= 8)
                {
                    PrefetchNext(next + 4 * c + 64);
                }
                if (lanes >= 16)
                {
                    PrefetchNext(next + 4 * c + 128);
                    PrefetchNext(next + 4 * c + 192);
                }
                if (scan)
                {
                    seen = TW.Fp8NaNScan(p0 + c, seen);
                    seen = TW.Fp8NaNScan(p1 + c, seen);
                    seen = TW.Fp8NaNScan(p2 + c, seen);
                    seen = TW.Fp8NaNScan(p3 + c, seen);
                }
                // One step of each row, against both tokens permuted as the step decode orders the codes.
                var xa = TW.Load(xp + c);
                var xb = TW.Load(xp + c + lanes);
                var xc = TW.Load(xp + c + 2 * lanes);
                var xd = TW.Load(xp + c + 3 * lanes);
                var ya = TW.Load(xp1 + c);
                var yb = TW.Load(xp1 + c + lanes);
                var yc = TW.Load(xp1 + c + 2 * lanes);
                var yd = TW.Load(xp1 + c + 3 * lanes);
                TW.Fp8Step(p0 + c, k0, k1, out var d0, out var d1, out var d2, out var d3);
                b00 = TW.Fma(d3, xd, TW.Fma(d2, xc, TW.Fma(d1, xb, TW.Fma(d0, xa, b00))));
                b01 = TW.Fma(d3, yd, TW.Fma(d2, yc, TW.Fma(d1, yb, TW.Fma(d0, ya, b01))));
                TW.Fp8Step(p1 + c, k0, k1, out d0, out d1, out d2, out d3);
                b10 = TW.Fma(d3, xd, TW.Fma(d2, xc, TW.Fma(d1, xb, TW.Fma(d0, xa, b10))));
                b11 = TW.Fma(d3, yd, TW.Fma(d2, yc, TW.Fma(d1, yb, TW.Fma(d0, ya, b11))));
                TW.Fp8Step(p2 + c, k0, k1, out d0, out d1, out d2, out d3);
                b20 = TW.Fma(d3, xd, TW.Fma(d2, xc, TW.Fma(d1, xb, TW.Fma(d0, xa, b20))));
                b21 = TW.Fma(d3, yd, TW.Fma(d2, yc, TW.Fma(d1, yb, TW.Fma(d0, ya, b21))));
                TW.Fp8Step(p3 + c, k0, k1, out d0, out d1, out d2, out d3);
                b30 = TW.Fma(d3, xd, TW.Fma(d2, xc, TW.Fma(d1, xb, TW.Fma(d0, xa, b30))));
                b31 = TW.Fma(d3, yd, TW.Fma(d2, yc, TW.Fma(d1, yb, TW.Fma(d0, ya, b31))));
            }
            // The block's ragged end (or all of it when checkedDecode): the checked decode.
            for (; c + lanes <= end; c += lanes)
            {
                var xa = TW.Load(xs + c);
                var xb = TW.Load(x1 + c);
                var d = TW.Fp8(p0 + c);
                b00 = TW.Fma(d, xa, b00);
                b01 = TW.Fma(d, xb, b01);
                d = TW.Fp8(p1 + c);
                b10 = TW.Fma(d, xa, b10);
                b11 = TW.Fma(d, xb, b11);
                d = TW.Fp8(p2 + c);
                b20 = TW.Fma(d, xa, b20);
                b21 = TW.Fma(d, xb, b21);
                d = TW.Fp8(p3 + c);
                b30 = TW.Fma(d, xa, b30);
                b31 = TW.Fma(d, xb, b31);
            }
            if (c < end)
            {
                Vector128<float> t0 = default, t1 = default;
                for (; c < end; c++)
                {
                    var codes = Vector128.Create(DecodeFp8Scalar(p0[c]), DecodeFp8Scalar(p1[c]), DecodeFp8Scalar(p2[c]), DecodeFp8Scalar(p3[c]));
                    t0 += codes * Vector128.Create(xs[c]);
                    t1 += codes * Vector128.Create(x1[c]);
                }
                var blockScales = Vector128.Create(s0[b], s1[b], s2[b], s3[b]);
                tail0 += t0 * blockScales;
                tail1 += t1 * blockScales;
            }
            var scale0 = TW.Splat(s0[b]);
            var scale1 = TW.Splat(s1[b]);
            var scale2 = TW.Splat(s2[b]);
            var scale3 = TW.Splat(s3[b]);
            acc00 = TW.Fma(b00, scale0, acc00);
            acc01 = TW.Fma(b01, scale0, acc01);
            acc10 = TW.Fma(b10, scale1, acc10);
            acc11 = TW.Fma(b11, scale1, acc11);
            acc20 = TW.Fma(b20, scale2, acc20);
            acc21 = TW.Fma(b21, scale2, acc21);
            acc30 = TW.Fma(b30, scale3, acc30);
            acc31 = TW.Fma(b31, scale3, acc31);
        }
        if (scan && TW.Fp8SawNaN(seen))
        {
            Fp8Rows4Tokens2<TVec, TW>(w, r, xs, xp, xStride, scales, rows, y, scan: false, checkedDecode: true);
            return true;
        }
        (TW.Sum4(acc00, acc10, acc20, acc30) + tail0).Store(y);
        (TW.Sum4(acc01, acc11, acc21, acc31) + tail1).Store(y + rows);
        return false;
    }

    /// <summary>
    /// The 2-row kernels' multiply-adds at one column vector: a0t += w0 · x_t and a1t += w1 · x_t for the
    /// TN tokens t (x at the column, token stride <paramref name="stride"/>). Inlined, the accumulators stay in registers.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AccumulateTokens<TVec, TW, TN>(TVec w0, TVec w1, float* x, int stride,
        ref TVec a00, ref TVec a01, ref TVec a02, ref TVec a03, ref TVec a04, ref TVec a05, ref TVec a06, ref TVec a07,
        ref TVec a10, ref TVec a11, ref TVec a12, ref TVec a13, ref TVec a14, ref TVec a15, ref TVec a16, ref TVec a17)
        where TVec : struct where TW : struct, ISimd<TVec> where TN : struct, ITokenCount
    {
        int n = TN.Value;
        var v = TW.Load(x);
        a00 = TW.Fma(w0, v, a00);
        a10 = TW.Fma(w1, v, a10);
        v = TW.Load(x + stride);
        a01 = TW.Fma(w0, v, a01);
        a11 = TW.Fma(w1, v, a11);
        if (n > 2)
        {
            v = TW.Load(x + 2  * stride);
            a02 = TW.Fma(w0, v, a02);
            a12 = TW.Fma(w1, v, a12);
        }
        if (n > 3)
        {
            v = TW.Load(x + 3  * stride);
            a03 = TW.Fma(w0, v, a03);
            a13 = TW.Fma(w1, v, a13);
        }
        if (n > 4)
        {
            v = TW.Load(x + 4  * stride);
            a04 = TW.Fma(w0, v, a04);
            a14 = TW.Fma(w1, v, a14);
        }
        if (n > 5)
        {
            v = TW.Load(x + 5  * stride);
            a05 = TW.Fma(w0, v, a05);
            a15 = TW.Fma(w1, v, a15);
        }
        if (n > 6)
        {
            v = TW.Load(x + 6  * stride);
            a06 = TW.Fma(w0, v, a06);
            a16 = TW.Fma(w1, v, a16);
        }
        if (n > 7)
        {
            v = TW.Load(x + 7  * stride);
            a07 = TW.Fma(w0, v, a07);
            a17 = TW.Fma(w1, v, a17);
        }
    }

    /// <summary>Column c of tokens first..first+3 (x at column c, token stride <paramref name="stride"/>), zero past token n.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> TokenColumn(float* x, int stride, int first, int n) => Vector128.Create(
        first < n ? x[(long)first * stride] : 0f, first + 1 < n ? x[(long)(first + 1) * stride] : 0f,
        first + 2 < n ? x[(long)(first + 2) * stride] : 0f, first + 3 < n ? x[(long)(first + 3) * stride] : 0f);

    /// <summary>y[t · rows + j] for tokens t in [first, end) of a 2-row kernel: lane t − first of row0 (j = 0) and row1 (j = 1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRows2(Vector128<float> row0, Vector128<float> row1, float* y, int rows, int first, int end)
    {
        for (int t = first; t < end; t++)
        {
            y[(long)t * rows] = row0[t - first];
            y[(long)t * rows + 1] = row1[t - first];
        }
    }

    /// <summary>One FP8 row against the prescaled x (scalar tails).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Fp8Row<TVec, TW>(byte* p, int cols, int blockCols, float* xs, float* s) where TVec : struct where TW : struct, ISimd<TVec>
    {
        var acc = TW.Zero;
        float tail = 0;
        for (int b = 0, start = 0; start < cols; b++, start += blockCols)
        {
            int end = Math.Min(start + blockCols, cols);
            var blockAcc = TW.Zero;
            int c = start;
            for (; c + TW.Count <= end; c += TW.Count)
            {
                blockAcc = TW.Fma(TW.Fp8(p + c), TW.Load(xs + c), blockAcc);
            }
            float t = 0;
            for (; c < end; c++)
            {
                t += DecodeFp8Scalar(p[c]) * xs[c];
            }
            tail += t * s[b];
            acc = TW.Fma(blockAcc, TW.Splat(s[b]), acc);
        }
        return TW.Sum(acc) + tail;
    }

    /// <summary>Four Q8_0 rows r..r+3 against float x: y[0..3]. Per group of 32: 32 / lanes products per row, then one scale.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q8Rows4<TVec, TW>(WeightMatrix w, int r, float* x, float* scales, float* y) where TVec : struct where TW : struct, ISimd<TVec>
    {
        int cols = w.Cols, groups = w.ScaleCols, lanes = TW.Count;
        sbyte* p0 = (sbyte*)w.RowPointer(r);
        sbyte* p1 = p0 + cols, p2 = p1 + cols, p3 = p2 + cols;
        float* s0 = w.KernelScaleRow(r, scales), s1 = s0 + groups, s2 = s1 + groups, s3 = s2 + groups;
        var acc0 = TW.Zero;
        var acc1 = TW.Zero;
        var acc2 = TW.Zero;
        var acc3 = TW.Zero;
        int g = 0, c = 0;
        for (; c + Group <= cols; g++, c += Group)
        {
            PrefetchNext((byte*)p0 + 4 * cols + 4 * c);
            PrefetchNext((byte*)p0 + 4 * cols + 4 * c + 64);
            var xa = TW.Load(x + c);
            var g0 = TW.Multiply(TW.Q8(p0 + c), xa);
            var g1 = TW.Multiply(TW.Q8(p1 + c), xa);
            var g2 = TW.Multiply(TW.Q8(p2 + c), xa);
            var g3 = TW.Multiply(TW.Q8(p3 + c), xa);
            for (int k = lanes; k < Group; k += lanes)
            {
                var xk = TW.Load(x + c + k);
                g0 = TW.Fma(TW.Q8(p0 + c + k), xk, g0);
                g1 = TW.Fma(TW.Q8(p1 + c + k), xk, g1);
                g2 = TW.Fma(TW.Q8(p2 + c + k), xk, g2);
                g3 = TW.Fma(TW.Q8(p3 + c + k), xk, g3);
            }
            acc0 = TW.Fma(g0, TW.Splat(s0[g]), acc0);
            acc1 = TW.Fma(g1, TW.Splat(s1[g]), acc1);
            acc2 = TW.Fma(g2, TW.Splat(s2[g]), acc2);
            acc3 = TW.Fma(g3, TW.Splat(s3[g]), acc3);
        }
        (TW.Sum4(acc0, acc1, acc2, acc3) + Vector128.Create(Q8TailScalar(p0, g, cols, x, s0), Q8TailScalar(p1, g, cols, x, s1),
            Q8TailScalar(p2, g, cols, x, s2), Q8TailScalar(p3, g, cols, x, s3))).Store(y);
    }

    /// <summary>The groups of a Q8_0 row from group <paramref name="g"/> on (the ragged last one, or all of them), against float x.</summary>
    private static float Q8TailScalar(sbyte* p, int g, int cols, float* x, float* s)
    {
        float sum = 0;
        for (int c = g * Group; c < cols; g++)
        {
            float groupSum = 0;
            for (int end = Math.Min(c + Group, cols); c < end; c++)
            {
                groupSum += p[c] * x[c];
            }
            sum += groupSum * s[g];
        }
        return sum;
    }

    /// <summary>Four Q4_0 rows r..r+3 against float x: y[0..3], one group of 32 weights per row at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q4Rows4<TVec, TW>(WeightMatrix w, int r, float* x, float* scales, float* y) where TVec : struct where TW : struct, ISimd<TVec>
    {
        int cols = w.Cols, groups = w.ScaleCols, lanes = TW.Count;
        long stride = w.RowStrideBytes;
        byte* p0 = w.RowPointer(r);
        byte* p1 = p0 + stride, p2 = p1 + stride, p3 = p2 + stride;
        float* s0 = w.KernelScaleRow(r, scales), s1 = s0 + groups, s2 = s1 + groups, s3 = s2 + groups;
        var acc0 = TW.Zero;
        var acc1 = TW.Zero;
        var acc2 = TW.Zero;
        var acc3 = TW.Zero;
        int g = 0;
        for (; (g + 1) * Group <= cols; g++)
        {
            int c = g * Group;
            PrefetchNext(p0 + 4 * stride + 64 * g);
            // Bytes j.. hold codes j.. (low nibbles) and j + 16.. (high): the first lanes' products start the sums.
            var xa = TW.Load(x + c);
            var xb = TW.Load(x + c + Group / 2);
            TW.Q4(p0 + 16 * g, out var l0, out var h0);
            TW.Q4(p1 + 16 * g, out var l1, out var h1);
            TW.Q4(p2 + 16 * g, out var l2, out var h2);
            TW.Q4(p3 + 16 * g, out var l3, out var h3);
            var g0 = TW.Fma(h0, xb, TW.Multiply(l0, xa));
            var g1 = TW.Fma(h1, xb, TW.Multiply(l1, xa));
            var g2 = TW.Fma(h2, xb, TW.Multiply(l2, xa));
            var g3 = TW.Fma(h3, xb, TW.Multiply(l3, xa));
            for (int j = lanes; j < Group / 2; j += lanes)
            {
                xa = TW.Load(x + c + j);
                xb = TW.Load(x + c + j + Group / 2);
                TW.Q4(p0 + 16 * g + j, out l0, out h0);
                TW.Q4(p1 + 16 * g + j, out l1, out h1);
                TW.Q4(p2 + 16 * g + j, out l2, out h2);
                TW.Q4(p3 + 16 * g + j, out l3, out h3);
                g0 = TW.Fma(h0, xb, TW.Fma(l0, xa, g0));
                g1 = TW.Fma(h1, xb, TW.Fma(l1, xa, g1));
                g2 = TW.Fma(h2, xb, TW.Fma(l2, xa, g2));
                g3 = TW.Fma(h3, xb, TW.Fma(l3, xa, g3));
            }
            acc0 = TW.Fma(g0, TW.Splat(s0[g]), acc0);
            acc1 = TW.Fma(g1, TW.Splat(s1[g]), acc1);
            acc2 = TW.Fma(g2, TW.Splat(s2[g]), acc2);
            acc3 = TW.Fma(g3, TW.Splat(s3[g]), acc3);
        }
        (TW.Sum4(acc0, acc1, acc2, acc3) + Vector128.Create(Q4TailScalar(p0, g, cols, x, s0), Q4TailScalar(p1, g, cols, x, s1),
            Q4TailScalar(p2, g, cols, x, s2), Q4TailScalar(p3, g, cols, x, s3))).Store(y);
    }

    /// <summary>The groups of a Q4_0 row from group <paramref name="g"/> on, against float x.</summary>
    private static float Q4TailScalar(byte* p, int g, int cols, float* x, float* s)
    {
        float sum = 0;
        for (int c = g * Group; c < cols; g++)
        {
            float groupSum = 0;
            for (int end = Math.Min(c + Group, cols); c < end; c++)
            {
                groupSum += WeightMatrix.Q4Value(p, c) * x[c];
            }
            sum += groupSum * s[g];
        }
        return sum;
    }

    /// <summary>
    /// Four Q8_0 rows against int8 activations: per group, each row's exact integer dot product
    /// (the activation codes loaded once for the four rows) times d_w · d_x.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q8IntRows4<TVec, TCodes, TW>(WeightMatrix w, int r, sbyte* xq, float* xd, float* scales, float* y)
        where TVec : struct where TCodes : struct where TW : struct, ISimd<TVec>, IInt8Dot<TVec, TCodes>
    {
        int cols = w.Cols, groups = w.ScaleCols, full = cols / Group;
        sbyte* p0 = (sbyte*)w.RowPointer(r);
        sbyte* p1 = p0 + cols, p2 = p1 + cols, p3 = p2 + cols;
        float* s0 = w.KernelScaleRow(r, scales), s1 = s0 + groups, s2 = s1 + groups, s3 = s2 + groups;
        var acc0 = TW.Zero;
        var acc1 = TW.Zero;
        var acc2 = TW.Zero;
        var acc3 = TW.Zero;
        for (int g = 0; g < full; g++)
        {
            int c = g * Group;
            PrefetchNext((byte*)p0 + 4 * cols + 4 * c);
            PrefetchNext((byte*)p0 + 4 * cols + 4 * c + 64);
            var xv = TW.LoadQ8(xq + c);
            float d = xd[g];
            acc0 = TW.Fma(TW.Dot(TW.LoadQ8(p0 + c), xv), TW.Splat(s0[g] * d), acc0);
            acc1 = TW.Fma(TW.Dot(TW.LoadQ8(p1 + c), xv), TW.Splat(s1[g] * d), acc1);
            acc2 = TW.Fma(TW.Dot(TW.LoadQ8(p2 + c), xv), TW.Splat(s2[g] * d), acc2);
            acc3 = TW.Fma(TW.Dot(TW.LoadQ8(p3 + c), xv), TW.Splat(s3[g] * d), acc3);
        }
        var result = TW.Sum4(acc0, acc1, acc2, acc3);
        if (full < groups)
        {
            result += Vector128.Create(Q8IntGroupScalar(p0, full, cols, xq, xd, s0), Q8IntGroupScalar(p1, full, cols, xq, xd, s1),
                Q8IntGroupScalar(p2, full, cols, xq, xd, s2), Q8IntGroupScalar(p3, full, cols, xq, xd, s3));
        }
        result.Store(y);
    }

    /// <summary>Four Q4_0 rows against int8 activations (every group full: rows are padded to whole groups, x's padding codes are 0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q4IntRows4<TVec, TCodes, TW>(WeightMatrix w, int r, sbyte* xq, float* xd, float* scales, float* y)
        where TVec : struct where TCodes : struct where TW : struct, ISimd<TVec>, IInt8Dot<TVec, TCodes>
    {
        int groups = w.ScaleCols;
        long stride = w.RowStrideBytes;
        byte* p0 = w.RowPointer(r);
        byte* p1 = p0 + stride, p2 = p1 + stride, p3 = p2 + stride;
        float* s0 = w.KernelScaleRow(r, scales), s1 = s0 + groups, s2 = s1 + groups, s3 = s2 + groups;
        var acc0 = TW.Zero;
        var acc1 = TW.Zero;
        var acc2 = TW.Zero;
        var acc3 = TW.Zero;
        for (int g = 0; g < groups; g++)
        {
            PrefetchNext(p0 + 4 * stride + 64 * g);
            var xv = TW.LoadQ8(xq + g * Group);
            float d = xd[g];
            acc0 = TW.Fma(TW.Dot(TW.LoadQ4(p0 + 16 * g), xv), TW.Splat(s0[g] * d), acc0);
            acc1 = TW.Fma(TW.Dot(TW.LoadQ4(p1 + 16 * g), xv), TW.Splat(s1[g] * d), acc1);
            acc2 = TW.Fma(TW.Dot(TW.LoadQ4(p2 + 16 * g), xv), TW.Splat(s2[g] * d), acc2);
            acc3 = TW.Fma(TW.Dot(TW.LoadQ4(p3 + 16 * g), xv), TW.Splat(s3[g] * d), acc3);
        }
        TW.Sum4(acc0, acc1, acc2, acc3).Store(y);
    }

    /// <summary>Group <paramref name="g"/> of a Q8_0 row against int8 activations, in integers.</summary>
    private static float Q8IntGroupScalar(sbyte* p, int g, int cols, sbyte* xq, float* xd, float* s)
    {
        int sum = 0;
        for (int c = g * Group, end = Math.Min(c + Group, cols); c < end; c++)
        {
            sum += p[c] * xq[c];
        }
        return sum * (s[g] * xd[g]);
    }

    /// <summary>One Q8_0 / Q4_0 row against int8 activations, scalar: Σ_g (Σ w·q exactly) · (d_w · d_x).</summary>
    private static float IntRowScalar(WeightMatrix w, int r, sbyte* xq, float* xd, float* scales)
    {
        byte* p = w.RowPointer(r);
        float* s = w.KernelScaleRow(r, scales);
        float sum = 0;
        for (int g = 0; g < w.ScaleCols; g++)
        {
            if (w.DType == DType.I8)
            {
                sum += Q8IntGroupScalar((sbyte*)p, g, w.Cols, xq, xd, s);
                continue;
            }
            int dot = 0;
            for (int c = g * Group, end = Math.Min(c + Group, w.Cols); c < end; c++)
            {
                dot += WeightMatrix.Q4Value(p, c) * xq[c];
            }
            sum += dot * (s[g] * xd[g]);
        }
        return sum;
    }

    /// <summary>Four BF16 rows against x: y[0..3].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Bf16Rows4<TVec, TW>(ushort* p0, int cols, float* x, float* y) where TVec : struct where TW : struct, ISimd<TVec>
    {
        ushort* p1 = p0 + cols, p2 = p1 + cols, p3 = p2 + cols;
        var acc0 = TW.Zero;
        var acc1 = TW.Zero;
        var acc2 = TW.Zero;
        var acc3 = TW.Zero;
        int c = 0;
        for (; c + TW.Count <= cols; c += TW.Count)
        {
            // Fetch the next row group (4 · cols values) at four times the pace of c, one line per 64 bytes
            // consumed (8 · lanes bytes per step), as for FP8: every width.
            PrefetchNext((byte*)(p0 + 4 * cols + 4 * c));
            if (TW.Count == 16)
            {
                PrefetchNext((byte*)(p0 + 4 * cols + 4 * c + 32));
            }
            var xv = TW.Load(x + c);
            acc0 = TW.Fma(TW.Bf16(p0 + c), xv, acc0);
            acc1 = TW.Fma(TW.Bf16(p1 + c), xv, acc1);
            acc2 = TW.Fma(TW.Bf16(p2 + c), xv, acc2);
            acc3 = TW.Fma(TW.Bf16(p3 + c), xv, acc3);
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
        (TW.Sum4(acc0, acc1, acc2, acc3) + Vector128.Create(t0, t1, t2, t3)).Store(y);
    }

    /// <summary>
    /// Two BF16 rows r, r+1 (p0, p0 + cols) against <typeparamref name="TN"/> (2..8) token vectors
    /// xs [TN, xStride]: y[t · rows + j] for t &lt; TN, j = 0..1. Each weight vector is decoded once for
    /// every token: 2 · TN accumulators (up to four tokens they fit the 16 registers of AVX2 with the two
    /// weight vectors and a token vector; eight need a 32-register file), so a multiply-add costs 1 / TN
    /// of a decode and half a load instead of a whole decode (the one-token kernel).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Bf16Rows2Tokens<TVec, TW, TN>(ushort* p0, int cols, float* xs, int xStride, int rows, float* y)
        where TVec : struct where TW : struct, ISimd<TVec> where TN : struct, ITokenCount
    {
        int n = TN.Value, lanes = TW.Count;
        ushort* p1 = p0 + cols;
        var a00 = TW.Zero; var a01 = TW.Zero; var a02 = TW.Zero; var a03 = TW.Zero;
        var a04 = TW.Zero; var a05 = TW.Zero; var a06 = TW.Zero; var a07 = TW.Zero;
        var a10 = TW.Zero; var a11 = TW.Zero; var a12 = TW.Zero; var a13 = TW.Zero;
        var a14 = TW.Zero; var a15 = TW.Zero; var a16 = TW.Zero; var a17 = TW.Zero;
        byte* next = (byte*)(p0 + 2 * cols); // the next row pair, fetched at twice the pace of c (two rows consumed)
        int c = 0;
        for (; c + 2 * lanes <= cols; c += 2 * lanes)
        {
            // 2 rows x 2 · lanes values x 2 bytes consumed: one line per 64 bytes.
            PrefetchNext(next + 4 * c);
            if (lanes >= 8)
            {
                PrefetchNext(next + 4 * c + 64);
            }
            if (lanes >= 16)
            {
                PrefetchNext(next + 4 * c + 128);
                PrefetchNext(next + 4 * c + 192);
            }
            AccumulateTokens<TVec, TW, TN>(TW.Bf16(p0 + c), TW.Bf16(p1 + c), xs + c, xStride,
                ref a00, ref a01, ref a02, ref a03, ref a04, ref a05, ref a06, ref a07,
                ref a10, ref a11, ref a12, ref a13, ref a14, ref a15, ref a16, ref a17);
            int k = c + lanes;
            AccumulateTokens<TVec, TW, TN>(TW.Bf16(p0 + k), TW.Bf16(p1 + k), xs + k, xStride,
                ref a00, ref a01, ref a02, ref a03, ref a04, ref a05, ref a06, ref a07,
                ref a10, ref a11, ref a12, ref a13, ref a14, ref a15, ref a16, ref a17);
        }
        for (; c + lanes <= cols; c += lanes)
        {
            AccumulateTokens<TVec, TW, TN>(TW.Bf16(p0 + c), TW.Bf16(p1 + c), xs + c, xStride,
                ref a00, ref a01, ref a02, ref a03, ref a04, ref a05, ref a06, ref a07,
                ref a10, ref a11, ref a12, ref a13, ref a14, ref a15, ref a16, ref a17);
        }
        // [t0..t3] and [t4..t7] of row 0 and of row 1: the scalar end.
        Vector128<float> tail0 = default, tail0High = default, tail1 = default, tail1High = default;
        for (; c < cols; c++)
        {
            float w0 = Bf16Scalar(p0[c]), w1 = Bf16Scalar(p1[c]);
            var xc = TokenColumn(xs + c, xStride, 0, n);
            tail0 += Vector128.Create(w0) * xc;
            tail1 += Vector128.Create(w1) * xc;
            if (n > 4)
            {
                xc = TokenColumn(xs + c, xStride, 4, n);
                tail0High += Vector128.Create(w0) * xc;
                tail1High += Vector128.Create(w1) * xc;
            }
        }
        StoreRows2(TW.Sum4(a00, a01, a02, a03) + tail0, TW.Sum4(a10, a11, a12, a13) + tail1, y, rows, 0, Math.Min(n, 4));
        if (n > 4)
        {
            StoreRows2(TW.Sum4(a04, a05, a06, a07) + tail0High, TW.Sum4(a14, a15, a16, a17) + tail1High, y, rows, 4, n);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Bf16Row<TVec, TW>(ushort* p, int cols, float* x) where TVec : struct where TW : struct, ISimd<TVec>
    {
        var acc = TW.Zero;
        int c = 0;
        for (; c + TW.Count <= cols; c += TW.Count)
        {
            acc = TW.Fma(TW.Bf16(p + c), TW.Load(x + c), acc);
        }
        float tail = 0;
        for (; c < cols; c++)
        {
            tail += Bf16Scalar(p[c]) * x[c];
        }
        return TW.Sum(acc) + tail;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Bf16Scalar(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>Four float rows (stride cols) against four tokens x[u] (stride cols): y[u · yStride + 0..3]. 16 accumulators: 32-register machines.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4x4<TVec, TW>(float* r0, int cols, float* x0, float* y, int yStride) where TVec : struct where TW : struct, ISimd<TVec>
    {
        float* r1 = r0 + cols, r2 = r1 + cols, r3 = r2 + cols;
        float* x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols;
        TVec a00 = TW.Zero, a01 = TW.Zero, a02 = TW.Zero, a03 = TW.Zero;
        TVec a10 = TW.Zero, a11 = TW.Zero, a12 = TW.Zero, a13 = TW.Zero;
        TVec a20 = TW.Zero, a21 = TW.Zero, a22 = TW.Zero, a23 = TW.Zero;
        TVec a30 = TW.Zero, a31 = TW.Zero, a32 = TW.Zero, a33 = TW.Zero;
        int c = 0;
        for (; c + TW.Count <= cols; c += TW.Count)
        {
            var w0 = TW.Load(r0 + c);
            var w1 = TW.Load(r1 + c);
            var w2 = TW.Load(r2 + c);
            var w3 = TW.Load(r3 + c);
            var v = TW.Load(x0 + c);
            a00 = TW.Fma(w0, v, a00); a01 = TW.Fma(w1, v, a01); a02 = TW.Fma(w2, v, a02); a03 = TW.Fma(w3, v, a03);
            v = TW.Load(x1 + c);
            a10 = TW.Fma(w0, v, a10); a11 = TW.Fma(w1, v, a11); a12 = TW.Fma(w2, v, a12); a13 = TW.Fma(w3, v, a13);
            v = TW.Load(x2 + c);
            a20 = TW.Fma(w0, v, a20); a21 = TW.Fma(w1, v, a21); a22 = TW.Fma(w2, v, a22); a23 = TW.Fma(w3, v, a23);
            v = TW.Load(x3 + c);
            a30 = TW.Fma(w0, v, a30); a31 = TW.Fma(w1, v, a31); a32 = TW.Fma(w2, v, a32); a33 = TW.Fma(w3, v, a33);
        }
        float* o0 = y, o1 = y + yStride, o2 = o1 + yStride, o3 = o2 + yStride;
        TW.Sum4(a00, a01, a02, a03).Store(o0);
        TW.Sum4(a10, a11, a12, a13).Store(o1);
        TW.Sum4(a20, a21, a22, a23).Store(o2);
        TW.Sum4(a30, a31, a32, a33).Store(o3);
        DotTail(r0, cols, x0, y, yStride, c, 4);
    }

    /// <summary>
    /// Four float rows against three tokens: 12 accumulators (16-register machines: AVX2, SSE). The
    /// token vectors are loaded once per step and each weight vector streams through them.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4x3<TVec, TW>(float* r0, int cols, float* x0, float* y, int yStride) where TVec : struct where TW : struct, ISimd<TVec>
    {
        float* r1 = r0 + cols, r2 = r1 + cols, r3 = r2 + cols;
        float* x1 = x0 + cols, x2 = x1 + cols;
        TVec a00 = TW.Zero, a01 = TW.Zero, a02 = TW.Zero, a03 = TW.Zero;
        TVec a10 = TW.Zero, a11 = TW.Zero, a12 = TW.Zero, a13 = TW.Zero;
        TVec a20 = TW.Zero, a21 = TW.Zero, a22 = TW.Zero, a23 = TW.Zero;
        int c = 0;
        for (; c + TW.Count <= cols; c += TW.Count)
        {
            var v0 = TW.Load(x0 + c);
            var v1 = TW.Load(x1 + c);
            var v2 = TW.Load(x2 + c);
            var w = TW.Load(r0 + c);
            a00 = TW.Fma(w, v0, a00); a10 = TW.Fma(w, v1, a10); a20 = TW.Fma(w, v2, a20);
            w = TW.Load(r1 + c);
            a01 = TW.Fma(w, v0, a01); a11 = TW.Fma(w, v1, a11); a21 = TW.Fma(w, v2, a21);
            w = TW.Load(r2 + c);
            a02 = TW.Fma(w, v0, a02); a12 = TW.Fma(w, v1, a12); a22 = TW.Fma(w, v2, a22);
            w = TW.Load(r3 + c);
            a03 = TW.Fma(w, v0, a03); a13 = TW.Fma(w, v1, a13); a23 = TW.Fma(w, v2, a23);
        }
        TW.Sum4(a00, a01, a02, a03).Store(y);
        TW.Sum4(a10, a11, a12, a13).Store(y + yStride);
        TW.Sum4(a20, a21, a22, a23).Store(y + 2 * yStride);
        DotTail(r0, cols, x0, y, yStride, c, 3);
    }

    /// <summary>Adds columns c.. of four rows against <paramref name="tokens"/> tokens to y (the tiles' ragged tail).</summary>
    private static void DotTail(float* r0, int cols, float* x0, float* y, int yStride, int c, int tokens)
    {
        float* r1 = r0 + cols, r2 = r1 + cols, r3 = r2 + cols;
        for (; c < cols; c++)
        {
            for (int u = 0; u < tokens; u++)
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
    private static void Dot4<TVec, TW>(float* r0, int cols, float* x, float* y) where TVec : struct where TW : struct, ISimd<TVec>
    {
        float* r1 = r0 + cols, r2 = r1 + cols, r3 = r2 + cols;
        var acc0 = TW.Zero;
        var acc1 = TW.Zero;
        var acc2 = TW.Zero;
        var acc3 = TW.Zero;
        int c = 0;
        for (; c + TW.Count <= cols; c += TW.Count)
        {
            var xv = TW.Load(x + c);
            acc0 = TW.Fma(TW.Load(r0 + c), xv, acc0);
            acc1 = TW.Fma(TW.Load(r1 + c), xv, acc1);
            acc2 = TW.Fma(TW.Load(r2 + c), xv, acc2);
            acc3 = TW.Fma(TW.Load(r3 + c), xv, acc3);
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
        (TW.Sum4(acc0, acc1, acc2, acc3) + Vector128.Create(t0, t1, t2, t3)).Store(y);
    }
}
