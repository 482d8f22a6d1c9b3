using System.Text;

namespace MimoSharp.Tokenization.Training;

/// <summary>
/// The first stage of BPE training, as Hugging Face's trainer does it: each text is NFC-normalised,
/// split by the Qwen2 pre-tokenizer pattern (<see cref="QwenPreTokenizer"/>, by code point as HF does), each piece mapped to the byte-level alphabet, and the
/// distinct pieces ("words") counted. Merges never cross a word boundary, so training needs only
/// these counts, not the text.
/// </summary>
public sealed class WordCounts
{
    private readonly Dictionary<string, long> _counts = new(StringComparer.Ordinal);

    /// <summary>Distinct words (byte-level spellings) and how often each occurred.</summary>
    public IReadOnlyDictionary<string, long> Counts => _counts;

    /// <summary>Bytes of (normalised) text counted so far.</summary>
    public long Bytes { get; private set; }

    public void Add(string text)
    {
        if (!text.IsNormalized(NormalizationForm.FormC))
        {
            text = text.Normalize(NormalizationForm.FormC);
        }
        Dictionary<string, long>.AlternateLookup<ReadOnlySpan<char>> lookup = _counts.GetAlternateLookup<ReadOnlySpan<char>>();
        Span<byte> utf8 = stackalloc byte[256];
        Span<char> spelled = stackalloc char[256];
        var pieces = new List<(int Offset, int Length)>();
        QwenPreTokenizer.Split(text, 0, pieces);
        foreach ((int offset, int length) in pieces)
        {
            ReadOnlySpan<char> piece = text.AsSpan(offset, length);
            int byteCount = Encoding.UTF8.GetByteCount(piece);
            Span<byte> bytes = byteCount <= utf8.Length ? utf8[..byteCount] : new byte[byteCount];
            Span<char> word = byteCount <= spelled.Length ? spelled[..byteCount] : new char[byteCount];
            Encoding.UTF8.GetBytes(piece, bytes);
            for (int i = 0; i < bytes.Length; i++)
            {
                word[i] = ByteLevelAlphabet.ToChar(bytes[i]);
            }
            Bytes += byteCount;
            if (lookup.TryGetValue(word, out long count))
            {
                lookup[word] = count + 1;
            }
            else
            {
                lookup[word] = 1;
            }
        }
    }

    /// <summary>Adds <paramref name="other"/>'s counts to these.</summary>
    public void Merge(WordCounts other)
    {
        foreach ((string word, long count) in other._counts)
        {
            _counts[word] = _counts.GetValueOrDefault(word) + count;
        }
        Bytes += other.Bytes;
    }

    /// <summary>Counts the words of <paramref name="texts"/> on <paramref name="threads"/> threads (one partial count each, merged at the end).</summary>
    public static WordCounts Count(IReadOnlyList<string> texts, int threads)
    {
        threads = Math.Clamp(threads, 1, Math.Max(1, texts.Count));
        var partial = new WordCounts[threads];
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
        {
            var counts = new WordCounts();
            for (int i = t; i < texts.Count; i += threads)
            {
                counts.Add(texts[i]);
            }
            partial[t] = counts;
        });
        WordCounts total = partial[0];
        for (int t = 1; t < threads; t++)
        {
            total.Merge(partial[t]);
        }
        return total;
    }
}
