using MimoSharp.Models;
using MimoSharp.Runtime.Generation;
using MimoSharp.Runtime.Scheduling;
using MimoSharp.Runtime.Tests.Scheduling;

namespace MimoSharp.Runtime.Tests.Generation;

public sealed class LogprobsAndConstraintTests
{
    /// <summary>Allows only even ids and records what the engine committed.</summary>
    private sealed class EvenTokens : ITokenConstraint
    {
        public List<int> Accepted { get; } = [];
        public int Applied { get; private set; }

        public void Apply(Span<float> logits)
        {
            Applied++;
            for (int i = 1; i < logits.Length; i += 2)
            {
                logits[i] = float.NegativeInfinity;
            }
        }

        public void Accept(int token) => Accepted.Add(token);
    }

    public static IEnumerable<object[]> Engines() => [["generator"], ["scheduler"]];

    private static IGenerationEngine Engine(string name, MimoModel model) =>
        name == "generator" ? new Generator(model) : new InferenceScheduler(model, new SchedulerOptions { PrefixCache = false });

    [Theory]
    [MemberData(nameof(Engines))]
    public async Task LogprobsAreTheLogSoftmaxOfTheModelsLogits(string engineName)
    {
        using var model = MimoModel.Load(TestModels.Tiny());
        IGenerationEngine engine = Engine(engineName, model);
        int[] prompt = [3, 1, 4, 1, 5, 9, 2, 6];
        var request = new GenerationRequest { PromptIds = prompt, MaxTokens = 6, TopLogprobs = 4, DraftTokens = 3 };
        List<GenerationEvent> events = await InferenceSchedulerTests.Collect(engine, request);
        (engine as IDisposable)?.Dispose();

        // Reference: float64 log-softmax of a cold full forward's logits at each generated position.
        int[] generated = events.Where(e => !e.IsFinal).Select(e => e.Token).ToArray();
        int[] all = [.. prompt, .. generated];
        int v = model.VocabSize;
        var logits = new float[all.Length * v];
        model.Forward([new Models.SequenceInput(model.CreateCache(), all)], default, logits);
        for (int i = 0; i < generated.Length; i++)
        {
            float[] row = logits[((prompt.Length - 1 + i) * v)..((prompt.Length + i) * v)];
            double max = double.NegativeInfinity, sum = 0;
            foreach (float x in row)
            {
                max = Math.Max(max, x);
            }
            foreach (float x in row)
            {
                sum += Math.Exp(x - max);
            }
            double logZ = max + Math.Log(sum);
            TokenLogprob lp = events[i].Logprob!;
            Assert.Equal(generated[i], lp.Token);
            Assert.Equal(row[generated[i]] - logZ, lp.Logprob, 1e-3);
            Assert.Equal(4, lp.Top.Count);
            int[] expectedTop = Enumerable.Range(0, v).OrderByDescending(t => row[t]).Take(4).ToArray();
            Assert.Equal(expectedTop, lp.Top.Select(t => t.Token));
            Assert.Equal(generated[i], lp.Top[0].Token); // greedy takes the most likely
            for (int t = 0; t < 4; t++)
            {
                Assert.Equal(row[expectedTop[t]] - logZ, lp.Top[t].Logprob, 1e-3);
            }
        }
        Assert.Null(events[^1].Logprob);
    }

    [Theory]
    [MemberData(nameof(Engines))]
    public async Task WithoutTopLogprobsEventsCarryNone(string engineName)
    {
        using var model = MimoModel.Load(TestModels.Tiny());
        IGenerationEngine engine = Engine(engineName, model);
        List<GenerationEvent> events = await InferenceSchedulerTests.Collect(engine, new GenerationRequest { PromptIds = [1, 2, 3], MaxTokens = 3 });
        (engine as IDisposable)?.Dispose();
        Assert.All(events, e => Assert.Null(e.Logprob));
    }

    [Theory]
    [MemberData(nameof(Engines))]
    public async Task AConstraintMasksEveryChoiceAndSeesEveryCommittedToken(string engineName)
    {
        using var model = MimoModel.Load(TestModels.Tiny());
        IGenerationEngine engine = Engine(engineName, model);
        var constraint = new EvenTokens();
        // Drafts asked for: a constrained request decodes without them.
        var request = new GenerationRequest { PromptIds = [7, 7, 7, 1], MaxTokens = 15, DraftTokens = 3, Constraint = constraint, TopLogprobs = 0 };
        List<GenerationEvent> events = await InferenceSchedulerTests.Collect(engine, request);
        (engine as IDisposable)?.Dispose();
        int[] tokens = events.Where(e => !e.IsFinal).Select(e => e.Token).ToArray();
        Assert.Equal(15, tokens.Length);
        Assert.All(tokens, t => Assert.Equal(0, t % 2));
        Assert.Equal(tokens, constraint.Accepted);
        Assert.Equal(15, constraint.Applied);
        Assert.Equal(1.0, events[^1].Usage!.MeanAcceptanceLength);

        // The unconstrained greedy answer picks odd tokens somewhere (else the test proves nothing).
        IGenerationEngine free = new Generator(model);
        List<GenerationEvent> unconstrained = await InferenceSchedulerTests.Collect(free, request with { Constraint = null });
        Assert.Contains(unconstrained, e => !e.IsFinal && e.Token % 2 == 1);
    }

    [Fact]
    public async Task AConstraintThatAllowsNothingIsAClearError()
    {
        using var model = MimoModel.Load(TestModels.Tiny());
        var nothing = new NothingAllowed();
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            InferenceSchedulerTests.Collect(new Generator(model), new GenerationRequest { PromptIds = [1, 2], MaxTokens = 3, Constraint = nothing }));
        Assert.Contains("allows no token", error.Message);
    }

    private sealed class NothingAllowed : ITokenConstraint
    {
        public void Apply(Span<float> logits) => logits.Fill(float.NegativeInfinity);
        public void Accept(int token) => throw new InvalidOperationException("nothing was allowed");
    }
}
