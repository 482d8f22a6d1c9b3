using MimoSharp.Runtime.Sampling;

namespace MimoSharp.Runtime.Tests.Sampling;

public sealed class SamplerTests
{
    private static float[] Probabilities(SamplingOptions options, float[] logits, int[]? history = null, int promptLength = 0, int? validVocab = null)
    {
        var sampler = new Sampler(options with { Seed = 1 }, logits.Length, promptLength, validVocab);
        var probs = new float[logits.Length];
        sampler.Probabilities(logits, history ?? [], probs);
        return probs;
    }

    private static double[] Softmax(params double[] z)
    {
        double max = z.Max();
        double[] e = z.Select(v => Math.Exp(v - max)).ToArray();
        double sum = e.Sum();
        return e.Select(v => v / sum).ToArray();
    }

    private static void AssertDistribution(double[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) < 1e-6, $"token {i}: expected {expected[i]:F7}, got {actual[i]:F7}");
        }
    }

    [Fact]
    public void TemperatureScalesLogits() =>
        AssertDistribution(Softmax(2, 4, 6), Probabilities(new SamplingOptions { Temperature = 0.5f }, [1, 2, 3]));

    [Fact]
    public void TopKKeepsTheKLargest()
    {
        double[] two = Softmax(2, 3);
        AssertDistribution([0, two[0], two[1], 0], Probabilities(new SamplingOptions { TopK = 2 }, [1, 2, 3, 0]));
    }

    private static float[] Logits(params double[] p) => p.Select(v => (float)Math.Log(v)).ToArray();

    [Fact]
    public void TopPKeepsTheSmallestSetReachingP()
    {
        float[] logits = Logits(0.5, 0.3, 0.15, 0.05);
        AssertDistribution([0.625, 0.375, 0, 0], Probabilities(new SamplingOptions { TopP = 0.79f }, logits));
        AssertDistribution([0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0], Probabilities(new SamplingOptions { TopP = 0.81f }, logits));
        AssertDistribution([1, 0, 0, 0], Probabilities(new SamplingOptions { TopP = 0.1f }, logits));
    }

    [Fact]
    public void TopPOnALargeFlatVocabularyKeepsAboutPOfIt()
    {
        var logits = new float[10000]; // uniform: the nucleus of p = 0.25 is 2500 tokens
        float[] probs = Probabilities(new SamplingOptions { TopP = 0.25f }, logits);
        Assert.InRange(probs.Count(p => p > 0), 2499, 2501);
        Assert.Equal(1.0, probs.Sum(), 4);
    }

    [Fact]
    public void MinPDropsTokensBelowAFractionOfTheBest() =>
        AssertDistribution([0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0], Probabilities(new SamplingOptions { MinP = 0.2f }, Logits(0.5, 0.3, 0.15, 0.05)));

    [Fact]
    public void RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits() =>
        // [2, -2, 1] with tokens 0 and 1 seen and penalty 2 -> [1, -4, 1].
        AssertDistribution(Softmax(1, -4, 1), Probabilities(new SamplingOptions { RepetitionPenalty = 2f }, [2, -2, 1], history: [0, 1, 1]));

    [Fact]
    public void PresenceAndFrequencyPenaltiesCountOnlyTheOutput() =>
        // Prompt [0]; output [1, 1]: token 1 loses 0.5 + 2 * 0.25; token 0 (prompt only) keeps its logit.
        AssertDistribution(Softmax(1, 1 - 1.0, 1), Probabilities(new SamplingOptions { PresencePenalty = 0.5f, FrequencyPenalty = 0.25f }, [1, 1, 1], history: [0, 1, 1], promptLength: 1));

    [Fact]
    public void LogitBiasShiftsAndBans()
    {
        AssertDistribution(Softmax(0, 0, 2), Probabilities(new SamplingOptions { LogitBias = new Dictionary<int, float> { [2] = 2f } }, [0, 0, 0]));
        AssertDistribution([0, 0.5, 0.5], Probabilities(new SamplingOptions { LogitBias = new Dictionary<int, float> { [0] = float.NegativeInfinity } }, [5, 0, 0]));
    }

    [Fact]
    public void PenaltiesBiasAndFiltersComposeInOrder()
    {
        // [3, 2, 1, 0]: token 0 seen -> 3/1.5 = 2; bias +0.5 on token 3 -> 0.5; T = 2 -> [1, 1, 0.5, 0.25]; top-k 3 drops token 3.
        var options = new SamplingOptions { RepetitionPenalty = 1.5f, LogitBias = new Dictionary<int, float> { [3] = 0.5f }, Temperature = 2f, TopK = 3 };
        double[] three = Softmax(1, 1, 0.5);
        AssertDistribution([three[0], three[1], three[2], 0], Probabilities(options, [3, 2, 1, 0], history: [0]));
    }

    [Fact]
    public void GreedyTakesTheFirstArgmaxWithoutRandomness()
    {
        var sampler = new Sampler(new SamplingOptions { Temperature = 0 }, 4);
        Assert.True(sampler.IsGreedy);
        Assert.Equal(1, sampler.Sample([0f, 5f, 5f, 1f], []));
        float[] probs = new float[4];
        sampler.Probabilities([0f, 5f, 5f, 1f], [], probs);
        Assert.Equal([0f, 1f, 0f, 0f], probs);
    }

    [Fact]
    public void PaddingRowsAreNeverChosen()
    {
        float[] probs = Probabilities(new SamplingOptions(), [0, 0, 0, 100, 100], validVocab: 3);
        AssertDistribution([1 / 3.0, 1 / 3.0, 1 / 3.0, 0, 0], probs);
    }

    [Fact]
    public void ASeedReproducesARun()
    {
        float[] logits = [0.1f, 0.5f, 0.2f, 0.9f, 0.4f];
        int[] Run(ulong seed)
        {
            var sampler = new Sampler(new SamplingOptions { Seed = seed }, logits.Length);
            return Enumerable.Range(0, 50).Select(_ => sampler.Sample(logits, [])).ToArray();
        }
        Assert.Equal(Run(7), Run(7));
        Assert.NotEqual(Run(7), Run(8));
    }

    [Fact]
    public void DrawsFollowTheDistribution()
    {
        float[] probs = [0.1f, 0.2f, 0.3f, 0.4f];
        var sampler = new Sampler(new SamplingOptions { Seed = 99 }, 4);
        var counts = new int[4];
        const int n = 40000;
        for (int i = 0; i < n; i++)
        {
            counts[sampler.Draw(probs)]++;
        }
        double chi = counts.Select((c, i) => (c - n * probs[i]) * (c - n * probs[i]) / (n * probs[i])).Sum();
        Assert.True(chi < 16.27, $"chi-square {chi:F2} with 3 degrees of freedom (p < 0.001 fails)");
    }

    [Theory]
    [InlineData(-1f, 0, 1f, 0f, "temperature")]
    [InlineData(1f, -1, 1f, 0f, "top_k")]
    [InlineData(1f, 0, 0f, 0f, "top_p")]
    [InlineData(1f, 0, 1.5f, 0f, "top_p")]
    [InlineData(1f, 0, 1f, 2f, "min_p")]
    public void InvalidOptionsNameTheOption(float temperature, int topK, float topP, float minP, string option)
    {
        var ex = Assert.Throws<ArgumentException>(() => new Sampler(new SamplingOptions { Temperature = temperature, TopK = topK, TopP = topP, MinP = minP }, 10));
        Assert.StartsWith(option, ex.Message);
    }

    [Fact]
    public void LogitBiasOutsideTheVocabularyIsRejected()
    {
        var ex = Assert.Throws<ArgumentException>(() => new Sampler(new SamplingOptions { LogitBias = new Dictionary<int, float> { [10] = 1 } }, 10));
        Assert.Contains("token 10", ex.Message);
    }

    [Fact]
    public void PresetsHoldTheRecommendedSettings()
    {
        SamplingOptions code = SamplingPresets.Get("code");
        Assert.Equal((0.6f, 0.9f, 2048, 1.2f), (code.Temperature, code.TopP, code.MaxTokens, code.RepetitionPenalty));
        SamplingOptions summary = SamplingPresets.Get("summary");
        Assert.Equal((0.5f, 0.85f, 1024, 1.1f), (summary.Temperature, summary.TopP, summary.MaxTokens, summary.RepetitionPenalty));
        Assert.Equal((0.4f, 0.8f, 512, 1.05f), (SamplingPresets.Get("math").Temperature, SamplingPresets.Get("math").TopP, SamplingPresets.Get("math").MaxTokens, SamplingPresets.Get("math").RepetitionPenalty));
        Assert.Equal((0.7f, 0.9f, 512, 1.1f), (SamplingPresets.Get("chat").Temperature, SamplingPresets.Get("chat").TopP, SamplingPresets.Get("chat").MaxTokens, SamplingPresets.Get("chat").RepetitionPenalty));
        Assert.Equal((0.8f, 0.95f), (SamplingPresets.Get("general").Temperature, SamplingPresets.Get("general").TopP));
        Assert.Equal((0.3f, 0.95f), (SamplingPresets.Get("agentic").Temperature, SamplingPresets.Get("agentic").TopP));
        var ex = Assert.Throws<ArgumentException>(() => SamplingPresets.Get("poetry"));
        Assert.Contains("chat", ex.Message);
    }

    [Fact]
    public void SamplingAllocatesNothingPerToken()
    {
        var logits = Enumerable.Range(0, 5000).Select(i => (float)Math.Sin(i)).ToArray();
        var sampler = new Sampler(new SamplingOptions { Temperature = 0.7f, TopK = 40, TopP = 0.9f, MinP = 0.01f, RepetitionPenalty = 1.1f, PresencePenalty = 0.2f, Seed = 3 }, logits.Length);
        int[] history = [1, 2, 3, 2, 1, 4000];
        sampler.Sample(logits, history);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 50; i++)
        {
            sampler.Sample(logits, history);
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
