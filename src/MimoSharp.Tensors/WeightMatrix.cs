using System.Runtime.InteropServices;
using MimoSharp.Tensors.Quantization;
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
    private readonly float[]? _scales;       // [ScaleRows, ScaleCols], true multipliers
    private readonly float[]? _kernelScales; // same, times 2^20 for the FP8 kernel

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
    public long BytesRead => DataBytes + (_scales?.Length ?? 0) * sizeof(float);

    private WeightMatrix(WeightStorage storage, long offset, DType dtype, int rows, int cols,
        float[]? scales, int blockRows, int blockCols)
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
            ArgumentNullException.ThrowIfNull(scales);
            BlockRows = blockRows;
            BlockCols = blockCols;
            ScaleRows = (rows + blockRows - 1) / blockRows;
            ScaleCols = (cols + blockCols - 1) / blockCols;
            if (scales.Length != ScaleRows * ScaleCols)
            {
                throw new ArgumentException(
                    $"{dtype} matrix [{rows}, {cols}] with blocks [{blockRows}, {blockCols}] needs {ScaleRows}x{ScaleCols} scales, got {scales.Length}",
                    nameof(scales));
            }
            _scales = scales;
            if (dtype == DType.F8E4M3)
            {
                _kernelScales = new float[scales.Length];
                for (int i = 0; i < scales.Length; i++)
                {
                    _kernelScales[i] = scales[i] * Fp8KernelScaleFactor;
                }
            }
            else
            {
                _kernelScales = scales;
            }
        }
        else if (dtype is not (DType.F32 or DType.BF16 or DType.F16))
        {
            throw new NotSupportedException($"weight matrices cannot be stored as {dtype}; expected F32, BF16, F16, F8_E4M3, I8 (Q8_0) or Q4_0");
        }
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
    public ReadOnlySpan<float> Scales => _scales;

    internal byte* RowPointer(int row) => _storage.Pointer + _offset + row * RowStrideBytes;

    /// <summary>Kernel scales of the block row holding <paramref name="row"/> (scale * 2^20), [ScaleCols].</summary>
    internal float* KernelScaleRow(int row, float* scalesBase) => scalesBase + (row / BlockRows) * ScaleCols;

    internal float[]? KernelScales => _kernelScales;

    /// <summary>The raw stored bytes of one row.</summary>
    public ReadOnlySpan<byte> RowBytes(int row)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(row, Rows);
        return new ReadOnlySpan<byte>(RowPointer(row), (int)RowStrideBytes);
    }

    /// <summary>Writes row <paramref name="row"/> as float32 values (scales applied) into <paramref name="destination"/> [Cols].</summary>
    public void DequantizeRow(int row, Span<float> destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(row, Rows);
        if (destination.Length < Cols)
        {
            throw new ArgumentException($"destination holds {destination.Length} values, row has {Cols}", nameof(destination));
        }
        fixed (float* dst = destination)
        {
            DequantizeRowUnchecked(row, dst);
        }
    }

    internal void DequantizeRowUnchecked(int row, float* dst)
    {
        byte* src = RowPointer(row);
        switch (DType)
        {
            case DType.F32:
                Buffer.MemoryCopy(src, dst, (long)Cols * 4, (long)Cols * 4);
                break;
            case DType.BF16:
                Kernels.VectorMath.Bf16ToSingle((ushort*)src, dst, Cols);
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
                        float scale = _scales![scaleRow + block];
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
                        dst[c] = (sbyte)src[c] * _scales![scaleRow + c / GroupSize];
                    }
                    break;
                }
            case DType.Q4:
                {
                    int scaleRow = row * ScaleCols;
                    for (int c = 0; c < Cols; c++)
                    {
                        int g = c / GroupSize, j = c % GroupSize;
                        byte packed = src[g * (GroupSize / 2) + (j & (GroupSize / 2 - 1))];
                        int code = j < GroupSize / 2 ? packed & 0xF : packed >> 4;
                        dst[c] = (code - 8) * _scales![scaleRow + g];
                    }
                    break;
                }
        }
    }
}
