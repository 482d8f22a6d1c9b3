using MimoSharp.Models;
using MimoSharp.Models.Caching;
using MimoSharp.Runtime.Generation;
using MimoSharp.Runtime.Scheduling;
using MimoSharp.Runtime.Speculative;

namespace MimoSharp.Runtime.Tests.Scheduling;

/// <summary>A restored prefix must give the logits of recomputing the whole prompt (main model and MTP heads).</summary>
public sealed class PrefixCacheTests
{
    private const float Tolerance = 1e-4f;

    private static int[] Tokens(int length, int vocab, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => random.Next(vocab)).ToArray();
    }

    /// <summary>Turn one: a prompt and a greedy answer, decoded with <paramref name="drafts"/> drafts; the session is left between steps.</summary>
    private static DecodingSession FirstTurn(MimoModel model, int[] prompt, int answer, int drafts, int reserve)
    {
        var session = new DecodingSession(model, GreedySampler.Instance, drafts, reserve: reserve);
        session.Prefill(prompt);
        Span<int> emitted = stackalloc int[4];
        while (session.Tokens.Count < prompt.Length + answer)
        {
            session.Step(emitted);
        }
        return session;
    }

    private static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        float largest = 0, worst = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            largest = MathF.Max(largest, MathF.Abs(expected[i]));
            worst = MathF.Max(worst, MathF.Abs(expected[i] - actual[i]));
        }
        Assert.True(worst <= Tolerance * MathF.Max(largest, 1f), $"{what}: max |diff| {worst} vs largest {largest}");
    }

    /// <summary>Main logits of prompt rows [from, P) and head k's logits of rows [from, P - k - 1), from a cache that holds [0, from).</summary>
    private static (float[] Main, float[][] Heads) RunRest(MimoModel model, SequenceKvCache cache, int[] prompt, int from, int heads)
    {
        int v = model.VocabSize, h = model.HiddenSize, rows = prompt.Length - from;
        var logits = new float[rows * v];
        var hidden = new float[rows * h];
        model.Forward([new SequenceInput(cache, prompt.AsMemory(from))], hidden, logits);
        var headLogits = new float[heads][];
        for (int k = 0; k < heads; k++)
        {
            Assert.Equal(from, cache.Mtp(k).Length);
            int headRows = rows - k - 1;
            headLogits[k] = new float[headRows * v];
            model.ForwardMtp(k, [new MtpInput(cache, prompt.AsMemory(from + k + 1, headRows), hidden.AsMemory(0, headRows * h))], headLogits[k]);
        }
        return (logits, headLogits);
    }

    /// <summary>The same rows from a cold cache that runs the whole prompt.</summary>
    private static (float[] Main, float[][] Heads) RunCold(MimoModel model, int[] prompt, int from, int heads, int reserve)
    {
        int v = model.VocabSize, h = model.HiddenSize, p = prompt.Length;
        SequenceKvCache cache = model.CreateCache(reserve: reserve);
        var logits = new float[p * v];
        var hidden = new float[p * h];
        model.Forward([new SequenceInput(cache, prompt)], hidden, logits);
        var headLogits = new float[heads][];
        for (int k = 0; k < heads; k++)
        {
            int headRows = p - k - 1;
            var all = new float[headRows * v];
            model.ForwardMtp(k, [new MtpInput(cache, prompt.AsMemory(k + 1, headRows), hidden.AsMemory(0, headRows * h))], all);
            headLogits[k] = all[(from * v)..];
        }
        return (logits[(from * v)..], headLogits);
    }

    [Theory]
    // The tiny test model's window is 8 positions. Cut inside the first window (the rings never wrapped):
    [InlineData(4, 3, 64, 0, 0)]
    [InlineData(4, 3, 64, 3, 0)]
    // Stream far beyond window + reserve (24): the rings hold only their tail; cut at the end of the stream
    // and 5 tokens before it (the next turn re-rendered the answer's last tokens differently).
    [InlineData(40, 20, 16, 0, 0)]
    [InlineData(40, 20, 16, 0, 5)]
    [InlineData(40, 20, 16, 3, 0)]
    [InlineData(40, 20, 16, 3, 5)]
    public void ASecondTurnFromTheCacheGivesTheLogitsOfAColdRun(int promptLength, int answer, int reserve, int drafts, int divergeBeforeEnd)
    {
        using var model = MimoModel.Load(TestModels.Tiny());
        int v = model.VocabSize;
        DecodingSession first = FirstTurn(model, Tokens(promptLength, v, 1), answer, drafts, reserve);
        var cache = new PrefixCache(model, 1L << 30);
        cache.Store(first);

        int kept = first.Cache.Length - divergeBeforeEnd; // stream tokens the second turn shares
        int[] second = [.. first.Tokens.Take(kept), .. Tokens(9, v, 2)];
        SequenceKvCache restored = model.CreateCache(reserve: reserve);
        int cut = cache.TryRestore(second, drafts, restored);
        Assert.True(cut > 0, "no prefix reused");
        Assert.True(cut <= kept - drafts, $"cut {cut} past the shared {kept} tokens less {drafts} drafts");
        Assert.True(cut >= kept - drafts - 8, $"cut {cut} reuses too little of the shared {kept} tokens");
        Assert.Equal(cut, restored.Length);

        (float[] main, float[][] heads) = RunRest(model, restored, second, cut, drafts);
        (float[] coldMain, float[][] coldHeads) = RunCold(model, second, cut, drafts, reserve);
        AssertClose(coldMain, main, "main logits");
        for (int k = 0; k < drafts; k++)
        {
            AssertClose(coldHeads[k], heads[k], $"MTP head {k} logits");
        }
    }

    [Fact]
    public void ACutBeforeTheCheckpointsRingIsAMissNotAWrongWindow()
    {
        using var model = MimoModel.Load(TestModels.Tiny());
        DecodingSession first = FirstTurn(model, Tokens(40, model.VocabSize, 1), 20, 0, reserve: 8);
        var cache = new PrefixCache(model, 1L << 30);
        cache.Store(first);
        // Shares 30 of ~59 positions: the global pages cover it but the sliding rings hold only the last 16.
        int[] second = [.. first.Tokens.Take(30), .. Tokens(5, model.VocabSize, 3)];
        Assert.Equal(0, cache.TryRestore(second, 0, model.CreateCache(reserve: 8)));
    }

    [Fact]
    public void EvictsLeastRecentlyUsedUnderTheBudget()
    {
        using var model = MimoModel.Load(TestModels.Tiny());
        DecodingSession a = FirstTurn(model, Tokens(30, model.VocabSize, 1), 5, 0, reserve: 8);
        DecodingSession b = FirstTurn(model, Tokens(30, model.VocabSize, 2), 5, 0, reserve: 8);
        var probe = new PrefixCache(model, 1L << 30);
        probe.Store(a);
        long one = probe.Bytes;
        var cache = new PrefixCache(model, one * 3 / 2); // room for one conversation
        cache.Store(a);
        cache.Store(b);
        Assert.True(cache.Bytes <= one * 3 / 2, $"{cache.Bytes} bytes held over a budget of {one * 3 / 2}");
        Assert.Equal(1, cache.Checkpoints);
        int[] nextA = [.. a.Tokens.Take(a.Cache.Length), 7];
        int[] nextB = [.. b.Tokens.Take(b.Cache.Length), 7];
        Assert.Equal(0, cache.TryRestore(nextA, 0, model.CreateCache(reserve: 8)));
        Assert.True(cache.TryRestore(nextB, 0, model.CreateCache(reserve: 8)) > 0);
    }

    [Fact]
    public void TurnsOfOneConversationSharePages()
    {
        using var model = MimoModel.Load(TestModels.Tiny());
        DecodingSession a = FirstTurn(model, Tokens(64, model.VocabSize, 1), 2, 0, reserve: 8);
        var cache = new PrefixCache(model, 1L << 30);
        cache.Store(a);
        long once = cache.Bytes;
        // A conversation that shares the first 48 tokens: only the pages after them and its rings are new.
        DecodingSession c = FirstTurn(model, [.. a.Tokens.Take(48), 5, 6, 7], 2, 0, reserve: 8);
        cache.Store(c);
        Assert.True(cache.Bytes - once < once, $"a second conversation sharing 48 of 64 tokens added {cache.Bytes - once} bytes to {once}");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    public async Task TheSchedulersSecondTurnReusesThePrefixAndMatchesAColdRun(int drafts)
    {
        using var model = MimoModel.Load(TestModels.Tiny());
        int v = model.VocabSize;
        using var scheduler = new InferenceScheduler(model, new SchedulerOptions { CacheReserve = 16 });
        var turn1 = new GenerationRequest { PromptIds = Tokens(50, v, 4), MaxTokens = 12, DraftTokens = drafts, TopLogprobs = 5 };
        List<GenerationEvent> first = await InferenceSchedulerTests.Collect(scheduler, turn1);
        Assert.Equal(0, first[^1].Usage!.CachedPromptTokens);
        int[] answer = first.Where(e => !e.IsFinal).Select(e => e.Token).ToArray();
        // The next turn: the whole conversation so far and a new user message.
        var turn2 = turn1 with { PromptIds = [.. turn1.PromptIds, .. answer, .. Tokens(20, v, 5)] };

        List<GenerationEvent> warm = await InferenceSchedulerTests.Collect(scheduler, turn2);
        List<GenerationEvent> cold = await InferenceSchedulerTests.Collect(new Generator(model), turn2);
        int cached = warm[^1].Usage!.CachedPromptTokens;
        Assert.True(cached >= 50 + 12 - 1 - drafts - 4, $"only {cached} of {turn2.PromptIds.Count} prompt tokens came from the cache");
        Assert.Equal(cold.Select(e => e.Token), warm.Select(e => e.Token));
        for (int i = 0; i < cold.Count - 1; i++)
        {
            Assert.Equal(cold[i].Logprob!.Top.Select(t => t.Token), warm[i].Logprob!.Top.Select(t => t.Token));
            Assert.Equal(cold[i].Logprob!.Logprob, warm[i].Logprob!.Logprob, Tolerance);
        }
        SchedulerStats stats = scheduler.Stats;
        Assert.Equal(1, stats.PrefixCacheHits);
        Assert.Equal(1, stats.PrefixCacheMisses);
        Assert.Equal(cached, stats.CachedPromptTokens);
        Assert.True(stats.PrefixCacheBytes > 0);
    }
}
