using System.Text;

namespace MimoSharp.Tokenization;

/// <summary>
/// Turns ids into text one at a time. Bytes of a character split across tokens are held until the
/// character is complete, so a stream never shows a broken character; text that could be the start
/// of a stop string is held until it is known not to be one, so stop strings are caught across token
/// boundaries and never shown.
/// </summary>
public sealed class StreamingDetokenizer
{
    private readonly MimoTokenizer _tokenizer;
    private readonly string[] _stopStrings;
    private readonly bool _skipSpecialTokens;
    private readonly Decoder _utf8 = Encoding.UTF8.GetDecoder();
    private readonly StringBuilder _held = new();
    private char[] _chars = new char[64];

    public StreamingDetokenizer(MimoTokenizer tokenizer, IEnumerable<string>? stopStrings = null, bool skipSpecialTokens = false)
    {
        _tokenizer = tokenizer;
        _stopStrings = (stopStrings ?? []).Where(s => s.Length > 0).ToArray();
        _skipSpecialTokens = skipSpecialTokens;
    }

    /// <summary>True once a stop string appeared; nothing after it is returned.</summary>
    public bool Stopped { get; private set; }

    /// <summary>The stop string that ended the text, if any.</summary>
    public string? MatchedStop { get; private set; }

    /// <summary>Feeds one id and returns the text that became safe to show.</summary>
    public string Push(int id)
    {
        if (Stopped || (_skipSpecialTokens && _tokenizer.IsSpecial(id)))
        {
            return "";
        }
        ReadOnlySpan<byte> bytes = _tokenizer.TokenBytes(id);
        int needed = _utf8.GetCharCount(bytes, flush: false);
        if (_chars.Length < needed)
        {
            _chars = new char[Math.Max(needed, _chars.Length * 2)];
        }
        int count = _utf8.GetChars(bytes, _chars, flush: false);
        _held.Append(_chars, 0, count);
        return Release(final: false);
    }

    /// <summary>Everything still held (an unfinished character becomes U+FFFD).</summary>
    public string Flush()
    {
        if (Stopped)
        {
            return "";
        }
        int count = _utf8.GetChars([], _chars, flush: true);
        _held.Append(_chars, 0, count);
        return Release(final: true);
    }

    private string Release(bool final)
    {
        if (_stopStrings.Length == 0)
        {
            string all = _held.ToString();
            _held.Clear();
            return all;
        }
        string text = _held.ToString();
        int stopAt = -1;
        foreach (string stop in _stopStrings)
        {
            int index = text.IndexOf(stop, StringComparison.Ordinal);
            if (index >= 0 && (stopAt < 0 || index < stopAt))
            {
                stopAt = index;
                MatchedStop = stop;
            }
        }
        if (stopAt >= 0)
        {
            Stopped = true;
            _held.Clear();
            return text[..stopAt];
        }
        int keep = final ? 0 : LongestStopPrefixSuffix(text);
        _held.Clear();
        _held.Append(text, text.Length - keep, keep);
        return text[..^keep];
    }

    /// <summary>Length of the longest suffix of <paramref name="text"/> that begins some stop string.</summary>
    private int LongestStopPrefixSuffix(string text)
    {
        int best = 0;
        foreach (string stop in _stopStrings)
        {
            for (int length = Math.Min(stop.Length - 1, text.Length); length > best; length--)
            {
                if (text.AsSpan(text.Length - length).SequenceEqual(stop.AsSpan(0, length)))
                {
                    best = length;
                    break;
                }
            }
        }
        return best;
    }
}
