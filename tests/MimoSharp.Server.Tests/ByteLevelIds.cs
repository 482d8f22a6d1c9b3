using MimoSharp.Tokenization;

namespace MimoSharp.Server.Tests;

/// <summary>Ids of the random models' byte-level tokenizer (256 bytes, then the control tokens).</summary>
internal static class ByteLevelIds
{
    public static int Control(string token) => 256 + ByteLevelTokenizerWriter.ControlTokens.ToList().IndexOf(token);

    /// <summary>&lt;|endoftext|&gt; and &lt;|im_end|&gt;.</summary>
    public static int[] EndOfTurn => [Control("<|endoftext|>"), Control("<|im_end|>")];
}
