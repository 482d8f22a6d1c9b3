using MimoSharp.Runtime.Sampling;

namespace MimoSharp.Runtime.Tests.Sampling;

/// <summary>Helpers shared by the sampler tests: build a sampler, read its distribution, compare with hand-computed values.</summary>
internal static class SamplingAssert
{
    public static float[] Probabilities(SamplingOptions options, float[] logits, int[]? history = null, int promptLength = 0, int? validVocab = null)
    {
        var sampler = new Sampler(options with { Seed = 1 }, logits.Length, promptLength, validVocab);
        var probs = new float[logits.Length];
        sampler.ComputeProbabilities(logits, history ?? [], probs);
        return probs;
    }

    /// <summary>Logits whose softmax at temperature 1 is <paramref name="probabilities"/>.</summary>
    public static float[] LogitsOf(params double[] probabilities) => probabilities.Select(p => (float)Math.Log(p)).ToArray();

    /// <summary>Each probability within 1e-6 of the expected one, and filtered tokens exactly zero.</summary>
    public static void Distribution(double[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            if (expected[i] == 0)
            {
                Assert.True(actual[i] == 0f, $"token {i}: expected exactly 0 (filtered), got {actual[i]:G9}");
            }
            else
            {
                Assert.True(Math.Abs(expected[i] - actual[i]) < 1e-6, $"token {i}: expected {expected[i]:F9}, got {actual[i]:F9}");
            }
        }
    }

    /// <summary>Pearson's chi-square of observed counts against expected probabilities (zero-probability cells must stay empty).</summary>
    public static double ChiSquare(int[] counts, double[] expected)
    {
        int n = counts.Sum();
        double chi = 0;
        for (int i = 0; i < counts.Length; i++)
        {
            if (expected[i] == 0)
            {
                Assert.True(counts[i] == 0, $"token {i} has probability 0 but was drawn {counts[i]} times");
                continue;
            }
            double e = n * expected[i];
            chi += (counts[i] - e) * (counts[i] - e) / e;
        }
        return chi;
    }
}
