using MimoSharp.Models;
using MimoSharp.Models.Caching;
using MimoSharp.Runtime.Speculative;
using MimoSharp.Tensors.Kernels;

namespace MimoSharp.Runtime.Tests.Speculative;

public sealed class SpeculativeDecodingTests
{
    private static int[] Prompt(int length, int vocab, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => random.Next(vocab)).ToArray();
    }

    private static List<int> Generate(DecodingSession session, int[] prompt, int count)
    {
        var output = new List<int> { session.Prefill(prompt) };
        Span<int> emitted = stackalloc int[4];
        while (output.Count < count)
        {
            int n = session.Step(emitted);
            for (int i = 0; i < n; i++)
            {
                output.Add(emitted[i]);
            }
        }
        return output.GetRange(0, count);
    }

    private static List<int> PlainGreedy(MimoModel model, int[] prompt, int count) =>
        Generate(new DecodingSession(model, new GreedyTestSampler(), 0), prompt, count);

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void GreedySpeculativeOutputEqualsPlainGreedy(int drafts)
    {
        foreach (ulong seed in new ulong[] { 1, 2 })
        {
            using var model = MimoModel.Load(TestModels.Tiny(seed));
            for (int p = 0; p < 4; p++)
            {
                int[] prompt = Prompt(3 + 7 * p, model.VocabSize, p);
                List<int> expected = PlainGreedy(model, prompt, 30);
                var session = new DecodingSession(model, new GreedyTestSampler(), drafts, reserve: 4);
                Assert.Equal(expected, Generate(session, prompt, 30));
            }
        }
    }

    [Theory]
    [InlineData(0, 1)]
    [InlineData(0, 5)]
    [InlineData(3, 4)]
    [InlineData(3, 13)]
    public void ChunkedPrefillGivesTheSameContinuation(int drafts, int chunk)
    {
        // The tiny test model's window is shorter than the prompt, so chunks also cross ring wraps.
        using var model = MimoModel.Load(TestModels.Tiny());
        int[] prompt = Prompt(37, model.VocabSize, 11);
        List<int> whole = Generate(new DecodingSession(model, new GreedyTestSampler(), drafts, reserve: 4), prompt, 25);
        var chunked = new DecodingSession(model, new GreedyTestSampler(), drafts, reserve: 4) { PrefillChunk = chunk };
        Assert.Equal(whole, Generate(chunked, prompt, 25));
    }

    [Theory]
    [InlineData(1, 0.0)]
    [InlineData(3, 0.3)]
    [InlineData(3, 0.0)]
    [InlineData(2, 0.6)]
    public void GreedyOutputIsUnchangedWhenDraftsAreOftenRight(int drafts, double corruption)
    {
        // Drafts replaced by the true continuation (some corrupted) exercise acceptance and rollback.
        using var model = MimoModel.Load(TestModels.Tiny());
        int[] prompt = Prompt(10, model.VocabSize, 42);
        List<int> truth = PlainGreedy(model, prompt, 60);
        var session = new DecodingSession(model, new GreedyTestSampler(), drafts, reserve: 4);
        var random = new Random(7);
        session.DraftOverride = d =>
        {
            int generated = session.Tokens.Count - prompt.Length; // truth[generated - 1] is the pending bonus
            for (int i = 0; i < d.Length; i++)
            {
                int index = generated + i;
                d[i] = index < truth.Count && random.NextDouble() >= corruption ? truth[index] : random.Next(model.VocabSize);
            }
        };
        Assert.Equal(truth.GetRange(0, 50), Generate(session, prompt, 50));
        if (corruption == 0)
        {
            Assert.True(session.Stats.MeanAcceptanceLength > drafts + 0.5, $"mean acceptance {session.Stats.MeanAcceptanceLength}");
        }
        Assert.True(session.Stats.HeadAcceptanceRate(0) > (1 - corruption) / 2, $"head 0 acceptance {session.Stats.HeadAcceptanceRate(0)}");
    }

    [Fact]
    public void MtpDraftsMatchAFreshComputationAfterEveryStep()
    {
        // The heads' incremental caches (rows appended, stale rows removed) must give the drafts a fresh
        // run over the committed sequence gives.
        using var model = MimoModel.Load(TestModels.Tiny());
        int[] prompt = Prompt(12, model.VocabSize, 5);
        List<int> truth = PlainGreedy(model, prompt, 40);
        var session = new DecodingSession(model, new GreedyTestSampler(), 3, reserve: 4);
        var random = new Random(3);
        int checkedSteps = 0;
        session.DraftOverride = d =>
        {
            int[] expected = FreshDrafts(model, session.Tokens.ToArray(), d.Length);
            Assert.Equal(expected, d.ToArray());
            checkedSteps++;
            int generated = session.Tokens.Count - prompt.Length;
            for (int i = 0; i < d.Length; i++)
            {
                d[i] = random.NextDouble() < 0.7 && generated + i < truth.Count ? truth[generated + i] : random.Next(model.VocabSize);
            }
        };
        Generate(session, prompt, 35);
        Assert.True(checkedSteps > 5);
    }

    /// <summary>Drafts from scratch: main model over all but the last token, each head over every row.</summary>
    private static int[] FreshDrafts(MimoModel model, int[] stream, int drafts)
    {
        int n = stream.Length - 1, h = model.HiddenSize;
        SequenceKvCache cache = model.CreateCache();
        var hidden = new float[n * h];
        model.Forward([new SequenceInput(cache, stream[..n], LogitRows.None)], hidden, default);
        var result = new int[drafts];
        var logits = new float[model.VocabSize];
        for (int k = 0; k < drafts; k++)
        {
            // Row t takes token t + k + 1 of the stream extended by this round's drafts.
            int[] extended = [.. stream, .. result[..k]];
            int[] tokens = Enumerable.Range(0, n).Select(t => extended[t + k + 1]).ToArray();
            model.ForwardMtp(k, [new MtpInput(cache, tokens, hidden, LogitRows.Last)], logits);
            result[k] = VectorMath.ArgMax(logits);
        }
        return result;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(3)]
    public void SamplingFollowsTheTargetDistributionOfTheNextTwoTokens(int drafts)
    {
        using var model = MimoModel.Load(TestModels.SmallVocab());
        int v = model.VocabSize;
        int[] prompt = [3, 1, 4, 1, 5];
        const double temperature = 2.0;

        // Exact P(x1, x2) = P(x1 | prompt) P(x2 | prompt, x1).
        var exact = new double[v * v];
        double[] p1 = TemperatureTestSampler.Softmax(LastLogits(model, prompt), temperature);
        for (int a = 0; a < v; a++)
        {
            double[] p2 = TemperatureTestSampler.Softmax(LastLogits(model, [.. prompt, a]), temperature);
            for (int b = 0; b < v; b++)
            {
                exact[a * v + b] = p1[a] * p2[b];
            }
        }

        const int samples = 2500;
        var counts = new int[v * v];
        var sampler = new TemperatureTestSampler(temperature, seed: 1234 + drafts);
        Span<int> emitted = stackalloc int[4];
        long accepted = 0, proposed = 0;
        for (int s = 0; s < samples; s++)
        {
            var session = new DecodingSession(model, sampler, drafts, reserve: 4);
            int x1 = session.Prefill(prompt);
            session.Step(emitted);
            counts[x1 * v + emitted[0]]++;
            if (drafts > 0)
            {
                proposed++;
                accepted += session.Stats.Tokens - 1;
            }
        }
        if (drafts > 0)
        {
            Assert.True(accepted > samples / 20, $"only {accepted} drafts accepted in {samples} steps: the test would not exercise acceptance");
        }
        double z = ChiSquareZ(counts, exact, samples);
        Assert.True(z < 3.5, $"chi-square z = {z:F2}: samples do not follow the target distribution");
    }

    private static float[] LastLogits(MimoModel model, int[] ids)
    {
        var logits = new float[model.VocabSize];
        model.Forward([new SequenceInput(model.CreateCache(), ids, LogitRows.Last)], default, logits);
        return logits;
    }

    /// <summary>Pearson chi-square against expected probabilities (cells with expected count &lt; 5 pooled), as a Wilson-Hilferty z score.</summary>
    private static double ChiSquareZ(int[] counts, double[] probabilities, int samples)
    {
        double chi = 0, pooledObserved = 0, pooledExpected = 0;
        int cells = 0;
        for (int i = 0; i < counts.Length; i++)
        {
            double expected = probabilities[i] * samples;
            if (expected < 5)
            {
                pooledObserved += counts[i];
                pooledExpected += expected;
                continue;
            }
            chi += (counts[i] - expected) * (counts[i] - expected) / expected;
            cells++;
        }
        if (pooledExpected > 0)
        {
            chi += (pooledObserved - pooledExpected) * (pooledObserved - pooledExpected) / Math.Max(pooledExpected, 1e-9);
            cells++;
        }
        int df = cells - 1;
        double k = df;
        return (Math.Cbrt(chi / k) - (1 - 2 / (9 * k))) / Math.Sqrt(2 / (9 * k));
    }

    [Fact]
    public void BadDraftCountsAreRefused()
    {
        using var model = MimoModel.Load(TestModels.Tiny());
        Assert.Throws<ArgumentOutOfRangeException>(() => new DecodingSession(model, new GreedyTestSampler(), 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DecodingSession(model, new GreedyTestSampler(), -1));
    }
}

public sealed class DecodeAllocationTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    public void StepsAllocateNothing(int drafts)
    {
        using var model = MimoSharp.Models.MimoModel.Load(TestModels.Tiny());
        var session = new DecodingSession(model, new MimoSharp.Runtime.Sampling.Sampler(new MimoSharp.Runtime.Sampling.SamplingOptions { Temperature = 0.8f, TopP = 0.9f, Seed = 1 }, model.VocabSize), drafts);
        session.Prefill([1, 2, 3, 4, 5, 6, 7, 8]);
        var emitted = new int[4];
        for (int i = 0; i < 20; i++)
        {
            session.Step(emitted); // warm up: workspaces grow to their size
        }
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 20; i++)
        {
            session.Step(emitted);
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated == 0, $"{allocated} bytes allocated in 20 steps");
    }
}
