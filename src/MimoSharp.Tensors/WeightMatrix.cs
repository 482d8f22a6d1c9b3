using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using MimoSharp.Tensors.Quantization;
using MimoSharp.Tensors.Kernels;
using MimoSharp.Tensors.Storage;

namespace MimoSharp.Tensors;

/// <summary>
/// A weight matrix W [Rows, Cols], row-major as PyTorch stores a Linear weight ([out, in]), left in
/// its stored format and read in place: F32, BF16, F16, FP8 E4M3 with 2-D block scales
/// (W[r, c] = fp8[r, c] * scale[r / BlockRows, c / BlockCols], the DeepSeek-V3 `weight_scale_inv`
/// convention), or the integer group formats `mimo quantize` writes: Q8_0 (I8 codes, one scale per
/// 32 weights of a row) and Q4_0 (4-bit codes q in 0..15 meaning q - 8, two per byte, one scale per 32).
/// Quantized weights stay in their bytes; kernels dequantize in registers.
/// </summary>
public sealed unsafe class WeightMatrix
{
    /// <summary>2^20: the FP8 kernel decodes codes scaled by 2^-120 and prescales x by 2^100 (see MatMul).</summary>
    internal const float Fp8KernelScaleFactor = 1048576f;

    private readonly WeightStorage _storage;
    private readonly long _offset;
    // Scales [ScaleRows, ScaleCols]: true multipliers, and the kernel's (FP8: times 2^20). They point into
    // pinned arrays, or straight into the checkpoint's storage (Q8_0 / Q4_0 scales are 1/8 and 1/4 of the
    // codes' bytes: a copy would cost that much resident memory again).
    private readonly float* _scales;
    private readonly float* _kernelScales;
    private readonly object? _scaleOwner;       // the pinned array or storage _scales points into: held, never read
    private readonly object? _kernelScaleOwner; // the same for _kernelScales when it is a separate array

    public int Rows { get; }
    public int Cols { get; }
    public DType DType { get; }
    public int BlockRows { get; }
    public int BlockCols { get; }
    public int ScaleRows { get; }
    public int ScaleCols { get; }

    /// <summary>Weights per scale in the integer group formats (Q8_0, Q4_0), as llama.cpp's Q8_0 and Q4_0.</summary>
    public const int GroupSize = 32;

    /// <summary>Bytes of one stored row: Q4_0 packs a group of 32 codes in 16 bytes (the last group padded).</summary>
    public long RowStrideBytes { get; }

    /// <summary>Bytes of weight data (without scales).</summary>
    public long DataBytes => Rows * RowStrideBytes;

    /// <summary>Bytes read by one full pass over the matrix, scales included.</summary>
    public long BytesRead => DataBytes + (long)ScaleRows * ScaleCols * sizeof(float);

    private WeightMatrix(WeightStorage storage, long offset, DType dtype, int rows, int cols,
        float[]? scales, int blockRows, int blockCols, WeightStorage? scaleStorage = null, long scaleOffset = 0)
    {
        if (rows <= 0 || cols <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(rows), $"matrix shape [{rows}, {cols}] must be positive");
        }
        RowStrideBytes = StrideOf(dtype, cols);
        storage.CheckRange(offset, rows * RowStrideBytes);
        _storage = storage;
        _offset = offset;
        DType = dtype;
        Rows = rows;
        Cols = cols;
        if (dtype is DType.F8E4M3 or DType.I8 or DType.Q4)
        {
            BlockRows = blockRows;
            BlockCols = blockCols;
            ScaleRows = (rows + blockRows - 1) / blockRows;
            ScaleCols = (cols + blockCols - 1) / blockCols;
            int count = ScaleRows * ScaleCols;
            if (scaleStorage is not null)
            {
                scaleStorage.CheckRange(scaleOffset, (long)count * sizeof(float));
                _scales = (float*)(scaleStorage.Pointer + scaleOffset);
                _scaleOwner = scaleStorage;
            }
            else
            {
                ArgumentNullException.ThrowIfNull(scales);
                if (scales.Length != count)
                {
                    throw new ArgumentException(
                        $"{dtype} matrix [{rows}, {cols}] with blocks [{blockRows}, {blockCols}] needs {ScaleRows}x{ScaleCols} scales, got {scales.Length}",
                        nameof(scales));
                }
                float[] pinned = GC.AllocateArray<float>(count, pinned: true);
                scales.CopyTo(pinned, 0);
                _scales = (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(pinned));
                _scaleOwner = pinned;
            }
            if (dtype == DType.F8E4M3)
            {
                float[] kernel = GC.AllocateArray<float>(count, pinned: true);
                for (int i = 0; i < count; i++)
                {
                    kernel[i] = _scales[i] * Fp8KernelScaleFactor;
                }
                _kernelScales = (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(kernel));
                _kernelScaleOwner = kernel;
            }
            else
            {
                _kernelScales = _scales;
            }
        }
        else if (dtype is not (DType.F32 or DType.BF16 or DType.F16))
        {
            throw new NotSupportedException($"weight matrices cannot be stored as {dtype}; expected F32, BF16, F16, F8_E4M3, I8 (Q8_0) or Q4_0");
        }
    }

    /// <summary>
    /// Code c of a Q4_0 row as q - 8: group c / 32 holds code j in the low nibble of its byte j and
    /// code j + 16 in the high nibble (the scalar decode every Q4_0 path agrees with).
    /// </summary>
    internal static int Q4Value(byte* row, int c)
    {
        int j = c % GroupSize;
        byte packed = row[c / GroupSize * (GroupSize / 2) + j % (GroupSize / 2)];
        return (j < GroupSize / 2 ? packed & 0xF : packed >> 4) - 8;
    }

    /// <summary>Bytes of one stored row of <paramref name="cols"/> weights.</summary>
    public static long StrideOf(DType dtype, int cols) => dtype == DType.Q4
        ? (long)(cols + GroupSize - 1) / GroupSize * (GroupSize / 2)
        : (long)cols * DTypes.SizeOf(dtype);

    /// <summary>A matrix of F32, BF16 or F16 elements at <paramref name="offset"/> in <paramref name="storage"/>.</summary>
    public static WeightMatrix Dense(WeightStorage storage, long offset, DType dtype, int rows, int cols)
    {
        if (dtype == DType.F8E4M3)
        {
            throw new ArgumentException("FP8 matrices need block scales; use Fp8", nameof(dtype));
        }
        return new WeightMatrix(storage, offset, dtype, rows, cols, null, 0, 0);
    }

    /// <summary>An FP8 E4M3 matrix with a [ceil(rows/blockRows), ceil(cols/blockCols)] scale grid.</summary>
    public static WeightMatrix Fp8(WeightStorage storage, long offset, int rows, int cols,
        float[] scales, int blockRows, int blockCols)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockRows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockCols);
        return new WeightMatrix(storage, offset, DType.F8E4M3, rows, cols, scales, blockRows, blockCols);
    }

    /// <summary>A Q8_0 matrix: I8 codes [rows, cols] and one scale per 32 weights of a row, [rows, ceil(cols/32)].</summary>
    public static WeightMatrix Q8(WeightStorage storage, long offset, int rows, int cols, float[] scales) =>
        new(storage, offset, DType.I8, rows, cols, scales, 1, GroupSize);

    /// <summary>A Q8_0 (<paramref name="dtype"/> I8) or Q4_0 (Q4) matrix whose float32 scales are read in place at <paramref name="scaleOffset"/> of <paramref name="scaleStorage"/>.</summary>
    public static WeightMatrix Grouped(DType dtype, WeightStorage storage, long offset, int rows, int cols, WeightStorage scaleStorage, long scaleOffset)
    {
        if (dtype is not (DType.I8 or DType.Q4))
        {
            throw new ArgumentException($"group-quantized matrices are I8 (Q8_0) or Q4 (Q4_0), not {dtype}", nameof(dtype));
        }
        return new WeightMatrix(storage, offset, dtype, rows, cols, null, 1, GroupSize, scaleStorage, scaleOffset);
    }

    /// <summary>A Q4_0 matrix: per row, ceil(cols/32) groups of 16 bytes (code j in the low nibble of byte j,
    /// code j + 16 in its high nibble) and one scale per group, [rows, ceil(cols/32)].</summary>
    public static WeightMatrix Q4(WeightStorage storage, long offset, int rows, int cols, float[] scales) =>
        new(storage, offset, DType.Q4, rows, cols, scales, 1, GroupSize);

    /// <summary>Wraps a managed float matrix [rows, cols] (copied into native memory).</summary>
    public static WeightMatrix FromFloats(ReadOnlySpan<float> values, int rows, int cols)
    {
        if (values.Length != rows * cols)
        {
            throw new ArgumentException($"expected {rows * cols} values for [{rows}, {cols}], got {values.Length}", nameof(values));
        }
        var buffer = NativeBuffer.From(MemoryMarshal.AsBytes(values));
        return Dense(buffer, 0, DType.F32, rows, cols);
    }

    /// <summary>The block scales (FP8, Q8_0, Q4_0), [ScaleRows, ScaleCols].</summary>
    public ReadOnlySpan<float> Scales => _scales == null ? default : new ReadOnlySpan<float>(_scales, ScaleRows * ScaleCols);

    // Inlined by force: the large kernels that call these exhaust the JIT's inlining budget (both showed up as
    // calls in decode profiles, ~2.5% of a batched step).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal byte* RowPointer(int row) => _storage.Pointer + _offset + row * RowStrideBytes;

    /// <summary>Kernel scales of the block row holding <paramref name="row"/> (scale * 2^20), [ScaleCols].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal float* KernelScaleRow(int row, float* scalesBase) => scalesBase + (row / BlockRows) * ScaleCols;

    /// <summary>The kernels' scales (FP8: times 2^20), or null for dense formats; valid while this matrix is alive.</summary>
    internal float* KernelScalePointer => _kernelScales;

    /// <summary>
    /// What the FP8 decode kernels have learnt of this matrix's NaN codes (0x7F / 0xFF):
    /// <see cref="Fp8NaNCodes.Unknown"/> until a one-token product has scanned every row, then
    /// <see cref="Fp8NaNCodes.None"/> (later products skip the scan) or <see cref="Fp8NaNCodes.Some"/>.
    /// A weight matrix's codes are never written once it is built and its subnormals separated (checkpoint weights), which is what
    /// makes the answer of one scan hold for every later product.
    /// </summary>
    internal Fp8NaNCodes NaNCodes { get; set; }

    /// <summary>The subnormal weights taken out of the codes by <see cref="SeparateSubnormals"/>, or null.</summary>
    internal Fp8Subnormals? Subnormals { get; private set; }

    /// <summary>
    /// For an FP8 matrix in writable storage: moves its subnormal codes into <see cref="Subnormals"/> (the codes
    /// read zero after), so that no kernel decodes a float32 denormal (see <see cref="Fp8Subnormals"/>). Products
    /// and <see cref="DequantizeRow"/> give the same values as before, summed in another order. Call it once the
    /// matrix is built and before it is shared; a second matrix over the same bytes gets the same entries.
    /// Other formats, and read-only mappings, are left as they are.
    /// </summary>
    public void SeparateSubnormals()
    {
        if (DType != DType.F8E4M3 || !_storage.Writable)
        {
            return;
        }
        lock (_storage.SeparatedSubnormals)
        {
            if (!_storage.SeparatedSubnormals.TryGetValue(_offset, out Fp8Subnormals? separated))
            {
                separated = Fp8Subnormals.Separate(RowPointer(0), Rows, Cols, _scales, BlockRows, BlockCols);
                if (separated is not null)
                {
                    _storage.SeparatedSubnormals[_offset] = separated;
                }
            }
            Subnormals = separated;
        }
    }

    /// <summary>The raw stored bytes of one row (after <see cref="SeparateSubnormals"/>, zero where a subnormal code was).</summary>
    public ReadOnlySpan<byte> RowBytes(int row)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(row, Rows);
        return new ReadOnlySpan<byte>(RowPointer(row), (int)RowStrideBytes);
    }

    /// <summary>Writes row <paramref name="row"/> as float32 values (scales applied) into <paramref name="destination"/> [Cols]; every path gives the same bits.</summary>
    public void DequantizeRow(int row, Span<float> destination, KernelIsa isa = KernelIsa.Auto)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(row, Rows);
        if (destination.Length < Cols)
        {
            throw new ArgumentException($"destination holds {destination.Length} values, row has {Cols}", nameof(destination));
        }
        isa = KernelIsas.Resolve(isa);
        fixed (float* dst = destination)
        {
            DequantizeRowUnchecked(row, dst, isa);
            Subnormals?.WriteRow(row, dst);
        }
    }

    internal void DequantizeRowUnchecked(int row, float* dst, KernelIsa isa)
    {
        byte* src = RowPointer(row);
        if (DType is DType.F8E4M3 or DType.I8 or DType.Q4 or DType.BF16)
        {
            switch (isa)
            {
                case KernelIsa.Vector512: DequantizeRowVector<Vector512<float>, Simd512>(row, src, dst); return;
                case KernelIsa.Vector256: DequantizeRowVector<Vector256<float>, Simd256>(row, src, dst); return;
                case KernelIsa.Vector128: DequantizeRowVector<Vector128<float>, Simd128>(row, src, dst); return;
            }
        }
        switch (DType)
        {
            case DType.F32:
                Buffer.MemoryCopy(src, dst, (long)Cols * 4, (long)Cols * 4);
                break;
            case DType.BF16:
                for (int c = 0; c < Cols; c++)
                {
                    dst[c] = BitConverter.Int32BitsToSingle(((ushort*)src)[c] << 16);
                }
                break;
            case DType.F16:
                for (int c = 0; c < Cols; c++)
                {
                    dst[c] = (float)((Half*)src)[c];
                }
                break;
            case DType.F8E4M3:
                {
                    ReadOnlySpan<float> table = Fp8E4M3.Table;
                    int scaleRow = (row / BlockRows) * ScaleCols;
                    for (int block = 0; block < ScaleCols; block++)
                    {
                        float scale = _scales[scaleRow + block];
                        int start = block * BlockCols;
                        int end = Math.Min(start + BlockCols, Cols);
                        for (int c = start; c < end; c++)
                        {
                            dst[c] = table[src[c]] * scale;
                        }
                    }
                    break;
                }
            case DType.I8:
                {
                    int scaleRow = row * ScaleCols;
                    for (int c = 0; c < Cols; c++)
                    {
                        dst[c] = (sbyte)src[c] * _scales[scaleRow + c / GroupSize];
                    }
                    break;
                }
            case DType.Q4:
                {
                    int scaleRow = row * ScaleCols;
                    for (int c = 0; c < Cols; c++)
                    {
                        dst[c] = Q4Value(src, c) * _scales[scaleRow + c / GroupSize];
                    }
                    break;
                }
        }
    }

    /// <summary>
    /// The vector dequantization (prefill dequantizes each row once per call and reuses it for every
    /// token). Same values as the scalar decode: FP8 codes land exactly on code · 2^-120 (the kernels'
    /// decode), times 2^120 is exact, then one rounding by the scale, as table[code] · scale.
    /// </summary>
    private void DequantizeRowVector<TVec, TW>(int row, byte* src, float* dst) where TVec : struct where TW : struct, ISimd<TVec>
    {
        int lanes = TW.Count;
        if (DType == DType.BF16)
        {
            int c = 0;
            for (; c + lanes <= Cols; c += lanes)
            {
                TW.Store(TW.Bf16((ushort*)src + c), dst + c);
            }
            for (; c < Cols; c++)
            {
                dst[c] = BitConverter.Int32BitsToSingle(((ushort*)src)[c] << 16);
            }
            return;
        }
        float* scales = _scales + (row / BlockRows) * ScaleCols;
        for (int block = 0; block < ScaleCols; block++)
        {
            int start = block * BlockCols, end = Math.Min(start + BlockCols, Cols);
            float scale = scales[block];
            var s = TW.Splat(scale);
            int c = start;
            switch (DType)
            {
                case DType.F8E4M3:
                    {
                        var unbias = TW.Splat(1.329228e36f); // 2^120
                        for (; c + lanes <= end; c += lanes)
                        {
                            TW.Store(TW.Multiply(TW.Multiply(TW.Fp8(src + c), unbias), s), dst + c);
                        }
                        ReadOnlySpan<float> table = Fp8E4M3.Table;
                        for (; c < end; c++)
                        {
                            dst[c] = table[src[c]] * scale;
                        }
                        break;
                    }
                case DType.I8:
                    for (; c + lanes <= end; c += lanes)
                    {
                        TW.Store(TW.Multiply(TW.Q8((sbyte*)src + c), s), dst + c);
                    }
                    for (; c < end; c++)
                    {
                        dst[c] = (sbyte)src[c] * scale;
                    }
                    break;
                default: // Q4_0
                    if (end - start == GroupSize)
                    {
                        byte* group = src + block * (GroupSize / 2);
                        for (int j = 0; j < GroupSize / 2; j += lanes)
                        {
                            TW.Q4(group + j, out var low, out var high);
                            TW.Store(TW.Multiply(low, s), dst + start + j);
                            TW.Store(TW.Multiply(high, s), dst + start + GroupSize / 2 + j);
                        }
                    }
                    else
                    {
                        for (; c < end; c++)
                        {
                            dst[c] = Q4Value(src, c) * scale;
                        }
                    }
                    break;
            }
        }
    }
}

/// <summary>Whether an FP8 matrix holds NaN codes, as its first scanned product found (<see cref="WeightMatrix.NaNCodes"/>).</summary>
internal enum Fp8NaNCodes
{
    Unknown,
    None,
    Some,
}
