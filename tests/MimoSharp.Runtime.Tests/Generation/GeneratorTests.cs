using MimoSharp.Models;
using MimoSharp.Runtime.Generation;
using MimoSharp.Runtime.Speculative;
using MimoSharp.Runtime.Tests.Speculative;

namespace MimoSharp.Runtime.Tests.Generation;

public sealed class GeneratorTests
{
    private static async Task<List<GenerationEvent>> Collect(Generator generator, GenerationRequest request, CancellationToken token = default)
    {
        var events = new List<GenerationEvent>();
        await foreach (GenerationEvent e in generator.GenerateAsync(request, token))
        {
            events.Add(e);
        }
        return events;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    public async Task StreamsTheGreedyTokensAndEndsAtMaxTokens(int drafts)
    {
        using var model = MimoModel.Load(TestModels.Tiny());
        int[] prompt = [1, 2, 3, 4, 5];
        var reference = new DecodingSession(model, GreedySampler.Instance, 0);
        var expected = new List<int> { reference.Prefill(prompt) };
        var buffer = new int[4];
        while (expected.Count < 12)
        {
            expected.Add(buffer[0..reference.Step(buffer)][0]);
        }

        List<GenerationEvent> events = await Collect(new Generator(model), new GenerationRequest { PromptIds = prompt, MaxTokens = 12, DraftTokens = drafts });
        Assert.Equal(expected, events.Where(e => !e.IsFinal).Select(e => e.Token));
        GenerationEvent last = events[^1];
        Assert.Equal(FinishReason.Length, last.Finish);
        Assert.Equal(5, last.Usage!.PromptTokens);
        Assert.Equal(12, last.Usage.CompletionTokens);
        Assert.True(last.Usage.DecodeTokensPerSecond > 0);
    }

    [Fact]
    public async Task StopsAtAStopId()
    {
        using var model = MimoModel.Load(TestModels.Tiny());
        List<GenerationEvent> free = await Collect(new Generator(model), new GenerationRequest { PromptIds = [7, 8, 9], MaxTokens = 10 });
        int stopAt = free[3].Token;
        List<GenerationEvent> events = await Collect(new Generator(model), new GenerationRequest { PromptIds = [7, 8, 9], MaxTokens = 10, StopTokenIds = new HashSet<int> { stopAt } });
        Assert.Equal(FinishReason.Stop, events[^1].Finish);
        Assert.Equal(stopAt, events[^2].Token);
        Assert.True(events.Count <= 5);
    }

    [Fact]
    public async Task CancellationEndsTheStream()
    {
        using var model = MimoModel.Load(TestModels.Tiny());
        using var cts = new CancellationTokenSource();
        var events = new List<GenerationEvent>();
        await foreach (GenerationEvent e in new Generator(model).GenerateAsync(new GenerationRequest { PromptIds = [1, 2], MaxTokens = 1000 }, cts.Token))
        {
            events.Add(e);
            if (events.Count == 3)
            {
                cts.Cancel();
            }
        }
        Assert.Equal(FinishReason.Cancelled, events[^1].Finish);
        Assert.True(events.Count < 10);
    }

    [Fact]
    public async Task FillsTheContextExactlyAndRefusesMore()
    {
        string dir = TestModels.Write("tiny-ctx24", c => c with { MaxPositionEmbeddings = 24, SlidingWindow = 8, SlidingWindowSize = 8 });
        using var model = MimoModel.Load(dir);
        List<GenerationEvent> events = await Collect(new Generator(model), new GenerationRequest { PromptIds = Enumerable.Range(1, 20).ToArray(), MaxTokens = 4, DraftTokens = 3 });
        Assert.Equal(FinishReason.Length, events[^1].Finish);
        Assert.Equal(4, events[^1].Usage!.CompletionTokens);
        var ex = await Assert.ThrowsAsync<ArgumentException>(async () => await Collect(new Generator(model), new GenerationRequest { PromptIds = Enumerable.Range(1, 20).ToArray(), MaxTokens = 5 }));
        Assert.Contains("exceeds the context of 24", ex.Message);
    }
}
