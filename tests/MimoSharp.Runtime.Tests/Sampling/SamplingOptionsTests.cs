using MimoSharp.Runtime.Sampling;

namespace MimoSharp.Runtime.Tests.Sampling;

/// <summary>Validation of options and sampler arguments, and the named presets.</summary>
public sealed class SamplingOptionsTests
{
    public static TheoryData<SamplingOptions, string, string> InvalidOptions => new()
    {
        { new SamplingOptions { Temperature = -0.1f }, nameof(SamplingOptions.Temperature), "temperature must be >= 0" },
        { new SamplingOptions { Temperature = float.NaN }, nameof(SamplingOptions.Temperature), "temperature must be >= 0" },
        { new SamplingOptions { Temperature = float.PositiveInfinity }, nameof(SamplingOptions.Temperature), "temperature must be >= 0" },
        { new SamplingOptions { TopK = -1 }, nameof(SamplingOptions.TopK), "top_k must be >= 0" },
        { new SamplingOptions { TopP = 0f }, nameof(SamplingOptions.TopP), "top_p must be in (0, 1]" },
        { new SamplingOptions { TopP = 1.5f }, nameof(SamplingOptions.TopP), "top_p must be in (0, 1]" },
        { new SamplingOptions { TopP = float.NaN }, nameof(SamplingOptions.TopP), "top_p must be in (0, 1]" },
        { new SamplingOptions { MinP = -0.1f }, nameof(SamplingOptions.MinP), "min_p must be in [0, 1]" },
        { new SamplingOptions { MinP = 2f }, nameof(SamplingOptions.MinP), "min_p must be in [0, 1]" },
        { new SamplingOptions { RepetitionPenalty = 0f }, nameof(SamplingOptions.RepetitionPenalty), "repetition_penalty must be > 0" },
        { new SamplingOptions { PresencePenalty = 2.5f }, nameof(SamplingOptions.PresencePenalty), "presence_penalty must be in [-2, 2]" },
        { new SamplingOptions { FrequencyPenalty = -3f }, nameof(SamplingOptions.FrequencyPenalty), "frequency_penalty must be in [-2, 2]" },
        { new SamplingOptions { MaxTokens = -1 }, nameof(SamplingOptions.MaxTokens), "max_tokens must be >= 0" },
        { new SamplingOptions { LogitBias = new Dictionary<int, float> { [3] = float.NaN } }, nameof(SamplingOptions.LogitBias), "logit_bias for token 3" },
    };

    [Theory]
    [MemberData(nameof(InvalidOptions))]
    public void InvalidOptionsNameTheOptionAndItsRange(SamplingOptions options, string parameter, string message)
    {
        var ex = Assert.Throws<ArgumentException>(() => options.Validate());
        Assert.Equal(parameter, ex.ParamName);
        Assert.StartsWith(message, ex.Message);
        // The sampler validates on construction, with the same error.
        Assert.Equal(ex.Message, Assert.Throws<ArgumentException>(() => new Sampler(options, 10)).Message);
    }

    [Fact]
    public void BoundaryValuesAreValid()
    {
        new SamplingOptions { Temperature = 0, TopK = 0, TopP = 1, MinP = 1, PresencePenalty = -2, FrequencyPenalty = 2, MaxTokens = 0 }.Validate(10);
        new SamplingOptions { MinP = 0, PresencePenalty = 2, FrequencyPenalty = -2, LogitBias = new Dictionary<int, float> { [9] = float.NegativeInfinity } }.Validate(10);
    }

    [Fact]
    public void LogitBiasOutsideTheValidVocabularyIsRejected()
    {
        var bias = new SamplingOptions { LogitBias = new Dictionary<int, float> { [10] = 1 } };
        var ex = Assert.Throws<ArgumentException>(() => new Sampler(bias, 10));
        Assert.Contains("token 10", ex.Message);
        // A padding row is no valid target either.
        Assert.Throws<ArgumentException>(() => new Sampler(bias, 12, validVocabSize: 10));
        Assert.Throws<ArgumentException>(() => new Sampler(new SamplingOptions { LogitBias = new Dictionary<int, float> { [-1] = 1 } }, 10));
    }

    [Fact]
    public void LogitBiasIsCopiedSoTheOptionsStayImmutable()
    {
        var bias = new Dictionary<int, float> { [1] = 2f };
        var options = new SamplingOptions { LogitBias = bias };
        bias[1] = -5f;
        bias[2] = 1f;
        Assert.Equal(2f, options.LogitBias![1]);
        Assert.False(options.LogitBias.ContainsKey(2));
    }

    [Fact]
    public void SamplerArgumentsAreChecked()
    {
        var options = new SamplingOptions { RepetitionPenalty = 2f };
        Assert.Throws<ArgumentOutOfRangeException>(() => new Sampler(options, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Sampler(options, 4, promptLength: -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Sampler(options, 4, validVocabSize: 0));
        // A tokenizer knowing more ids than the model has logits for is capped, not an error.
        Assert.Equal(4, new Sampler(options, 4, validVocabSize: 6).ValidVocabSize);

        var sampler = new Sampler(options with { Seed = 1 }, 4);
        Assert.Throws<ArgumentException>(() => sampler.Sample([1, 2, 3], []));
        Assert.Throws<ArgumentException>(() => sampler.ComputeProbabilities([1, 2, 3, 4], [], new float[3]));
        Assert.Throws<ArgumentException>(() => sampler.SampleFrom([1, 2, 3]));
    }

    [Fact]
    public void AHistoryTokenOutsideTheVocabularyIsRejectedWithoutCorruptingLaterCalls()
    {
        var sampler = new Sampler(new SamplingOptions { RepetitionPenalty = 2f, FrequencyPenalty = 1f, Seed = 1 }, 3);
        float[] logits = [2, 2, 2];
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => sampler.Sample(logits, [0, 1, 7]));
        Assert.Contains("token 7", ex.Message);
        // Had the failed call left its counts behind, token 0 would now be penalised as if seen twice.
        var afterFailure = new float[3];
        sampler.ComputeProbabilities(logits, [0], afterFailure);
        var fresh = new float[3];
        new Sampler(sampler.Options, 3).ComputeProbabilities(logits, [0], fresh);
        Assert.Equal(fresh, afterFailure);
        Assert.True(afterFailure[0] < afterFailure[1]);
    }

    [Fact]
    public void PresetsHoldTheRecommendedSettings()
    {
        Assert.Equal((0.5f, 0.85f, 1024, 1.1f), Settings("summary"));
        Assert.Equal((0.6f, 0.9f, 2048, 1.2f), Settings("code"));
        Assert.Equal((0.4f, 0.8f, 512, 1.05f), Settings("math"));
        Assert.Equal((0.7f, 0.9f, 512, 1.1f), Settings("chat"));
        Assert.Equal((0.8f, 0.95f), (Settings("general").Temperature, Settings("general").TopP));
        Assert.Equal((0.3f, 0.95f), (Settings("agentic").Temperature, Settings("agentic").TopP));
        Assert.True(SamplingPresets.Get("greedy").IsGreedy);
        Assert.Same(SamplingPresets.Get("code"), SamplingPresets.Get("Code"));

        static (float Temperature, float TopP, int MaxTokens, float RepetitionPenalty) Settings(string name)
        {
            SamplingOptions o = SamplingPresets.Get(name);
            return (o.Temperature, o.TopP, o.MaxTokens, o.RepetitionPenalty);
        }
    }

    [Fact]
    public void EveryPresetIsValid()
    {
        Assert.Equal(["summary", "code", "math", "chat", "general", "agentic", "greedy"], SamplingPresets.Names);
        foreach (string name in SamplingPresets.Names)
        {
            SamplingPresets.Get(name).Validate(100);
        }
    }

    [Fact]
    public void AnUnknownPresetListsTheValidNames()
    {
        var ex = Assert.Throws<ArgumentException>(() => SamplingPresets.Get("poetry"));
        Assert.Contains("\"poetry\"", ex.Message);
        foreach (string name in SamplingPresets.Names)
        {
            Assert.Contains(name, ex.Message);
        }
    }
}
