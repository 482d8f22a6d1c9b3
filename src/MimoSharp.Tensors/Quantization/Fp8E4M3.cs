namespace MimoSharp.Tensors.Quantization;

/// <summary>
/// OCP FP8 E4M3FN, the element format of the MiMo-V2-Flash checkpoint. Byte b: s = b>>7,
/// e = (b>>3)&amp;15, m = b&amp;7; e == 0: (-1)^s 2^-6 m/8 (subnormal); else (-1)^s 2^(e-7) (1 + m/8).
/// 0x7F/0xFF are NaN; there are no infinities; the largest finite magnitude is 448.
/// </summary>
public static class Fp8E4M3
{
    public const float MaxFinite = 448f;

    /// <summary>All 256 codes decoded, index = code.</summary>
    public static ReadOnlySpan<float> Table => s_table;

    private static readonly float[] s_table = BuildTable();

    private static float[] BuildTable()
    {
        var table = new float[256];
        for (int code = 0; code < 256; code++)
        {
            table[code] = DecodeFormula((byte)code);
        }
        return table;
    }

    /// <summary>Decodes one code by the E4M3FN formula (NaN for 0x7F/0xFF).</summary>
    public static float DecodeFormula(byte code)
    {
        int sign = code >> 7;
        int exponent = (code >> 3) & 0xF;
        int mantissa = code & 0x7;
        if (exponent == 0xF && mantissa == 0x7)
        {
            return float.NaN;
        }
        double magnitude = exponent == 0
            ? Math.Pow(2, -6) * mantissa / 8.0
            : Math.Pow(2, exponent - 7) * (1 + mantissa / 8.0);
        return (float)(sign == 1 ? -magnitude : magnitude);
    }

    public static float Decode(byte code) => s_table[code];

    /// <summary>
    /// Encodes a float as the nearest E4M3FN code (ties to even mantissa), saturating at +-448.
    /// NaN encodes as 0x7F.
    /// </summary>
    public static byte Encode(float value)
    {
        if (float.IsNaN(value))
        {
            return 0x7F;
        }
        int sign = value < 0 || (value == 0 && float.IsNegative(value)) ? 0x80 : 0;
        float magnitude = MathF.Abs(value);
        if (magnitude >= MaxFinite)
        {
            return (byte)(sign | 0x7E);
        }
        // Binary search over the 127 finite non-negative codes (0x00..0x7E), which are increasing.
        int lo = 0, hi = 0x7E;
        while (hi - lo > 1)
        {
            int mid = (lo + hi) >> 1;
            if (s_table[mid] <= magnitude)
            {
                lo = mid;
            }
            else
            {
                hi = mid;
            }
        }
        float dLo = magnitude - s_table[lo];
        float dHi = s_table[hi] - magnitude;
        int code = dLo < dHi ? lo : dHi < dLo ? hi : ((lo & 1) == 0 ? lo : hi);
        return (byte)(sign | code);
    }
}
