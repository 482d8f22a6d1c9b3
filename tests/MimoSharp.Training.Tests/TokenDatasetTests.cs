using MimoSharp.Training;

namespace MimoSharp.Training.Tests;

public sealed class TokenDatasetTests
{
    [Theory]
    [InlineData(1000, 16, 19, 4)]
    [InlineData(4097, 32, 36, 8)]
    [InlineData(600, 8, 8, 3)]
    public void ShuffledWindowsVisitEveryWindowOncePerPassAndMixTheCorpus(int tokens, int stride, int tokensPerSequence, int batch)
    {
        string path = Path.Combine(Path.GetTempPath(), $"mimosharp-shuffle-{Guid.NewGuid():N}.bin");
        try
        {
            // Token i is i mod 65536, so a window's first token names its start.
            TokenDataset.Write(path, Enumerable.Range(0, tokens).Select(i => i % 65536).ToArray());
            TokenDataset data = TokenDataset.Open(path);
            long windows = data.WindowCount(stride, tokensPerSequence);
            Assert.Equal((tokens - tokensPerSequence) / stride + 1, windows);
            var seen = new HashSet<int>();
            var rows = new int[batch * tokensPerSequence];
            var starts = new List<int>();
            long index = 0;
            while (starts.Count < windows)
            {
                int take = (int)Math.Min(batch, windows - starts.Count);
                index = data.FillShuffled(index, take, stride, tokensPerSequence, rows.AsSpan(0, take * tokensPerSequence));
                for (int b = 0; b < take; b++)
                {
                    int start = rows[b * tokensPerSequence];
                    Assert.Equal(0, start % stride);
                    for (int t = 0; t < tokensPerSequence; t++)
                    {
                        Assert.Equal(start + t, rows[b * tokensPerSequence + t]);
                    }
                    Assert.True(seen.Add(start), $"window at {start} came twice in one pass");
                    starts.Add(start);
                }
            }
            Assert.Equal(windows, seen.Count);
            // Not the corpus order: neighbours in the permutation are far apart on average.
            double meanGap = starts.Zip(starts.Skip(1), (a, b) => Math.Abs(a - b) / (double)stride).Average();
            Assert.True(meanGap > windows / 8.0, $"mean gap {meanGap} windows of {windows}");
            // Deterministic: the same index gives the same windows (an exact resume).
            var again = new int[batch * tokensPerSequence];
            data.FillShuffled(0, batch, stride, tokensPerSequence, again);
            var first = new int[batch * tokensPerSequence];
            data.FillShuffled(0, batch, stride, tokensPerSequence, first);
            Assert.Equal(first, again);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
