using System.Text;
using System.Text.RegularExpressions;

namespace MimoSharp.Tokenization.Tests;

/// <summary>The hand-written Qwen2 pre-tokenizer against .NET's Regex of the same pattern (its naive twin on BMP text) and on text beyond the BMP.</summary>
public sealed class QwenPreTokenizerTests
{
    private static readonly Regex s_pattern = new(ByteLevelTokenizerWriter.QwenPattern);

    private static List<string> Pieces(string text)
    {
        var pieces = new List<(int Offset, int Length)>();
        QwenPreTokenizer.Split(text, 0, pieces);
        return pieces.Select(p => text.Substring(p.Offset, p.Length)).ToList();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void SplitsBmpTextAsTheRegexDoes(int seed)
    {
        // Every character class the pattern tells apart: letters (Latin, accented, CJK), digits (ASCII,
        // Arabic-Indic, Roman numeral), spaces, tabs, CR, LF, NBSP, ideographic space, apostrophes, contraction letters, punctuation, symbols.
        const string alphabet = "aZé中ßk5٣Ⅻ   \t\t\r\n\n\u00a0\u3000''''sStTrReEvVmMlLdD.,;!?()-_*#\"“”…€→";
        var random = new Random(seed);
        for (int n = 0; n < 3000; n++)
        {
            var text = new StringBuilder();
            int length = random.Next(1, 40);
            for (int i = 0; i < length; i++)
            {
                text.Append(alphabet[random.Next(alphabet.Length)]);
            }
            string s = text.ToString();
            Assert.Equal(s_pattern.Matches(s).Select(m => m.Value), Pieces(s));
        }
    }

    [Theory]
    [InlineData("𝓗𝓮𝓵𝓵𝓸 world", new[] { "𝓗𝓮𝓵𝓵𝓸", " world" })]
    [InlineData(" 𝓤\",", new[] { " 𝓤", "\",", })]
    [InlineData("x𝟙𝟚y", new[] { "x", "𝟙", "𝟚", "y" })]
    [InlineData("𠀀𠀁 ok 👍🏽!", new[] { "𠀀𠀁", " ok", " 👍🏽!" })]
    public void LettersAndDigitsBeyondTheBmpAreLettersAndDigits(string text, string[] expected)
    {
        // As Hugging Face (Oniguruma) and transformers.js split them; .NET's Regex would treat the surrogates as symbols.
        Assert.Equal(expected, Pieces(text));
    }

    [Fact]
    public void AddedTokensAreCutOutFirst()
    {
        var pre = new QwenPreTokenizer(new Dictionary<string, int> { ["<|im_start|>"] = 1, ["<think>"] = 2, ["<|im_start|>x"] = 3 });
        string text = "a<|im_start|>user\n<think>hi<|im_start|>xy";
        Assert.Equal(["a", "<|im_start|>", "user", "\n", "<think>", "hi", "<|im_start|>x", "y"], pre.PreTokenize(text).Select(p => text.Substring(p.Offset, p.Length)));
    }
}
