using System.IO.Compression;
using System.Text.Json;
using MimoSharp.Tokenization.Training;

namespace MimoSharp.Tokenization.Tests;

/// <summary>
/// The BPE trainer against Hugging Face's own (npm tokenizers 0.23.2) and a naive rescanning twin; the
/// tokenizer it writes against Hugging Face tokenizers and transformers.js encodings of it. Goldens come
/// from tools/tokenizer-oracle/make_bpe_goldens.mjs.
/// </summary>
public sealed class BpeTrainerTests
{
    private static readonly Lazy<WordCounts> s_corpusWords = new(() =>
    {
        // HF's Tokenizer.train(files) pre-tokenizes each line (with its line ending) on its own.
        string text = File.ReadAllText(Path.Combine(TestPaths.TokenizerData, "bpe-corpus.txt"));
        return WordCounts.Count(Lines(text).ToList(), 2);
    });

    private static IEnumerable<string> Lines(string text)
    {
        for (int start = 0; start < text.Length;)
        {
            int end = text.IndexOf('\n', start);
            end = end < 0 ? text.Length : end + 1;
            yield return text[start..end];
            start = end;
        }
    }

    [Fact]
    public void EveryMergeMatchesHuggingFacesTrainerInOrder()
    {
        using var gz = new GZipStream(File.OpenRead(Path.Combine(TestPaths.TokenizerData, "bpe-hf-merges.json.gz")), CompressionMode.Decompress);
        using JsonDocument doc = JsonDocument.Parse(gz);
        var expected = doc.RootElement.GetProperty("merges").EnumerateArray().Select(m => (m[0].GetString()!, m[1].GetString()!)).ToList();
        Assert.True(expected.Count > 10_000, $"the golden has only {expected.Count} merges");

        // A vocabulary larger than the corpus supports: training runs until no pair is left, as HF's did.
        BpeVocabulary ours = BpeTrainer.Train(s_corpusWords.Value, 100_000);
        int agree = 0;
        while (agree < Math.Min(expected.Count, ours.Merges.Count) && expected[agree] == ours.Merges[agree])
        {
            agree++;
        }
        Assert.True(agree == expected.Count && ours.Merges.Count == expected.Count,
            $"merges agree for the first {agree} of {expected.Count} (ours: {ours.Merges.Count}); first difference: HF {(agree < expected.Count ? expected[agree] : default)}, ours {(agree < ours.Merges.Count ? ours.Merges[agree] : default)}");
    }

    [Fact]
    public void WritesTheCheckedInTrainedTokenizer()
    {
        // testdata/tokenizer/trained is what the oracles were run on; the trainer must still produce it byte for byte.
        string dir = Path.Combine(Path.GetTempPath(), $"mimosharp-bpe-{Environment.ProcessId}");
        TrainedTokenizer.Write(dir, TrainedTokenizer.Train(s_corpusWords.Value, 2048));
        foreach (string file in new[] { "tokenizer.json", "tokenizer_config.json" })
        {
            Assert.Equal(File.ReadAllText(Path.Combine(TestPaths.TokenizerData, "trained", file)), File.ReadAllText(Path.Combine(dir, file)));
        }
        MimoTokenizer tokenizer = MimoTokenizer.Load(dir);
        Assert.Equal(2048, tokenizer.VocabularySize);
        Assert.Equal(2048 - TrainedTokenizer.AddedTokens.Count, tokenizer.TokenToId("<|endoftext|>"));
        Assert.Contains(tokenizer.TokenToId("<|im_end|>")!.Value, tokenizer.EosIds);
        Assert.True(tokenizer.IsSpecial(tokenizer.TokenToId("<|im_start|>")!.Value));
        Assert.False(tokenizer.IsSpecial(tokenizer.TokenToId("<think>")!.Value));
    }

    public static TheoryData<int> ParityCases()
    {
        var data = new TheoryData<int>();
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestPaths.TokenizerData, "trained-parity.json")));
        for (int i = 0; i < doc.RootElement.GetProperty("cases").GetArrayLength(); i++)
        {
            data.Add(i);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(ParityCases))]
    public void TrainedTokenizerEncodesAsHuggingFaceAndTransformersJs(int index)
    {
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestPaths.TokenizerData, "trained-parity.json")));
        JsonElement item = doc.RootElement.GetProperty("cases")[index];
        string text = item.GetProperty("text").GetString()!;
        int[] expected = item.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        MimoTokenizer tokenizer = MimoTokenizer.Load(Path.Combine(TestPaths.TokenizerData, "trained"));
        IReadOnlyList<int> actual = tokenizer.Encode(text);
        Assert.Equal(expected, actual);
        Assert.Equal(item.GetProperty("decoded").GetString(), tokenizer.Decode(actual));
    }

    [Fact]
    public void TiesGoToTheSmallerPair()
    {
        // Words "cd", "Ġcd", "Ġab" x2, "Ġxy" x3. Count 3: (x, y) and (Ġ, x); ids follow code points and
        // 'Ġ' is U+0120, so (x, y) is the smaller pair; then (Ġ, xy). Count 2: (a, b) < (c, d) < (Ġ, a) / (Ġ, ab).
        var words = new WordCounts();
        words.Add("cd cd ab ab xy xy xy");
        BpeVocabulary v = BpeTrainer.Train(words, 256 + 4);
        Assert.Equal([("x", "y"), ("Ġ", "xy"), ("a", "b"), ("c", "d")], v.Merges);
        Assert.Equal(["xy", "Ġxy", "ab", "cd"], v.Tokens.Skip(256));
    }

    [Theory]
    [InlineData(1, 3)]
    [InlineData(2, 4)]
    [InlineData(3, 6)]
    [InlineData(4, 26)]
    public void MatchesANaiveRescanningTwinOnRandomText(int seed, int letters)
    {
        var random = new Random(seed);
        var text = new System.Text.StringBuilder();
        for (int i = 0; i < 3000; i++)
        {
            int length = 1 + random.Next(8);
            for (int j = 0; j < length; j++)
            {
                text.Append((char)('a' + random.Next(letters)));
            }
            text.Append(random.Next(10) == 0 ? ".\n" : " ");
        }
        var words = new WordCounts();
        words.Add(text.ToString());
        BpeVocabulary fast = BpeTrainer.Train(words, 256 + 400);
        List<(string, string)> naive = NaiveTrain(words, 400, out int firstReuse);
        // HF's incremental queue and a full rescan agree until a merge yields a string that already is a
        // token ("ab"+"c" after "a"+"bc"): from there HF's bookkeeping of which words hold a pair may differ.
        int compare = Math.Min(firstReuse, Math.Min(fast.Merges.Count, naive.Count));
        Assert.True(compare > 50, $"only {compare} merges to compare");
        Assert.Equal(naive.Take(compare), fast.Merges.Take(compare));
    }

    /// <summary>Textbook BPE: recount every pair of every word after each merge; highest count, ties to the smaller (left id, right id).</summary>
    private static List<(string, string)> NaiveTrain(WordCounts words, int mergeCount, out int firstReuse)
    {
        var tokens = new List<string>(BpeTrainer.Alphabet);
        var idOf = tokens.Select((t, i) => (t, i)).ToDictionary(p => p.t, p => p.i);
        var list = words.Counts.Select(p => (Symbols: p.Key.Select(c => idOf[c.ToString()]).ToList(), Count: p.Value)).ToList();
        var merges = new List<(string, string)>();
        firstReuse = int.MaxValue;
        for (int m = 0; m < mergeCount; m++)
        {
            var counts = new Dictionary<(int, int), long>();
            foreach ((List<int> s, long count) in list)
            {
                for (int i = 0; i + 1 < s.Count; i++)
                {
                    counts[(s[i], s[i + 1])] = counts.GetValueOrDefault((s[i], s[i + 1])) + count;
                }
            }
            if (counts.Count == 0)
            {
                break;
            }
            var best = counts.OrderByDescending(p => p.Value).ThenBy(p => p.Key.Item1).ThenBy(p => p.Key.Item2).First().Key;
            string merged = tokens[best.Item1] + tokens[best.Item2];
            if (!idOf.TryGetValue(merged, out int id))
            {
                id = tokens.Count;
                tokens.Add(merged);
                idOf[merged] = id;
            }
            else
            {
                firstReuse = Math.Min(firstReuse, merges.Count);
            }
            merges.Add((tokens[best.Item1], tokens[best.Item2]));
            foreach ((List<int> s, _) in list)
            {
                for (int i = 0; i + 1 < s.Count; i++)
                {
                    if (s[i] == best.Item1 && s[i + 1] == best.Item2)
                    {
                        s[i] = id;
                        s.RemoveAt(i + 1);
                    }
                }
            }
        }
        return merges;
    }
}
