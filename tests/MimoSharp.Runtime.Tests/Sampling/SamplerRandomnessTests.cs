using MimoSharp.Runtime.Sampling;
using static MimoSharp.Runtime.Tests.Sampling.SamplingAssert;

namespace MimoSharp.Runtime.Tests.Sampling;

/// <summary>The seeded generator, reproducibility, draw statistics, and the no-allocation promise.</summary>
public sealed class SamplerRandomnessTests
{
    // Chi-square critical values at p = 0.001: a correct sampler fails one seed in a thousand, and the seeds are fixed.
    private const double ChiSquare2Dof = 13.82;
    private const double ChiSquare3Dof = 16.27;

    [Theory]
    // First outputs of Vigna's reference xoshiro256starstar.c with the state filled by splitmix64.c from the seed.
    [InlineData(0UL, 0x99EC5F36CB75F2B4UL, 0xBF6E1F784956452AUL, 0x1A5F849D4933E6E0UL, 0x6AA594F1262D2D2CUL)]
    [InlineData(42UL, 0x15780B2E0C2EC716UL, 0x6104D9866D113A7EUL, 0xAE17533239E499A1UL, 0xECB8AD4703B360A1UL)]
    public void XoshiroMatchesTheReferenceImplementation(ulong seed, ulong first, ulong second, ulong third, ulong fourth)
    {
        var random = new Xoshiro256(seed);
        Assert.Equal([first, second, third, fourth], new[] { random.NextUInt64(), random.NextUInt64(), random.NextUInt64(), random.NextUInt64() });
        // NextDouble is the top 53 bits of the same stream.
        Assert.Equal((first >> 11) / 9007199254740992.0, new Xoshiro256(seed).NextDouble());
    }

    [Fact]
    public void ADefaultXoshiroStateIsRejected()
    {
        var sampler = new Sampler(new SamplingOptions { Seed = 1 }, 4);
        Assert.True(default(Xoshiro256).IsDegenerate);
        Assert.False(new Xoshiro256(0).IsDegenerate);
        Assert.Throws<ArgumentException>(() => sampler.RandomState = default);
    }

    private static readonly float[] s_logits = [0.1f, 0.5f, 0.2f, 0.9f, 0.4f, -0.3f];

    private static int[] Run(Sampler sampler, int count = 64) =>
        Enumerable.Range(0, count).Select(_ => sampler.Sample(s_logits, [])).ToArray();

    [Fact]
    public void ASeedReproducesARun()
    {
        var options = new SamplingOptions { Temperature = 1.3f, TopP = 0.95f };
        Assert.Equal(Run(new Sampler(options with { Seed = 7 }, s_logits.Length)), Run(new Sampler(options with { Seed = 7 }, s_logits.Length)));
        Assert.NotEqual(Run(new Sampler(options with { Seed = 7 }, s_logits.Length)), Run(new Sampler(options with { Seed = 8 }, s_logits.Length)));
    }

    [Fact]
    public void ReseedRestartsTheSequence()
    {
        var options = new SamplingOptions { Temperature = 1.3f };
        int[] fresh = Run(new Sampler(options with { Seed = 7 }, s_logits.Length));
        var sampler = new Sampler(options with { Seed = 99 }, s_logits.Length);
        Run(sampler);
        sampler.Reseed(7);
        Assert.Equal(7UL, sampler.Seed);
        Assert.Equal(fresh, Run(sampler));
    }

    [Fact]
    public void ARestoredStateSnapshotReplaysTheDraws()
    {
        var sampler = new Sampler(new SamplingOptions { Temperature = 1.3f, Seed = 11 }, s_logits.Length);
        Run(sampler, 5);
        Xoshiro256 snapshot = sampler.RandomState;
        int[] first = Run(sampler);
        sampler.RandomState = snapshot;
        Assert.Equal(first, Run(sampler));
    }

    [Fact]
    public void AnUnseededSamplerReportsASeedThatReproducesIt()
    {
        var options = new SamplingOptions { Temperature = 1.3f };
        var unseeded = new Sampler(options, s_logits.Length);
        Assert.NotEqual(unseeded.Seed, new Sampler(options, s_logits.Length).Seed); // 2^-64 chance of a false failure
        Assert.Equal(Run(new Sampler(options with { Seed = unseeded.Seed }, s_logits.Length)), Run(unseeded));
    }

    [Fact]
    public void GreedyNeverAdvancesTheGenerator()
    {
        var greedy = new Sampler(new SamplingOptions { Temperature = 0, Seed = 5 }, s_logits.Length);
        Run(greedy);
        greedy.SampleFrom([0.2f, 0.3f, 0.5f, 0, 0, 0]);
        greedy.ComputeProbabilities(s_logits, [], new float[s_logits.Length]);
        Assert.Equal(new Xoshiro256(5).NextDouble(), greedy.NextUniform());
    }

    [Fact]
    public void SampleFromFrequenciesMatchTheDistribution()
    {
        // Unnormalised weights: 1 : 2 : 3 : 4 is 0.1, 0.2, 0.3, 0.4.
        float[] weights = [1, 2, 3, 4];
        var sampler = new Sampler(new SamplingOptions { Seed = 99 }, 4);
        var counts = new int[4];
        for (int i = 0; i < 40000; i++)
        {
            counts[sampler.SampleFrom(weights)]++;
        }
        double chi = ChiSquare(counts, [0.1, 0.2, 0.3, 0.4]);
        Assert.True(chi < ChiSquare3Dof, $"chi-square {chi:F2} with 3 degrees of freedom; counts {string.Join(", ", counts)}");
    }

    [Fact]
    public void SampleFollowsTheFilteredDistribution()
    {
        // [1, 2, 3, 0, -1] at T = 0.5 with top-k 3: the hand-computed softmax(2, 4, 6) over tokens 0..2, nothing else.
        float[] logits = [1, 2, 3, 0, -1];
        var sampler = new Sampler(new SamplingOptions { Temperature = 0.5f, TopK = 3, Seed = 2024 }, logits.Length);
        var counts = new int[5];
        for (int i = 0; i < 40000; i++)
        {
            counts[sampler.Sample(logits, [])]++;
        }
        double chi = ChiSquare(counts, [0.015876240, 0.117310428, 0.866813332, 0, 0]);
        Assert.True(chi < ChiSquare2Dof, $"chi-square {chi:F2} with 2 degrees of freedom; counts {string.Join(", ", counts)}");
    }

    [Fact]
    public void NextUniformStaysInTheUnitInterval()
    {
        var sampler = new Sampler(new SamplingOptions { Seed = 3 }, 2);
        double sum = 0;
        for (int i = 0; i < 10000; i++)
        {
            double u = sampler.NextUniform();
            Assert.InRange(u, 0, Math.BitDecrement(1.0));
            sum += u;
        }
        Assert.InRange(sum / 10000, 0.49, 0.51); // the mean of U(0, 1) within ~3.5 standard errors
    }

    [Fact]
    public void SamplingAllocatesNothingPerToken()
    {
        float[] logits = Enumerable.Range(0, 5000).Select(i => (float)Math.Sin(i)).ToArray();
        var options = new SamplingOptions
        {
            Temperature = 0.7f, TopK = 40, TopP = 0.9f, MinP = 0.01f,
            RepetitionPenalty = 1.1f, PresencePenalty = 0.2f, FrequencyPenalty = 0.1f,
            LogitBias = new Dictionary<int, float> { [7] = 1.5f, [4000] = float.NegativeInfinity },
            Seed = 3,
        };
        var sampler = new Sampler(options, logits.Length, promptLength: 3, validVocabSize: 4990);
        int[] history = [1, 2, 3, 2, 1, 4000];
        var probs = new float[logits.Length];
        // The first calls JIT-compile and may allocate; the steady state must not.
        sampler.Sample(logits, history);
        sampler.ComputeProbabilities(logits, history, probs);
        sampler.SampleFrom(probs);

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 50; i++)
        {
            sampler.Sample(logits, history);
            sampler.ComputeProbabilities(logits, history, probs);
            sampler.SampleFrom(probs);
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
