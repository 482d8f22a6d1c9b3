using MimoSharp.Runtime.Generation;
using MimoSharp.Runtime.Sampling;
using static MimoSharp.Runtime.Tests.Sampling.SamplingAssert;

namespace MimoSharp.Runtime.Tests.Sampling;

/// <summary>Each stage of the chain against distributions computed by hand (softmax values from exp by hand / calculator).</summary>
public sealed class SamplerStageTests
{
    [Fact]
    public void TemperatureHalfDoublesTheLogitGaps()
    {
        // [1, 2, 3] / 0.5 = [2, 4, 6]: e^-4, e^-2, 1 over their sum 1.153650922.
        Distribution([0.015876240, 0.117310428, 0.866813332], Probabilities(new SamplingOptions { Temperature = 0.5f }, [1, 2, 3]));
    }

    [Fact]
    public void TemperatureOneIsThePlainSoftmax() =>
        // softmax(2, 3) = [1, e] / (1 + e).
        Distribution([0.268941421, 0.731058579], Probabilities(new SamplingOptions(), [2, 3]));

    [Fact]
    public void HugeLogitsDoNotOverflow() =>
        // Only differences matter: [1001, 1002, 1003] at T = 0.5 is [1, 2, 3] at T = 0.5.
        Distribution([0.015876240, 0.117310428, 0.866813332], Probabilities(new SamplingOptions { Temperature = 0.5f }, [1001, 1002, 1003]));

    [Fact]
    public void TopKKeepsTheKLargestAndRenormalises() =>
        // [1, 2, 3, 0], k = 2: softmax over {2, 3}.
        Distribution([0, 0.268941421, 0.731058579, 0], Probabilities(new SamplingOptions { TopK = 2 }, [1, 2, 3, 0]));

    [Fact]
    public void TopKKeepsTiesWithTheKthLogit() =>
        // k = 2 over [5, 1, 3, 3]: the 2nd largest is 3, held by two tokens; both stay (HF / vLLM).
        // softmax(5, 3, 3) = [1, e^-2, e^-2] / (1 + 2 e^-2).
        Distribution([0.786986042, 0, 0.106506979, 0.106506979], Probabilities(new SamplingOptions { TopK = 2 }, [5, 1, 3, 3]));

    [Fact]
    public void TopKAtOrAboveTheVocabularyKeepsEverything() =>
        Distribution([0.015876240, 0.117310428, 0.866813332], Probabilities(new SamplingOptions { Temperature = 0.5f, TopK = 3 }, [1, 2, 3]));

    [Fact]
    public void TopPKeepsTheSmallestSetReachingP()
    {
        float[] logits = LogitsOf(0.5, 0.3, 0.15, 0.05);
        // 0.5 < 0.79 <= 0.5 + 0.3: two tokens.
        Distribution([0.625, 0.375, 0, 0], Probabilities(new SamplingOptions { TopP = 0.79f }, logits));
        // 0.8 < 0.81 <= 0.95: three tokens.
        Distribution([0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0], Probabilities(new SamplingOptions { TopP = 0.81f }, logits));
        // The most likely token alone already passes p.
        Distribution([1, 0, 0, 0], Probabilities(new SamplingOptions { TopP = 0.1f }, logits));
    }

    [Fact]
    public void TopPStopsAsSoonAsTheCumulativeProbabilityEqualsP()
    {
        // Uniform over 4: every probability is exactly 0.25 in float, so the sums are exact.
        float[] uniform = [0, 0, 0, 0];
        // 0.25 + 0.25 = 0.5 >= 0.5: two tokens, the lower ids among the equal probabilities.
        Distribution([0.5, 0.5, 0, 0], Probabilities(new SamplingOptions { TopP = 0.5f }, uniform));
        // Just above 0.5 needs a third token.
        Distribution([1 / 3.0, 1 / 3.0, 1 / 3.0, 0], Probabilities(new SamplingOptions { TopP = 0.5000001f }, uniform));
        Distribution([0.25, 0.25, 0.25, 0.25], Probabilities(new SamplingOptions { TopP = 1f }, uniform));
    }

    [Fact]
    public void TopPSeesTheDistributionRenormalisedAfterTopK()
    {
        // Top-k 2 leaves [0.4, 0.3] -> [4/7, 3/7]; 4/7 >= 0.5 so top-p keeps one token. On the unrenormalised
        // 0.4 it would have kept two.
        Distribution([1, 0, 0, 0], Probabilities(new SamplingOptions { TopK = 2, TopP = 0.5f }, LogitsOf(0.4, 0.3, 0.2, 0.1)));
    }

    [Fact]
    public void TopPOnALargeFlatVocabularyKeepsAboutPOfIt()
    {
        var logits = new float[10000]; // uniform: the nucleus of p = 0.25 is 2500 tokens
        float[] probs = Probabilities(new SamplingOptions { TopP = 0.25f }, logits);
        Assert.InRange(probs.Count(p => p > 0), 2499, 2501);
        Assert.Equal(1.0, probs.Sum(), 4);
        // Equal probabilities go to the lower ids: the kept set is a prefix.
        Assert.True(probs[0] > 0 && probs[2400] > 0 && probs[2600] == 0 && probs[^1] == 0);
    }

    [Fact]
    public void TopPMatchesASortReferenceOnRandomLogits()
    {
        var random = new Random(12345);
        for (int trial = 0; trial < 200; trial++)
        {
            int vocab = random.Next(2, 300);
            // Logits on a coarse grid (many exact ties) or spread wide (long tails that need several threshold halvings).
            double scale = trial % 2 == 0 ? 1 : 8;
            float[] logits = Enumerable.Range(0, vocab).Select(_ => (float)(Math.Round(random.NextDouble() * 4, trial % 3 == 0 ? 0 : 3) * scale)).ToArray();
            float topP = (float)(0.05 + 0.9 * random.NextDouble());

            // The reference filters the sampler's own unfiltered distribution, so both see the same float probabilities.
            float[] full = Probabilities(new SamplingOptions { Temperature = 0.9f }, logits);
            int[] order = Enumerable.Range(0, vocab).OrderByDescending(i => full[i]).ThenBy(i => i).ToArray();
            var expectedKept = new HashSet<int>();
            double cumulative = 0;
            foreach (int i in order)
            {
                expectedKept.Add(i);
                cumulative += full[i];
                if (cumulative >= topP)
                {
                    break;
                }
            }

            float[] filtered = Probabilities(new SamplingOptions { Temperature = 0.9f, TopP = topP }, logits);
            Assert.Equal(expectedKept.Order(), Enumerable.Range(0, vocab).Where(i => filtered[i] > 0));
            double keptMass = expectedKept.Sum(i => (double)full[i]);
            foreach (int i in expectedKept)
            {
                Assert.Equal(full[i] / keptMass, filtered[i], 5);
            }
        }
    }

    [Fact]
    public void TopKMatchesASortReferenceOnRandomLogits()
    {
        var random = new Random(54321);
        for (int trial = 0; trial < 200; trial++)
        {
            int vocab = random.Next(2, 300);
            float[] logits = Enumerable.Range(0, vocab).Select(_ => (float)Math.Round(random.NextDouble() * 6, trial % 2 == 0 ? 0 : 2)).ToArray();
            int k = random.Next(1, vocab + 1);
            float kth = logits.OrderDescending().ElementAt(k - 1);
            float[] filtered = Probabilities(new SamplingOptions { TopK = k }, logits);
            Assert.Equal(Enumerable.Range(0, vocab).Where(i => logits[i] >= kth), Enumerable.Range(0, vocab).Where(i => filtered[i] > 0));
        }
    }

    [Fact]
    public void MinPDropsTokensBelowAFractionOfTheBest()
    {
        float[] logits = LogitsOf(0.5, 0.3, 0.15, 0.05);
        // Threshold 0.2 · 0.5 = 0.1: only 0.05 goes.
        Distribution([0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0], Probabilities(new SamplingOptions { MinP = 0.2f }, logits));
        // Threshold 0.31 · 0.5 = 0.155: 0.15 goes too.
        Distribution([0.625, 0.375, 0, 0], Probabilities(new SamplingOptions { MinP = 0.31f }, logits));
    }

    [Fact]
    public void MinPKeepsTokensExactlyAtTheThreshold() =>
        // min_p = 1 keeps exactly the tokens tied with the best.
        Distribution([0.5, 0, 0.5], Probabilities(new SamplingOptions { MinP = 1f }, [2, 1, 2]));

    [Fact]
    public void RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits() =>
        // [2, -2, 1] with tokens 0 and 1 seen (1 twice: penalised once) and penalty 2 -> [1, -4, 1].
        // softmax(1, -4, 1) = [1, e^-5, 1] / (2 + e^-5).
        Distribution([0.498321169, 0.003357662, 0.498321169], Probabilities(new SamplingOptions { RepetitionPenalty = 2f }, [2, -2, 1], history: [0, 1, 1]));

    [Fact]
    public void RepetitionPenaltyLeavesAZeroLogitAndUnseenTokensAlone() =>
        // Token 0 (logit 0) seen: 0 / 2 = 0; token 1 seen: -0.75 · 2 = -1.5; tokens 2 and 3 unseen.
        // softmax(0, -1.5, 0, 1).
        Distribution([0.202371306, 0.045155142, 0.202371306, 0.550102245], Probabilities(new SamplingOptions { RepetitionPenalty = 2f }, [0, -0.75f, 0, 1], history: [0, 1]));

    [Fact]
    public void PresenceAndFrequencyPenaltiesCountOnlyTheOutput() =>
        // Prompt [0]; output [1, 1, 2]. Token 1: 1 - 0.5 - 2·0.25 = 0; token 2: 1 - 0.5 - 0.25 = 0.25;
        // token 0 (prompt only) and token 3 keep 1. softmax(1, 0, 0.25, 1).
        Distribution([0.352082180, 0.129523795, 0.166311845, 0.352082180],
            Probabilities(new SamplingOptions { PresencePenalty = 0.5f, FrequencyPenalty = 0.25f }, [1, 1, 1, 1], history: [0, 1, 1, 2], promptLength: 1));

    [Fact]
    public void PenaltiesDependOnlyOnTheHistoryOfTheCall()
    {
        // Speculative verification asks one sampler about several positions; nothing may carry over between calls.
        var options = new SamplingOptions { RepetitionPenalty = 1.5f, PresencePenalty = 0.5f, FrequencyPenalty = 0.25f };
        float[] logits = [1, -1, 2, 0.5f];
        int[] longer = [3, 0, 1, 1, 2];
        var sampler = new Sampler(options with { Seed = 1 }, 4, promptLength: 1);
        var first = new float[4];
        var again = new float[4];
        sampler.ComputeProbabilities(logits, longer, first);
        sampler.ComputeProbabilities(logits, longer, again);
        Assert.Equal(first, again);

        var shorter = new float[4];
        sampler.ComputeProbabilities(logits, longer.AsSpan(0, 3), shorter);
        Assert.Equal(Probabilities(options, logits, history: longer[..3], promptLength: 1), shorter);
        Assert.NotEqual(first, shorter);
    }

    [Fact]
    public void RepetitionPenaltyCoversThePromptButPresenceDoesNot()
    {
        // Prompt [0, 1], no output yet: repetition 2 halves both logits, presence has nothing to count.
        // [2, 2, 1] -> [1, 1, 1]: uniform.
        var options = new SamplingOptions { RepetitionPenalty = 2f, PresencePenalty = 1f };
        Distribution([1 / 3.0, 1 / 3.0, 1 / 3.0], Probabilities(options, [2, 2, 1], history: [0, 1], promptLength: 2));
    }

    [Fact]
    public void LogitBiasShiftsAndBans()
    {
        // +ln 2 on token 2 doubles its weight: [e, e, 2e] / 4e. (The bias adds to the logit 1; it does not replace it.)
        Distribution([0.25, 0.25, 0.5], Probabilities(new SamplingOptions { LogitBias = new Dictionary<int, float> { [2] = MathF.Log(2) } }, [1, 1, 1]));
        Distribution([0, 0.5, 0.5], Probabilities(new SamplingOptions { LogitBias = new Dictionary<int, float> { [0] = float.NegativeInfinity } }, [5, 0, 0]));
    }

    [Fact]
    public void ALargeLogitBiasForcesItsToken()
    {
        var sampler = new Sampler(new SamplingOptions { Temperature = 1.5f, LogitBias = new Dictionary<int, float> { [2] = 100f }, Seed = 4 }, 4);
        float[] logits = [5, 4, 0, 3];
        for (int i = 0; i < 200; i++)
        {
            Assert.Equal(2, sampler.Sample(logits, []));
        }
    }

    [Fact]
    public void StagesComposeInTheDocumentedOrder()
    {
        // [3, 2, 1, 0]: token 0 seen -> 3 / 1.5 = 2; bias +0.5 on token 3 -> 0.5; T = 2 -> [1, 1, 0.5, 0.25];
        // top-k 3 drops token 3; softmax(1, 1, 0.5) = [1, 1, e^-0.5] / (2 + e^-0.5).
        var options = new SamplingOptions { RepetitionPenalty = 1.5f, LogitBias = new Dictionary<int, float> { [3] = 0.5f }, Temperature = 2f, TopK = 3 };
        double tail = Math.Exp(-0.5);
        Distribution([1 / (2 + tail), 1 / (2 + tail), tail / (2 + tail), 0], Probabilities(options, [3, 2, 1, 0], history: [0]));
    }

    [Fact]
    public void GreedyTakesTheFirstArgmax()
    {
        var sampler = new Sampler(new SamplingOptions { Temperature = 0 }, 4);
        Assert.True(sampler.IsGreedy);
        Assert.Equal(1, sampler.Sample([0f, 5f, 5f, 1f], []));
        var probs = new float[4];
        sampler.ComputeProbabilities([0f, 5f, 5f, 1f], [], probs);
        Assert.Equal([0f, 1f, 0f, 0f], probs);
    }

    [Fact]
    public void GreedyStillAppliesPenaltiesAndBias()
    {
        // [2, 1.5, 0]: token 0 seen, penalty 2 -> 1 < 1.5, so token 1 wins; a bias of +3 on token 2 then beats both.
        Assert.Equal(1, new Sampler(new SamplingOptions { Temperature = 0, RepetitionPenalty = 2f }, 3).Sample([2, 1.5f, 0], [0]));
        var biased = new SamplingOptions { Temperature = 0, RepetitionPenalty = 2f, LogitBias = new Dictionary<int, float> { [2] = 3f } };
        Assert.Equal(2, new Sampler(biased, 3).Sample([2, 1.5f, 0], [0]));
    }

    [Fact]
    public void PaddingRowsGetNoProbabilityAndAreNeverSampled()
    {
        float[] logits = [0, 0, 0, 100, 100];
        Distribution([1 / 3.0, 1 / 3.0, 1 / 3.0, 0, 0], Probabilities(new SamplingOptions(), logits, validVocab: 3));
        Assert.Equal(1, new Sampler(new SamplingOptions { Temperature = 0 }, 5, validVocabSize: 3).Sample([0, 1, 0, 100, 100], []));

        // Mass the caller leaves on padding rows (e.g. a residual) is ignored by the draw.
        var sampler = new Sampler(new SamplingOptions { Seed = 2 }, 5, validVocabSize: 3);
        for (int i = 0; i < 100; i++)
        {
            Assert.Equal(0, sampler.SampleFrom([1, 0, 0, 1000, 1000]));
            Assert.InRange(sampler.Sample(logits, []), 0, 2);
        }
    }

    [Fact]
    public void ComputeProbabilitiesIsTheDistributionBehindTheInterface()
    {
        // Speculative decoding reaches the sampler through ITokenSampler; both paths must give the same numbers.
        var options = new SamplingOptions { Temperature = 0.7f, TopK = 3, TopP = 0.9f, RepetitionPenalty = 1.3f, Seed = 5 };
        float[] logits = [0.5f, 2, -1, 1.5f, 0.2f];
        int[] history = [1, 3];
        var direct = new float[5];
        new Sampler(options, 5).ComputeProbabilities(logits, history, direct);
        var viaInterface = new float[5];
        ((ITokenSampler)new Sampler(options, 5)).Probabilities(logits, history, viaInterface);
        Assert.Equal(direct, viaInterface);
        Assert.Equal(1.0, direct.Sum(), 5);
    }

    [Fact]
    public void NoSurvivingTokenIsAnError()
    {
        var banAll = new SamplingOptions { LogitBias = new Dictionary<int, float> { [0] = float.NegativeInfinity, [1] = float.NegativeInfinity } };
        Assert.Throws<InvalidOperationException>(() => new Sampler(banAll, 2).Sample([1, 2], []));
        Assert.Throws<InvalidOperationException>(() => new Sampler(banAll with { Temperature = 0 }, 2).Sample([1, 2], []));
        Assert.Throws<InvalidOperationException>(() => new Sampler(new SamplingOptions(), 2).Sample([float.NaN, 2], []));
        Assert.Throws<InvalidOperationException>(() => new Sampler(new SamplingOptions(), 2).SampleFrom([0, 0]));
    }
}
