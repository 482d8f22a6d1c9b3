using System.Runtime.Intrinsics;
using MimoSharp.Tensors.Quantization;

namespace MimoSharp.Tensors;

/// <summary>
/// The E4M3 subnormal weights of an FP8 matrix (exponent field 0, mantissa 1..7: m · 2^-9), kept apart from
/// its codes. Why: the FP8 kernels decode a code by moving its bits into a float32 (value · 2^-120, exact),
/// and there a subnormal code becomes a float32 denormal. Every multiply-add with a denormal input takes a
/// microcode assist on x86 (measured here: 0.02 G against 5.3 G fused multiply-adds per second), so the
/// about 1 in 10,000 codes of a matrix that are subnormal cost a one-token decode 13% and a prefill 30%.
/// Separated, the codes hold zero there and the products add value · x for each entry afterwards
/// (<see cref="AddProducts"/>): the same terms, in another order. Entries are by row, [Rows + 1] offsets.
/// </summary>
public sealed unsafe class Fp8Subnormals
{
    private readonly int[] _rowStart; // entries of row r: [_rowStart[r], _rowStart[r + 1])
    private readonly int[] _rows;     // each entry's row: the products visit the entries only, not every row
    private readonly int[] _cols;
    private readonly float[] _values; // the weight: decode(code) · its block's scale, as the table dequantization rounds it

    private Fp8Subnormals(int[] rowStart, int[] cols, float[] values)
    {
        _rowStart = rowStart;
        _rows = new int[values.Length];
        for (int r = 0; r + 1 < rowStart.Length; r++)
        {
            _rows.AsSpan(rowStart[r], rowStart[r + 1] - rowStart[r]).Fill(r);
        }
        _cols = cols;
        _values = values;
    }

    /// <summary>How many weights were separated.</summary>
    public int Count => _values.Length;

    /// <summary>Whether an E4M3 code is subnormal (exponent field 0, mantissa not 0; either sign).</summary>
    public static bool IsSubnormal(byte code) => (code & 0x78) == 0 && (code & 0x07) != 0;

    /// <summary>
    /// Finds the subnormal codes of rows [0, rows) of cols codes at <paramref name="codes"/> (row stride cols),
    /// records each as its weight (<paramref name="scales"/> [ceil(rows / blockRows), ceil(cols / blockCols)]),
    /// and writes zero over the code. Null when there is none.
    /// </summary>
    internal static Fp8Subnormals? Separate(byte* codes, int rows, int cols, float* scales, int blockRows, int blockCols)
    {
        int scaleCols = (cols + blockCols - 1) / blockCols;
        var rowStart = new int[rows + 1];
        var colList = new List<int>();
        var valueList = new List<float>();
        for (int r = 0; r < rows; r++)
        {
            byte* row = codes + (long)r * cols;
            float* scaleRow = scales + (r / blockRows) * scaleCols;
            int c = 0;
            // Most rows hold none: test 32 codes at a time (exponent bits all zero and mantissa bits not).
            for (; c + 32 <= cols; c += 32)
            {
                var v = Vector256.Load(row + c);
                var zeroExponent = Vector256.Equals(v & Vector256.Create((byte)0x78), Vector256<byte>.Zero);
                var nonzeroMantissa = ~Vector256.Equals(v & Vector256.Create((byte)0x07), Vector256<byte>.Zero);
                if ((zeroExponent & nonzeroMantissa) != Vector256<byte>.Zero)
                {
                    Take(row, c, c + 32, scaleRow, blockCols, colList, valueList);
                }
            }
            Take(row, c, cols, scaleRow, blockCols, colList, valueList);
            rowStart[r + 1] = valueList.Count;
        }
        return valueList.Count == 0 ? null : new Fp8Subnormals(rowStart, colList.ToArray(), valueList.ToArray());
    }

    /// <summary>Records the subnormal codes of row[from..to) with their weights and zeroes them.</summary>
    private static void Take(byte* row, int from, int to, float* scaleRow, int blockCols, List<int> cols, List<float> values)
    {
        ReadOnlySpan<float> table = Fp8E4M3.Table;
        for (int c = from; c < to; c++)
        {
            if (IsSubnormal(row[c]))
            {
                cols.Add(c);
                values.Add(table[row[c]] * scaleRow[c / blockCols]);
                row[c] = 0;
            }
        }
    }

    /// <summary>y [n, rows] += x [n, cols] · Sᵀ, S the separated weights.</summary>
    internal void AddProducts(float* x, int n, int cols, float* y, int rows)
    {
        // Runs on every product, in the decode loop: a walk over the entries (about 1 in 10,000 weights), not the rows.
        for (int i = 0; i < _values.Length; i++)
        {
            int r = _rows[i], col = _cols[i];
            float w = _values[i];
            for (int t = 0; t < n; t++)
            {
                y[(long)t * rows + r] += w * x[(long)t * cols + col];
            }
        }
    }

    /// <summary>Writes the separated weights of <paramref name="row"/> into its dequantized values dst [cols] (where the codes now read zero).</summary>
    internal void WriteRow(int row, float* dst)
    {
        for (int i = _rowStart[row], end = _rowStart[row + 1]; i < end; i++)
        {
            dst[_cols[i]] = _values[i];
        }
    }
}
