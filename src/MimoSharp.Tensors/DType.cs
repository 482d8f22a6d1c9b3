namespace MimoSharp.Tensors;

/// <summary>Element types a checkpoint tensor may be stored in.</summary>
public enum DType
{
    F32,
    BF16,
    F16,
    /// <summary>OCP FP8 E4M3FN (torch.float8_e4m3fn): 1 sign, 4 exponent (bias 7), 3 mantissa bits, no infinities.</summary>
    F8E4M3,
    I64,
    I32,
    U8,
    I8,
    F64,
    Bool,
    /// <summary>Q4_0 codes, two per byte (stored as U8 in safetensors; a weight-matrix format, not a tensor dtype).</summary>
    Q4,
}

public static class DTypes
{
    /// <summary>Bytes per element.</summary>
    public static int SizeOf(DType type) => type switch
    {
        DType.F32 or DType.I32 => 4,
        DType.BF16 or DType.F16 => 2,
        DType.F8E4M3 or DType.U8 or DType.I8 or DType.Bool => 1,
        DType.I64 or DType.F64 => 8,
        DType.Q4 => throw new ArgumentException("Q4 packs two codes per byte; use WeightMatrix.StrideOf", nameof(type)),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown dtype"),
    };

    /// <summary>The safetensors header spelling ("F8_E4M3", "BF16", ...).</summary>
    public static string ToSafetensorsName(DType type) => type switch
    {
        DType.F32 => "F32",
        DType.BF16 => "BF16",
        DType.F16 => "F16",
        DType.F8E4M3 => "F8_E4M3",
        DType.I64 => "I64",
        DType.I32 => "I32",
        DType.U8 => "U8",
        DType.I8 => "I8",
        DType.F64 => "F64",
        DType.Bool => "BOOL",
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown dtype"),
    };

    public static bool TryParseSafetensorsName(string name, out DType type)
    {
        switch (name)
        {
            case "F32": type = DType.F32; return true;
            case "BF16": type = DType.BF16; return true;
            case "F16": type = DType.F16; return true;
            case "F8_E4M3": type = DType.F8E4M3; return true;
            case "I64": type = DType.I64; return true;
            case "I32": type = DType.I32; return true;
            case "U8": type = DType.U8; return true;
            case "I8": type = DType.I8; return true;
            case "F64": type = DType.F64; return true;
            case "BOOL": type = DType.Bool; return true;
            default: type = default; return false;
        }
    }
}
