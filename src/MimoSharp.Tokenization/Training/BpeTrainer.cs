namespace MimoSharp.Tokenization.Training;

/// <summary>What <see cref="BpeTrainer.Train"/> learnt: the ordinary tokens by id (byte-level spellings) and the merges in rank order.</summary>
public sealed record BpeVocabulary(IReadOnlyList<string> Tokens, IReadOnlyList<(string Left, string Right)> Merges);

/// <summary>
/// Byte-level BPE training with Hugging Face's algorithm (tokenizers' <c>BpeTrainer</c>), so that the
/// merges come out in its order: the alphabet is the 256 byte-level characters sorted by code point
/// (ids 0..255), every merge takes the pair with the highest count, ties going to the smaller pair of
/// ids, and the merged token takes the next id.
///
/// Pair counts live in a dictionary; a priority queue holds (pair, count, words holding it). An entry
/// whose count has gone stale is re-queued with the current count when it reaches the top (lazy
/// update, as HF does); after a merge only the words that held the pair are rewritten, and the pairs
/// it created are queued with the words they appear in. Nothing rescans the corpus.
/// </summary>
public static class BpeTrainer
{
    /// <summary>The byte-level alphabet in Hugging Face's id order (sorted by code point).</summary>
    public static IReadOnlyList<string> Alphabet { get; } =
        Enumerable.Range(0, 256).Select(b => ByteLevelAlphabet.ToChar((byte)b)).Order().Select(c => c.ToString()).ToArray();

    private sealed class Candidate(long pair, long count, List<int> words)
    {
        public readonly long Pair = pair;
        public long Count = count;
        public readonly List<int> Words = words;
    }

    private readonly struct Priority(long count, long pair) : IComparable<Priority>
    {
        private readonly long _count = count;
        private readonly long _pair = pair;

        // Min-queue order: the highest count first, then the smaller (left id, right id).
        public int CompareTo(Priority other) => _count != other._count ? other._count.CompareTo(_count) : _pair.CompareTo(other._pair);
    }

    private static long PairOf(int left, int right) => ((long)left << 32) | (uint)right;

    /// <summary>
    /// Learns merges until the vocabulary (alphabet plus merged tokens) holds <paramref name="vocabSize"/>
    /// tokens, or until no pair occurs <paramref name="minFrequency"/> times (at least once).
    /// </summary>
    public static BpeVocabulary Train(WordCounts words, int vocabSize, long minFrequency = 0)
    {
        if (vocabSize < Alphabet.Count)
        {
            throw new ArgumentOutOfRangeException(nameof(vocabSize), $"a byte-level BPE vocabulary needs at least {Alphabet.Count} tokens (the byte alphabet), got {vocabSize}");
        }
        var tokens = new List<string>(Alphabet);
        var idOf = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < tokens.Count; i++)
        {
            idOf[tokens[i]] = i;
        }

        // Words as symbol ids.
        int wordCount = words.Counts.Count;
        var symbols = new int[wordCount][];
        var lengths = new int[wordCount];
        var counts = new long[wordCount];
        int w = 0;
        foreach ((string word, long count) in words.Counts)
        {
            var ids = new int[word.Length];
            for (int i = 0; i < word.Length; i++)
            {
                ids[i] = idOf[word[i].ToString()];
            }
            symbols[w] = ids;
            lengths[w] = ids.Length;
            counts[w] = count;
            w++;
        }

        var pairCounts = new Dictionary<long, long>();
        var whereToUpdate = new Dictionary<long, List<int>>();
        for (w = 0; w < wordCount; w++)
        {
            int[] s = symbols[w];
            for (int i = 0; i + 1 < s.Length; i++)
            {
                Count(PairOf(s[i], s[i + 1]), counts[w], w);
            }
        }

        var queue = new PriorityQueue<Candidate, Priority>();
        Flush();

        var merges = new List<(string, string)>();
        while (tokens.Count < vocabSize && queue.TryDequeue(out Candidate? top, out _))
        {
            long current = pairCounts[top.Pair];
            if (top.Count != current)
            {
                top.Count = current;
                queue.Enqueue(top, new Priority(current, top.Pair));
                continue;
            }
            if (top.Count < 1 || top.Count < minFrequency)
            {
                break;
            }
            int left = (int)(top.Pair >> 32), right = (int)(uint)top.Pair;
            string merged = tokens[left] + tokens[right];
            if (!idOf.TryGetValue(merged, out int replacement))
            {
                // The same string can be built from two different pairs ("ab"+"c", "a"+"bc"); it keeps its first id, as in HF.
                replacement = tokens.Count;
                tokens.Add(merged);
                idOf[merged] = replacement;
            }
            merges.Add((tokens[left], tokens[right]));
            foreach (int word in top.Words)
            {
                MergeWord(word, left, right, replacement);
            }
            Flush();
        }
        return new BpeVocabulary(tokens, merges);

        void Count(long pair, long delta, int word)
        {
            pairCounts[pair] = pairCounts.GetValueOrDefault(pair) + delta;
            if (delta > 0)
            {
                if (!whereToUpdate.TryGetValue(pair, out List<int>? list))
                {
                    whereToUpdate[pair] = list = [];
                }
                // One word's changes arrive together, so a repeat is always the last entry.
                if (list.Count == 0 || list[^1] != word)
                {
                    list.Add(word);
                }
            }
        }

        void Flush()
        {
            foreach ((long pair, List<int> list) in whereToUpdate)
            {
                long count = pairCounts[pair];
                if (count > 0)
                {
                    queue.Enqueue(new Candidate(pair, count, list), new Priority(count, pair));
                }
            }
            whereToUpdate.Clear();
        }

        // HF's Word::merge: left to right, non-overlapping; each merge retires the pairs around it and creates the ones with the new token.
        void MergeWord(int word, int left, int right, int replacement)
        {
            int[] s = symbols[word];
            int length = lengths[word];
            long count = counts[word];
            for (int i = 0; i < length; i++)
            {
                if (s[i] != left || i + 1 >= length || s[i + 1] != right)
                {
                    continue;
                }
                if (i > 0)
                {
                    Count(PairOf(s[i - 1], left), -count, word);
                    Count(PairOf(s[i - 1], replacement), count, word);
                }
                s[i] = replacement;
                Array.Copy(s, i + 2, s, i + 1, length - i - 2);
                length--;
                if (i < length - 1)
                {
                    Count(PairOf(right, s[i + 1]), -count, word);
                    Count(PairOf(replacement, s[i + 1]), count, word);
                }
            }
            lengths[word] = length;
        }
    }
}
