namespace MimoSharp.Tensors.Kernels;

/// <summary>
/// A token count fixed per instantiation: the multi-token kernels take it as a type argument, so the
/// JIT compiles one body per count with the unused accumulators and loads removed.
/// </summary>
internal interface ITokenCount
{
    static abstract int Value { get; }
}

/// <summary>Two tokens.</summary>
internal readonly struct TwoTokens : ITokenCount
{
    public static int Value => 2;
}

/// <summary>Three tokens.</summary>
internal readonly struct ThreeTokens : ITokenCount
{
    public static int Value => 3;
}

/// <summary>Four tokens.</summary>
internal readonly struct FourTokens : ITokenCount
{
    public static int Value => 4;
}

/// <summary>Five tokens.</summary>
internal readonly struct FiveTokens : ITokenCount
{
    public static int Value => 5;
}

/// <summary>Six tokens.</summary>
internal readonly struct SixTokens : ITokenCount
{
    public static int Value => 6;
}

/// <summary>Seven tokens.</summary>
internal readonly struct SevenTokens : ITokenCount
{
    public static int Value => 7;
}

/// <summary>Eight tokens (32-register machines: 16 accumulators).</summary>
internal readonly struct EightTokens : ITokenCount
{
    public static int Value => 8;
}

/// <summary>Where the packed FP8 kernel's block scales are: folded into the tokens, or multiplied into each decoded weight vector.</summary>
internal interface IPackedScaling
{
    /// <summary>The packed tokens were multiplied by the rows' block-row scales (over 2^20): no multiply per weight vector.</summary>
    static abstract bool InTokens { get; }
}

/// <summary>The tokens carry the block row's scales.</summary>
internal readonly struct ScaledTokens : IPackedScaling
{
    public static bool InTokens => true;
}

/// <summary>Each decoded weight vector is multiplied by its block's scale.</summary>
internal readonly struct ScaledWeights : IPackedScaling
{
    public static bool InTokens => false;
}
