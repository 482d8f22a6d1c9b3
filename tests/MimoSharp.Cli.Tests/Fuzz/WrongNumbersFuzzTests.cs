using System.Text.Json;
using System.Text.Json.Nodes;

namespace MimoSharp.Cli.Tests.Fuzz;

/// <summary>Issue 11, class 2: corrupt weights and config values are found, never turned silently into plausible output.</summary>
public sealed class WrongNumbersFuzzTests
{
    private const string DenseBf16 = "model.layers.0.self_attn.o_proj.weight";
    private const string ExpertFp8 = "model.layers.1.mlp.experts.3.gate_proj.weight";

    [Fact]
    public void CheckPassesTheCleanModel()
    {
        string model = FuzzKit.CopyOfModel("clean");
        FuzzKit.Outcome outcome = FuzzKit.Run("check", "--model", model, "--json");
        Assert.True(outcome.Code == 0, outcome.Err + outcome.Out);
        JsonElement root = JsonDocument.Parse(outcome.Out).RootElement;
        Assert.True(root.GetProperty("clean").GetBoolean());
        Assert.Equal(0, root.GetProperty("bad_tensors").GetInt32());
    }

    [Fact]
    public void CheckCountsNaNAndInfInABf16Weight()
    {
        string model = FuzzKit.CopyOfModel("bf16-nan");
        // Little-endian BF16: 0x7FC0 is NaN, 0x7F80 is +Inf. 3 NaN and 2 Inf.
        FuzzKit.EditTensorBytes(model, DenseBf16, i => i switch { 0 or 2 or 4 => 0xC0, 1 or 3 or 5 or 7 or 9 => 0x7F, 6 or 8 => 0x80, _ => 0 }, count: 10);
        FuzzKit.Outcome outcome = FuzzKit.Run("check", "--model", model, "--json");
        Assert.Equal(1, outcome.Code);
        JsonElement bad = JsonDocument.Parse(outcome.Out).RootElement.GetProperty("report").EnumerateArray().Single();
        Assert.Equal(DenseBf16, bad.GetProperty("name").GetString());
        Assert.Equal(3, bad.GetProperty("nan").GetInt64());
        Assert.Equal(2, bad.GetProperty("inf").GetInt64());

        FuzzKit.Outcome text = FuzzKit.Run("check", "--model", model);
        Assert.Contains($"BAD {DenseBf16} (BF16 [64, 128], model.safetensors): 3 NaN, 2 Inf", text.Out);
    }

    [Fact]
    public void CheckCountsE4M3NaNCodesInAnExpert()
    {
        string model = FuzzKit.CopyOfModel("fp8-nan");
        FuzzKit.EditTensorBytes(model, ExpertFp8, i => i % 2 == 0 ? (byte)0x7F : (byte)0xFF, count: 5);
        FuzzKit.Outcome outcome = FuzzKit.Run("check", "--model", model, "--json");
        Assert.Equal(1, outcome.Code);
        JsonElement bad = JsonDocument.Parse(outcome.Out).RootElement.GetProperty("report").EnumerateArray().Single();
        Assert.Equal(ExpertFp8, bad.GetProperty("name").GetString());
        Assert.Equal(5, bad.GetProperty("nan_codes").GetInt64());

        // The load option refuses it before any token, naming the tensor and what it holds.
        FuzzKit.AssertClearError(FuzzKit.Run("generate", "--model", model, "--ids", "1,2", "--check-tensors"),
            "model.safetensors", ExpertFp8, "5 E4M3 NaN codes", "expected finite weights");
    }

    [Fact]
    public void CheckFindsBadScales()
    {
        string model = FuzzKit.CopyOfModel("scale");
        // F32 -1.0 (0xBF800000) as the first block scale of the expert.
        FuzzKit.EditTensorBytes(model, ExpertFp8 + "_scale_inv", i => new byte[] { 0x00, 0x00, 0x80, 0xBF }[i], count: 4);
        FuzzKit.Outcome outcome = FuzzKit.Run("check", "--model", model);
        Assert.Equal(1, outcome.Code);
        Assert.Contains($"BAD {ExpertFp8}_scale_inv", outcome.Out);
        Assert.Contains("1 bad scales", outcome.Out);
    }

    [Fact]
    public void NaNWeightsStopTheForwardNamingTheLayerAndSublayer()
    {
        string model = FuzzKit.CopyOfModel("runtime-nan");
        FuzzKit.EditTensorBytes(model, DenseBf16, i => i % 2 == 0 ? (byte)0xC0 : (byte)0x7F);
        string dir = FuzzKit.NewDirectory("logits-out");
        string main = Path.Combine(dir, "main.npy");
        // Before: logits wrote arrays of NaN and exited 0; generate said "no token is left to sample".
        FuzzKit.AssertClearError(FuzzKit.Run("logits", "--model", model, "--ids", "1,2,3", "--output", main),
            "NaN first appears in the attention output of layer 0", "model.layers.0.self_attn", "mimo check");
        Assert.False(File.Exists(main), "no logits file is written from a failed forward");
        FuzzKit.AssertClearError(FuzzKit.Run("generate", "--model", model, "--ids", "1,2,3", "--max-tokens", "2"),
            "layer 0", "model.layers.0.self_attn");
    }

    [Fact]
    public void InfInTheEmbeddingIsNamedAsTheEmbedding()
    {
        string model = FuzzKit.CopyOfModel("embed-inf");
        // Row 5 of the [512, 64] BF16 embedding: +Inf (0x7F80) in its first value.
        string path = FuzzKit.SafetensorsPath(model);
        (string header, byte[] data) = FuzzKit.ReadSafetensors(path);
        int begin = (int)JsonNode.Parse(header)!["model.embed_tokens.weight"]!["data_offsets"]![0]!.GetValue<long>();
        data[begin + 5 * 64 * 2] = 0x80;
        data[begin + 5 * 64 * 2 + 1] = 0x7F;
        FuzzKit.WriteSafetensors(path, System.Text.Encoding.UTF8.GetBytes(header), data);
        FuzzKit.AssertClearError(FuzzKit.Run("generate", "--model", model, "--ids", "1,5", "--max-tokens", "1"),
            "first appears in the token embedding", "model.embed_tokens.weight", "row 1 column 0");
        // Other tokens never read the row: they run.
        Assert.Equal(0, FuzzKit.Run("generate", "--model", model, "--ids", "1,2", "--max-tokens", "1").Code);
    }

    [Theory]
    [InlineData("max_position_embeddings", "0", "2..16777216")]
    [InlineData("eos_token_id", "-1", "a token id in [0, 512)")]
    [InlineData("eos_token_id", "[1, 600]", "a token id in [0, 512)")]
    [InlineData("eos_token_id", "\"x\"", "a token id in [0, 512)")]
    [InlineData("bos_token_id", "1.5", "a token id in [0, 512)")]
    [InlineData("attention_value_scale", "-0.707", "a finite positive number")]
    [InlineData("routed_scaling_factor", "0", "a finite positive number")]
    [InlineData("layernorm_epsilon", "-1e-5", "a finite positive number")]
    public void ConfigValuesOnceAcceptedAreRefused(string key, string value, string expected)
    {
        string model = FuzzKit.CopyOfModel("config-value");
        FuzzKit.EditConfig(model, o => o[key] = JsonNode.Parse(value));
        FuzzKit.AssertClearError(FuzzKit.Run("generate", "--model", model, "--ids", "1", "--max-tokens", "1"), "config.json", $"\"{key}\"", expected);
    }

    [Fact]
    public void ATokenizerWithIdsBeyondTheVocabularyIsRefused()
    {
        string model = FuzzKit.CopyOfModel("tokenizer-ids");
        string path = Path.Combine(model, "tokenizer.json");
        JsonObject tokenizer = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        tokenizer["added_tokens"]!.AsArray().Add(new JsonObject { ["id"] = 4000, ["content"] = "<|beyond|>", ["special"] = true });
        File.WriteAllText(path, tokenizer.ToJsonString());
        FuzzKit.AssertClearError(FuzzKit.Run("generate", "--model", model, "--prompt", "hi", "--max-tokens", "1"),
            "tokenizer.json", "4000", "\"vocab_size\" 512", "expected ids below 512");
    }

    [Fact]
    public void AShapeWhoseByteCountOverflowsIsRefused()
    {
        string model = FuzzKit.CopyOfModel("shape-overflow");
        // 2^62 x 4 elements of F32 is 2^66 bytes: wrapped, it was 0 and matched data_offsets [x, x].
        FuzzKit.EditHeader(model, h => h["extra"] = new JsonObject
        {
            ["dtype"] = "F32", ["shape"] = new JsonArray(1L << 62, 4), ["data_offsets"] = new JsonArray(0, 0),
        });
        FuzzKit.AssertClearError(FuzzKit.Run("check", "--model", model), "model.safetensors", "tensor \"extra\"", "needs more than", "the shape is corrupt");
    }
}
