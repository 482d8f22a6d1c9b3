using System.Text;
using Microsoft.ML.Tokenizers;

namespace MimoSharp.Tokenization;

/// <summary>
/// Qwen2's pre-tokenizer pattern (<see cref="ByteLevelTokenizerWriter.QwenPattern"/>) written out by hand
/// over Unicode code points. .NET's Regex classes see UTF-16 code units, so a letter or digit outside
/// the BMP (𝓗, 𝟙, CJK extension B) is not \p{L} / \p{N} to it, while Hugging Face's Oniguruma and
/// transformers.js match code points; this scanner does what they do. The alternatives are tried in
/// the pattern's order at each position, with the pattern's greedy-then-backtrack results:
/// 1 <c>(?i:'s|'t|'re|'ve|'m|'ll|'d)</c>, 2 <c>[^\r\n\p{L}\p{N}]?\p{L}+</c>, 3 <c>\p{N}</c>,
/// 4 <c> ?[^\s\p{L}\p{N}]+[\r\n]*</c>, 5 <c>\s*[\r\n]+</c>, 6 <c>\s+(?!\S)</c>, 7 <c>\s+</c>.
/// </summary>
public sealed class QwenPreTokenizer : PreTokenizer
{
    private readonly (string Content, int Id)[] _addedTokens;

    /// <param name="addedTokens">Tokens to cut out of the text first (longest first at each position), as Hugging Face's added vocabulary does.</param>
    public QwenPreTokenizer(IReadOnlyDictionary<string, int>? addedTokens = null)
    {
        _addedTokens = (addedTokens ?? new Dictionary<string, int>()).Select(p => (p.Key, p.Value)).Where(p => p.Key.Length > 0).OrderByDescending(p => p.Key.Length).ToArray();
    }

    public override IEnumerable<(int Offset, int Length)> PreTokenize(string text) => PreTokenize(text.AsSpan());

    public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text)
    {
        var pieces = new List<(int, int)>();
        int segment = 0;
        if (_addedTokens.Length > 0)
        {
            for (int i = 0; i < text.Length; i++)
            {
                foreach ((string content, _) in _addedTokens)
                {
                    if (text[i] == content[0] && text[i..].StartsWith(content, StringComparison.Ordinal))
                    {
                        Split(text[segment..i], segment, pieces);
                        pieces.Add((i, content.Length));
                        segment = i + content.Length;
                        i = segment - 1;
                        break;
                    }
                }
            }
        }
        Split(text[segment..], segment, pieces);
        return pieces;
    }

    private static Rune RuneAt(ReadOnlySpan<char> text, int i, out int length)
    {
        Rune.DecodeFromUtf16(text[i..], out Rune rune, out length);
        return rune; // a lone surrogate decodes as U+FFFD, which is neither letter, digit nor space, as the surrogate is
    }

    private static bool IsNewline(char c) => c is '\r' or '\n';

    private static bool IsOther(Rune r) => !Rune.IsLetter(r) && !Rune.IsNumber(r) && !Rune.IsWhiteSpace(r);

    /// <summary>Appends the pieces of <paramref name="text"/> (offsets shifted by <paramref name="offset"/>).</summary>
    public static void Split(ReadOnlySpan<char> text, int offset, List<(int Offset, int Length)> pieces)
    {
        int i = 0;
        while (i < text.Length)
        {
            int end = Match(text, i);
            pieces.Add((offset + i, end - i));
            i = end;
        }
    }

    /// <summary>The end of the piece that starts at <paramref name="i"/>.</summary>
    private static int Match(ReadOnlySpan<char> text, int i)
    {
        Rune c = RuneAt(text, i, out int cLength);
        int next = i + cLength;

        // 1: contractions.
        if (text[i] == '\'' && next < text.Length)
        {
            char a = char.ToLowerInvariant(text[next]);
            if (a is 's' or 't' or 'm' or 'd')
            {
                return next + 1;
            }
            if (next + 1 < text.Length)
            {
                char b = char.ToLowerInvariant(text[next + 1]);
                if ((a, b) is ('r', 'e') or ('v', 'e') or ('l', 'l'))
                {
                    return next + 2;
                }
            }
        }

        // 2: an optional non-letter, non-digit, non-newline, then letters.
        if (Rune.IsLetter(c))
        {
            return LetterRun(text, next);
        }
        if (!IsNewline(text[i]) && !Rune.IsNumber(c) && next < text.Length && Rune.IsLetter(RuneAt(text, next, out int l2)))
        {
            return LetterRun(text, next + l2);
        }

        // 3: one digit.
        if (Rune.IsNumber(c))
        {
            return next;
        }

        // 4: an optional space, then symbols, then newlines.
        int symbols = -1;
        if (IsOther(c))
        {
            symbols = i;
        }
        else if (text[i] == ' ' && next < text.Length && IsOther(RuneAt(text, next, out _)))
        {
            symbols = next;
        }
        if (symbols >= 0)
        {
            int j = symbols;
            while (j < text.Length && IsOther(RuneAt(text, j, out int l)))
            {
                j += l;
            }
            while (j < text.Length && IsNewline(text[j]))
            {
                j++;
            }
            return j;
        }

        // c is whitespace (all of it is in the BMP). 5: up to and including the run's last newline.
        int e = i;
        int lastNewline = -1;
        while (e < text.Length && char.IsWhiteSpace(text[e]))
        {
            if (IsNewline(text[e]))
            {
                lastNewline = e;
            }
            e++;
        }
        if (lastNewline >= 0)
        {
            return lastNewline + 1;
        }
        // 6: the run without its last character when something follows; 7: otherwise the whole run.
        return e < text.Length && e - i >= 2 ? e - 1 : e;
    }

    private static int LetterRun(ReadOnlySpan<char> text, int j)
    {
        while (j < text.Length && Rune.IsLetter(RuneAt(text, j, out int l)))
        {
            j += l;
        }
        return j;
    }
}
