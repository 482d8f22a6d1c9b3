namespace MimoSharp.Tensors.Quantization;

/// <summary>
/// FP8 E4M3 with one float scale per block of rows × columns (128 × 128 in MiMo-V2-Flash, as in DeepSeek-V3):
/// W[r, c] ≈ decode(code[r, c]) · scale[r / blockRows, c / blockCols]. Each block's scale maps its largest
/// |w| to 448, the largest finite code (1 for an all-zero block), and every weight is rounded to the nearest
/// code of w / scale (<see cref="Fp8E4M3.Encode"/>). The scale is what the checkpoint stores as
/// "weight_scale_inv" (a multiplier, despite its name).
/// </summary>
public static class Fp8BlockQuantizer
{
    /// <summary>
    /// One block-row: <paramref name="values"/> [n, cols] (n ≤ the block's rows) to <paramref name="codes"/>
    /// [n, cols] and <paramref name="scales"/> [ceil(cols / blockCols)], the last column block ragged.
    /// </summary>
    public static void QuantizeBlockRow(ReadOnlySpan<float> values, int n, int cols, int blockCols, Span<byte> codes, Span<float> scales)
    {
        int scaleCols = (cols + blockCols - 1) / blockCols;
        if (values.Length < n * cols || codes.Length < n * cols || scales.Length < scaleCols)
        {
            throw new ArgumentException($"a block-row of {n} x {cols} needs {n * cols} values and codes and {scaleCols} scales; got {values.Length}, {codes.Length} and {scales.Length}");
        }
        for (int sc = 0; sc < scaleCols; sc++)
        {
            int c0 = sc * blockCols, c1 = Math.Min(c0 + blockCols, cols);
            float max = 0;
            for (int r = 0; r < n; r++)
            {
                for (int c = c0; c < c1; c++)
                {
                    float v = values[r * cols + c];
                    if (!float.IsFinite(v))
                    {
                        throw new ArgumentException($"row {r} column {c} of the block-row is {v}: FP8 E4M3 holds finite weights only");
                    }
                    max = MathF.Max(max, MathF.Abs(v));
                }
            }
            float scale = max > 0 ? max / Fp8E4M3.MaxFinite : 1f;
            scales[sc] = scale;
            for (int r = 0; r < n; r++)
            {
                for (int c = c0; c < c1; c++)
                {
                    codes[r * cols + c] = Fp8E4M3.Encode(values[r * cols + c] / scale);
                }
            }
        }
    }
}
