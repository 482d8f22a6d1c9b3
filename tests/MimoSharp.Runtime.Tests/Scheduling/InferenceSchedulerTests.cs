using MimoSharp.Models;
using MimoSharp.Models.Caching;
using MimoSharp.Runtime.Generation;
using MimoSharp.Runtime.Scheduling;

namespace MimoSharp.Runtime.Tests.Scheduling;

/// <summary>The batching scheduler against the one-sequence <see cref="Generator"/> on the same model (no mocks).</summary>
public sealed class InferenceSchedulerTests
{
    private static int[] Prompt(int length, int vocab, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => random.Next(vocab)).ToArray();
    }

    internal static async Task<List<GenerationEvent>> Collect(IGenerationEngine engine, GenerationRequest request, CancellationToken token = default)
    {
        var events = new List<GenerationEvent>();
        await foreach (GenerationEvent e in engine.GenerateAsync(request, token))
        {
            events.Add(e);
        }
        return events;
    }

    private static List<int> Tokens(List<GenerationEvent> events) => events.Where(e => !e.IsFinal).Select(e => e.Token).ToList();

    [Fact]
    public async Task SixteenSimultaneousStreamsAllFinishWithCorrectUsage()
    {
        using var model = MimoModel.Load(TestModels.Tiny());
        using var scheduler = new InferenceScheduler(model, new SchedulerOptions { MaxRunningSequences = 16, PrefillTokensPerStep = 24 });
        var requests = Enumerable.Range(0, 16).Select(i => new GenerationRequest
        {
            PromptIds = Prompt(3 + i * 5, model.VocabSize, i),
            MaxTokens = 6 + i % 5,
            DraftTokens = i % 4,
        }).ToArray();
        List<GenerationEvent>[] results = await Task.WhenAll(requests.Select(r => Task.Run(() => Collect(scheduler, r))));
        for (int i = 0; i < requests.Length; i++)
        {
            GenerationEvent last = results[i][^1];
            Assert.Equal(FinishReason.Length, last.Finish);
            Assert.Equal(requests[i].PromptIds.Count, last.Usage!.PromptTokens);
            Assert.Equal(requests[i].MaxTokens, last.Usage.CompletionTokens);
            Assert.Equal(requests[i].MaxTokens, results[i].Count - 1);
            Assert.Single(results[i], e => e.IsFinal);
        }
        SchedulerStats stats = scheduler.Stats;
        Assert.Equal(16, stats.RequestsFinished);
        Assert.Equal(requests.Sum(r => r.MaxTokens), stats.GeneratedTokens);
        Assert.Equal(requests.Sum(r => r.PromptIds.Count), stats.PromptTokens);
        Assert.Equal(0, stats.RunningSequences);
        Assert.Equal(0, stats.KvBytesInUse);
        Assert.Equal(0, stats.KvBytesReserved);
        Assert.True(stats.Steps < requests.Sum(r => r.MaxTokens), $"{stats.Steps} steps for {stats.GeneratedTokens} tokens: the sequences were not batched");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    public async Task GreedyBatchedOutputsEqualTheSameRequestsRunAlone(int drafts)
    {
        using var model = MimoModel.Load(TestModels.Tiny(seed: 2));
        // Mixed lengths, so long prompts are prefilled in chunks while shorter ones already decode.
        var requests = Enumerable.Range(0, 6).Select(i => new GenerationRequest
        {
            PromptIds = Prompt(2 + i * 9, model.VocabSize, 100 + i),
            MaxTokens = 20,
            DraftTokens = drafts,
        }).ToArray();
        var generator = new Generator(model);
        var alone = new List<List<int>>();
        foreach (GenerationRequest request in requests)
        {
            alone.Add(Tokens(await Collect(generator, request)));
        }
        using var scheduler = new InferenceScheduler(model, new SchedulerOptions { MaxRunningSequences = 6, PrefillTokensPerStep = 7, PrefixCache = false });
        List<GenerationEvent>[] batched = await Task.WhenAll(requests.Select(r => Task.Run(() => Collect(scheduler, r))));
        for (int i = 0; i < requests.Length; i++)
        {
            Assert.Equal(alone[i], Tokens(batched[i]));
        }
        if (drafts > 0)
        {
            Assert.True(scheduler.Stats.MtpProposed[0] > 0, "no drafts were proposed");
        }
    }

    [Fact]
    public async Task ACancelledStreamFreesItsSequenceAndKv()
    {
        using var model = MimoModel.Load(TestModels.Tiny());
        using var scheduler = new InferenceScheduler(model, new SchedulerOptions { MaxRunningSequences = 2, PrefixCache = false });
        using var cts = new CancellationTokenSource();
        var events = new List<GenerationEvent>();
        await foreach (GenerationEvent e in scheduler.GenerateAsync(new GenerationRequest { PromptIds = Prompt(20, model.VocabSize, 1), MaxTokens = 4000 }, cts.Token))
        {
            events.Add(e);
            if (events.Count == 3)
            {
                Assert.Equal(1, scheduler.Stats.RunningSequences);
                Assert.True(scheduler.Stats.KvBytesInUse > 0);
                cts.Cancel();
            }
        }
        Assert.Equal(FinishReason.Cancelled, events[^1].Finish);
        // The tokens already queued when the reader cancelled are not delivered: 3, then the final event.
        Assert.True(events.Count == 4, $"{events.Count} events after cancelling at 3");
        SchedulerStats stats = scheduler.Stats;
        Assert.Equal(0, stats.RunningSequences);
        Assert.Equal(0, stats.KvBytesInUse);
        Assert.Equal(0, stats.KvBytesReserved);
        Assert.Equal(1, stats.RequestsCancelled);

        // A reader that walks away without cancelling frees the sequence too.
        await foreach (GenerationEvent e in scheduler.GenerateAsync(new GenerationRequest { PromptIds = Prompt(5, model.VocabSize, 2), MaxTokens = 4000 }))
        {
            break;
        }
        for (int i = 0; i < 200 && scheduler.Stats.RunningSequences > 0; i++)
        {
            await Task.Delay(10);
        }
        Assert.Equal(0, scheduler.Stats.RunningSequences);
        Assert.Equal(0, scheduler.Stats.KvBytesReserved);
    }

    [Fact]
    public async Task OverloadIsRefusedWithTheLimitNamedNeverAnOutOfMemory()
    {
        using var model = MimoModel.Load(TestModels.Tiny());
        using var scheduler = new InferenceScheduler(model, new SchedulerOptions { MaxRunningSequences = 1, MaxQueuedRequests = 1, PrefixCache = false });
        using var cts = new CancellationTokenSource();
        var request = new GenerationRequest { PromptIds = Prompt(8, model.VocabSize, 1), MaxTokens = 3000 };
        IAsyncEnumerator<GenerationEvent> running = scheduler.GenerateAsync(request, cts.Token).GetAsyncEnumerator();
        Assert.True(await running.MoveNextAsync());
        IAsyncEnumerator<GenerationEvent> queued = scheduler.GenerateAsync(request, cts.Token).GetAsyncEnumerator();
        Task<bool> queuedFirst = queued.MoveNextAsync().AsTask();
        for (int i = 0; i < 200 && scheduler.Stats.QueueDepth == 0; i++)
        {
            await Task.Delay(5);
        }
        Assert.Equal(1, scheduler.Stats.QueueDepth);
        var full = await Assert.ThrowsAsync<EngineOverloadedException>(() => Collect(scheduler, request));
        Assert.Contains("--parallel", full.Message);
        Assert.Contains("queued", full.Message);
        cts.Cancel();
        Assert.True(await queuedFirst); // the queued request ends as cancelled
        await running.DisposeAsync();
        await queued.DisposeAsync();

        // A request that could never fit the KV budget: not "retry later" but "too large", with the room there is.
        using var small = new InferenceScheduler(model, new SchedulerOptions { KvBudgetBytes = 1 << 20, PrefixCache = false });
        var huge = new GenerationRequest { PromptIds = Prompt(100, model.VocabSize, 2), MaxTokens = 3900 };
        var kv = await Assert.ThrowsAsync<RequestTooLargeException>(() => Collect(small, huge));
        Assert.Contains("KV budget of 1048576 bytes", kv.Message);
        Assert.Contains($"room for {small.MaxPositions} positions", kv.Message);
        Assert.Equal(1, small.Stats.RequestsRejected);
        // MaxPositions is the largest count that fits: one more does not.
        Assert.InRange(small.MaxPositions, 1, 4095);
        Assert.True(SequenceKvCache.BytesFor(model.Derived, model.MtpHeads, small.Options.CacheReserve, small.MaxPositions) <= 1 << 20);
        Assert.True(SequenceKvCache.BytesFor(model.Derived, model.MtpHeads, small.Options.CacheReserve, small.MaxPositions + 1) > 1 << 20);
        int exact = small.MaxPositions - 100 - 1; // no drafts: prompt + max_tokens + 1 positions
        await using (IAsyncEnumerator<GenerationEvent> fits = small.GenerateAsync(huge with { MaxTokens = exact }).GetAsyncEnumerator())
        {
            Assert.True(await fits.MoveNextAsync()); // admitted (then left: the sequence is freed)
        }
        await Assert.ThrowsAsync<RequestTooLargeException>(() => Collect(small, huge with { MaxTokens = exact + 1 }));

        // Beyond the context: an argument error with both numbers, as the Generator gives.
        var tooLong = await Assert.ThrowsAsync<ArgumentException>(() => Collect(small, request with { MaxTokens = 4095 }));
        Assert.Contains("8 tokens plus max_tokens 4095", tooLong.Message);
    }

    [Fact]
    public async Task TheKvBudgetQueuesWhatDoesNotFitYetAndRunsItLater()
    {
        using var model = MimoModel.Load(TestModels.Tiny());
        var request = new GenerationRequest { PromptIds = Prompt(8, model.VocabSize, 1), MaxTokens = 300 };
        long one = Models.Caching.SequenceKvCache.BytesFor(model.Derived, model.MtpHeads, 64, 8 + 300 + 1);
        using var scheduler = new InferenceScheduler(model, new SchedulerOptions { MaxRunningSequences = 4, KvBudgetBytes = one * 3 / 2, PrefixCache = false });
        List<GenerationEvent>[] results = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => Task.Run(() => Collect(scheduler, request with { MaxTokens = 30 }))));
        Assert.All(results, r => Assert.Equal(FinishReason.Length, r[^1].Finish));
        // With max_tokens 300 only one fits at a time; both still finish, one after the other.
        List<GenerationEvent>[] serial = await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => Task.Run(() => Collect(scheduler, request))));
        Assert.All(serial, r => Assert.Equal(300, r[^1].Usage!.CompletionTokens));
        Assert.Equal(0, scheduler.Stats.KvBytesReserved);
    }
}
