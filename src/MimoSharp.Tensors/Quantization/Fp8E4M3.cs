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
    /// Encodes a float as the nearest E4M3FN code (ties to even), saturating at +-448. NaN encodes as 0x7F.
    /// Works on the float's bits: rounding its 23-bit mantissa to 3 bits, or, below 2^-6, counting
    /// subnormal steps of 2^-9.
    /// </summary>
    public static byte Encode(float value)
    {
        if (float.IsNaN(value))
        {
            return 0x7F;
        }
        uint bits = BitConverter.SingleToUInt32Bits(value);
        int sign = (int)(bits >> 24) & 0x80;
        float magnitude = MathF.Abs(value);
        if (magnitude >= MaxFinite)
        {
            return (byte)(sign | 0x7E);
        }
        if (magnitude < 0.015625f) // 2^-6: subnormal codes m * 2^-9 (m == 8 lands on the smallest normal, code 0x08)
        {
            return (byte)(sign | (int)MathF.Round(magnitude * 512f, MidpointRounding.ToEven));
        }
        uint abs = bits & 0x7FFFFFFF;
        abs += 0x7FFFF + ((abs >> 20) & 1); // round to nearest even at mantissa bit 20
        int exponent = (int)(abs >> 23) - 127 + 7;
        int mantissa = (int)(abs >> 20) & 7;
        if (exponent > 15 || (exponent == 15 && mantissa == 7))
        {
            return (byte)(sign | 0x7E);
        }
        return (byte)(sign | (exponent << 3) | mantissa);
    }
}
