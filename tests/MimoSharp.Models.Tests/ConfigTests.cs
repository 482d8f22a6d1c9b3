using System.Text.Json.Nodes;
using MimoSharp.Models.Configuration;
using MimoSharp.Models.Creation;

namespace MimoSharp.Models.Tests;

public sealed class ConfigTests
{
    private static string FixtureConfig => File.ReadAllText(Path.Combine(TestPaths.TinyRandomModel, "config.json"));

    private static ModelConfigException Invalid(Action<JsonObject> edit)
    {
        var json = JsonNode.Parse(FixtureConfig)!.AsObject();
        edit(json);
        return Assert.Throws<ModelConfigException>(() => MimoConfig.Parse(json.ToJsonString(), "test/config.json"));
    }

    [Fact]
    public void FixtureConfigBindsEveryKey()
    {
        MimoConfig c = MimoConfig.Parse(FixtureConfig);
        Assert.Equal(7, c.NumHiddenLayers);
        Assert.Equal([0, 1, 1, 1, 1, 0, 1], c.HybridLayerPattern);
        Assert.Equal(48, c.SwaHeadDim);
        Assert.Equal(32, c.SwaVHeadDim);
        Assert.Equal(0.707, c.AttentionValueScale);
        Assert.Null(c.RoutedScalingFactor);
        Assert.Equal(1f, c.Derived.RoutedScalingFactor);
        Assert.Equal(16, c.Derived.Global.RotaryDims);
        Assert.Equal(8, c.Derived.Sliding.WindowKeys);
        Assert.Equal(0, c.Derived.Global.WindowKeys);
        Assert.True(c.Derived.Sliding.HasSinkBias);
        Assert.False(c.Derived.Global.HasSinkBias);
        Assert.Equal((32, 32), c.Derived.Fp8BlockSize);
        Assert.Equal(4, c.Derived.Sliding.KeyValueHeads);
        Assert.Equal(2, c.Derived.Global.KeyValueHeads);
        Assert.Null(c.ExtraKeys); // every key of the real config is bound
    }

    [Fact]
    public void SGLangConventionAddsOneKey()
    {
        MimoConfig c = MimoConfig.Parse(FixtureConfig);
        Assert.Equal(9, c.Derived.WithWindowConvention(SlidingWindowConvention.SGLang).Sliding.WindowKeys);
    }

    [Fact]
    public void PatternOfWrongLengthIsRejected()
    {
        var ex = Invalid(j => j["hybrid_layer_pattern"] = new JsonArray(0, 1, 1));
        Assert.Contains("test/config.json", ex.Message);
        Assert.Contains("\"hybrid_layer_pattern\" has 3 entries but \"num_hidden_layers\" is 7", ex.Message);
    }

    [Fact]
    public void PatternValueOutOfRangeIsRejected() =>
        Assert.Contains("\"hybrid_layer_pattern\"[2] is 2", Invalid(j => j["hybrid_layer_pattern"]![2] = 2).Message);

    [Fact]
    public void UnknownScoringFuncIsRejected() =>
        Assert.Contains("\"scoring_func\" is \"softmax\"", Invalid(j => j["scoring_func"] = "softmax").Message);

    [Fact]
    public void UnknownTopkMethodIsRejected() =>
        Assert.Contains("\"topk_method\" is \"group_limited_greedy\"", Invalid(j => j["topk_method"] = "group_limited_greedy").Message);

    [Fact]
    public void HeadCountsThatDoNotDivideAreRejected()
    {
        Assert.Contains("not a multiple of \"num_key_value_heads\" (3)", Invalid(j => j["num_key_value_heads"] = 3).Message);
        Assert.Contains("not a multiple of \"swa_num_key_value_heads\" (3)", Invalid(j => j["swa_num_key_value_heads"] = 3).Message);
    }

    [Fact]
    public void RopeScalingIsRejected() =>
        Assert.Contains("rope_scaling", Invalid(j => j["rope_scaling"] = new JsonObject { ["type"] = "yarn" }).Message);

    [Fact]
    public void BadBlockSizeIsRejected() =>
        Assert.Contains("weight_block_size", Invalid(j => j["quantization_config"]!["weight_block_size"] = new JsonArray(0, 32)).Message);

    [Fact]
    public void MalformedJsonNamesLine()
    {
        var ex = Assert.Throws<ModelConfigException>(() => MimoConfig.Parse("{\n \"vocab_size\": 12,\n \"hidden_size\": \"big\"\n}", "x.json"));
        Assert.Contains("x.json", ex.Message);
        Assert.Contains("hidden_size", ex.Message);
    }

    [Fact]
    public void FlashPresetSummaryMatchesThePublishedSize()
    {
        MimoConfig flash = ModelPresets.Get("flash");
        ModelSummary s = ModelSummary.From(flash, null, assumedMtpHeads: 3);
        Assert.Equal(9, s.GlobalLayers);
        Assert.Equal(39, s.SlidingLayers);
        Assert.InRange(s.TotalParameters, 305e9, 312e9);   // "309B total"
        Assert.InRange(s.ActiveParameters, 14.5e9, 16e9);  // "15B active"
        // Global: 9 layers x (4 kv heads x (192 + 128)) values per token.
        Assert.Equal(9 * 4 * (192 + 128), s.GlobalKvValuesPerToken);
        Assert.Equal((39 + 3) * 8 * (192 + 128), s.SlidingKvValuesPerToken);
    }

    [Fact]
    public void ConfigRoundTripsThroughJson()
    {
        MimoConfig flash = ModelPresets.Get("flash");
        MimoConfig again = MimoConfig.Parse(flash.ToJson());
        Assert.Equal(flash.HybridLayerPattern, again.HybridLayerPattern);
        Assert.Equal(flash.QuantizationConfig!.WeightBlockSize, again.QuantizationConfig!.WeightBlockSize);
        Assert.Equal(flash.RopeTheta, again.RopeTheta);
    }
}
