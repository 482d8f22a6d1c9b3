namespace MimoSharp.Tensors.Quantization;

/// <summary>
/// Row quantizers of the integer group formats (groups of <see cref="WeightMatrix.GroupSize"/> weights,
/// one float scale each), as llama.cpp's Q8_0 and Q4_0:
/// Q8_0: scale d = max|w| / 127, code = round(w / d) in -127..127.
/// Q4_0: m = the weight of largest magnitude (sign kept), d = m / -8, code = clamp(round(w / d) + 8, 0, 15),
///       so the extreme lands exactly on code 0 (-8 · d = m); stored code j of a group in the low nibble of
///       byte j and code j + 16 in its high nibble. A ragged last group is padded with code 8 (zero).
/// Rounding is half away from zero, on the float product w · (1 / d), as the reference implementation does.
/// </summary>
public static class GroupQuantizer
{
    private const int Group = WeightMatrix.GroupSize;

    /// <summary>Scales per row of <paramref name="cols"/> weights.</summary>
    public static int GroupsPerRow(int cols) => (cols + Group - 1) / Group;

    /// <summary>Quantizes one row [cols] to Q8_0 codes [cols] and scales [ceil(cols/32)].</summary>
    public static void QuantizeQ8Row(ReadOnlySpan<float> row, Span<sbyte> codes, Span<float> scales)
    {
        int groups = GroupsPerRow(row.Length);
        CheckLengths(row.Length, codes.Length, row.Length, scales.Length, groups);
        for (int g = 0; g < groups; g++)
        {
            ReadOnlySpan<float> w = row.Slice(g * Group, Math.Min(Group, row.Length - g * Group));
            float amax = 0;
            foreach (float v in w)
            {
                CheckFinite(v, g);
                amax = Math.Max(amax, Math.Abs(v));
            }
            float d = amax / 127f;
            float inverse = d == 0 ? 0 : 1f / d;
            for (int j = 0; j < w.Length; j++)
            {
                codes[g * Group + j] = (sbyte)Math.Clamp(MathF.Round(w[j] * inverse, MidpointRounding.AwayFromZero), -127, 127);
            }
            scales[g] = d;
        }
    }

    /// <summary>Quantizes one row [cols] to Q4_0 packed codes [ceil(cols/32) · 16] and scales [ceil(cols/32)].</summary>
    public static void QuantizeQ4Row(ReadOnlySpan<float> row, Span<byte> packed, Span<float> scales)
    {
        int groups = GroupsPerRow(row.Length);
        CheckLengths(row.Length, packed.Length, groups * (Group / 2), scales.Length, groups);
        Span<int> code = stackalloc int[Group];
        for (int g = 0; g < groups; g++)
        {
            ReadOnlySpan<float> w = row.Slice(g * Group, Math.Min(Group, row.Length - g * Group));
            float max = 0, amax = 0;
            foreach (float v in w)
            {
                CheckFinite(v, g);
                if (Math.Abs(v) > amax)
                {
                    amax = Math.Abs(v);
                    max = v;
                }
            }
            float d = max / -8f;
            float inverse = d == 0 ? 0 : 1f / d;
            for (int j = 0; j < Group; j++)
            {
                code[j] = j < w.Length ? Math.Clamp((int)MathF.Round(w[j] * inverse, MidpointRounding.AwayFromZero) + 8, 0, 15) : 8;
            }
            for (int j = 0; j < Group / 2; j++)
            {
                packed[g * (Group / 2) + j] = (byte)(code[j] | (code[j + Group / 2] << 4));
            }
            scales[g] = d;
        }
    }

    private static void CheckLengths(int cols, int codeLength, int expectedCodes, int scaleLength, int expectedScales)
    {
        if (codeLength < expectedCodes || scaleLength < expectedScales)
        {
            throw new ArgumentException(
                $"a row of {cols} weights needs {expectedCodes} code bytes and {expectedScales} scales; got {codeLength} and {scaleLength}");
        }
    }

    private static void CheckFinite(float v, int group)
    {
        if (!float.IsFinite(v))
        {
            throw new ArgumentException($"cannot quantize {v} (group {group}): weights must be finite");
        }
    }
}
