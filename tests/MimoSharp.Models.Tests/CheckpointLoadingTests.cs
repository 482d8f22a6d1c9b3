using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using MimoSharp.Models.Configuration;
using MimoSharp.Models.Creation;
using MimoSharp.Models.Loading;

namespace MimoSharp.Models.Tests;

/// <summary>Sharded and single-file checkpoints, and every way a checkpoint can be broken.</summary>
public sealed class CheckpointLoadingTests
{
    private static string Single() => RandomModels.Write("tiny-single", RandomModels.TinyConfig(), new RandomModelOptions { Seed = 5 });

    private static string Sharded() => RandomModels.Write("tiny-sharded", RandomModels.TinyConfig(), new RandomModelOptions { Seed = 5, MaxShardBytes = 64 * 1024 });

    /// <summary>A copy of a model directory to break.</summary>
    private static string Copy(string source)
    {
        string dir = RandomModels.TempDir("broken");
        foreach (string file in Directory.GetFiles(source))
        {
            File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
        }
        return dir;
    }

    private static Exception LoadError(string dir) => Assert.ThrowsAny<Exception>(() => MimoModel.Load(dir).Dispose());

    [Fact]
    public void ShardedAndSingleFileLoadTheSame()
    {
        Assert.True(Directory.GetFiles(Sharded(), "*.safetensors").Length > 3);
        using var single = MimoModel.Load(Single());
        using var sharded = MimoModel.Load(Sharded());
        int[] ids = [5, 17, 300, 2, 99, 0, 511, 42];
        var a = new float[ids.Length * single.VocabSize];
        var b = new float[ids.Length * sharded.VocabSize];
        single.Forward([new SequenceInput(single.CreateCache(), ids)], default, a);
        sharded.Forward([new SequenceInput(sharded.CreateCache(), ids)], default, b);
        Assert.Equal(a, b);
        Assert.Equal(3, sharded.MtpHeads);
    }

    [Fact]
    public void MissingTensorIsNamed()
    {
        string dir = Copy(Sharded());
        string index = Path.Combine(dir, Checkpoint.IndexFileName);
        var json = JsonNode.Parse(File.ReadAllText(index))!;
        string victim = "model.layers.2.self_attn.k_proj.weight";
        string file = json["weight_map"]![victim]!.GetValue<string>();
        json["weight_map"]!.AsObject().Remove(victim);
        File.WriteAllText(index, json.ToJsonString());
        // The shard still holds it, unlisted: that is reported first.
        Exception ex = LoadError(dir);
        Assert.Contains(victim, ex.Message);
        Assert.Contains(file, ex.Message);
    }

    [Fact]
    public void IndexPointingToAMissingFileIsNamed()
    {
        string dir = Copy(Sharded());
        string[] shards = Directory.GetFiles(dir, "*.safetensors");
        File.Delete(shards[^1]);
        Exception ex = LoadError(dir);
        Assert.IsType<CheckpointException>(ex);
        Assert.Contains(Path.GetFileName(shards[^1]), ex.Message);
        Assert.Contains("not a file", ex.Message);
    }

    [Fact]
    public void TruncatedFileIsReported()
    {
        string dir = Copy(Single());
        string path = Path.Combine(dir, Checkpoint.SingleFileName);
        using (var stream = new FileStream(path, FileMode.Open))
        {
            stream.SetLength(stream.Length - 100);
        }
        Exception ex = LoadError(dir);
        Assert.IsType<CheckpointException>(ex);
        Assert.Contains("truncated", ex.Message);
        Assert.Contains(path, ex.Message);
    }

    [Fact]
    public void FileShorterThanItsHeaderLengthIsReported()
    {
        string dir = Copy(Single());
        string path = Path.Combine(dir, Checkpoint.SingleFileName);
        File.WriteAllBytes(path, [1, 2, 3]);
        Exception ex = LoadError(dir);
        Assert.Contains("too short", ex.Message);

        byte[] huge = new byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(huge, 1UL << 40);
        File.WriteAllBytes(path, huge);
        Assert.Contains("header length", LoadError(dir).Message);
    }

    [Fact]
    public void CorruptHeaderJsonIsReported()
    {
        string dir = Copy(Single());
        string path = Path.Combine(dir, Checkpoint.SingleFileName);
        byte[] bytes = File.ReadAllBytes(path);
        bytes[8] = (byte)'#';
        File.WriteAllBytes(path, bytes);
        Exception ex = LoadError(dir);
        Assert.Contains("not valid JSON", ex.Message);
    }

    /// <summary>Rewrites one entry of a single-file checkpoint's header (same length, space padded).</summary>
    /// <summary>A copy of <paramref name="source"/> (default: the tiny single-file model) whose safetensors header is edited in place.</summary>
    internal static string EditHeader(Func<string, string> edit, string? source = null)
    {
        string dir = Copy(source ?? Single());
        string path = Path.Combine(dir, Checkpoint.SingleFileName);
        byte[] bytes = File.ReadAllBytes(path);
        int length = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        string header = Encoding.UTF8.GetString(bytes, 8, length);
        string edited = edit(header);
        Assert.NotEqual(header, edited);
        Assert.True(edited.Length <= length, "edit must not grow the header");
        Encoding.UTF8.GetBytes(edited.PadRight(length)).CopyTo(bytes, 8);
        File.WriteAllBytes(path, bytes);
        return dir;
    }

    [Fact]
    public void WrongShapeNamesTensorAndExpectation()
    {
        // o_proj of layer 1 is [64, 128] (hidden 64, 4 heads x v 32): swap the dims.
        string dir = EditHeader(h => h.Replace("\"model.layers.1.self_attn.o_proj.weight\":{\"dtype\":\"BF16\",\"shape\":[64,128]",
            "\"model.layers.1.self_attn.o_proj.weight\":{\"dtype\":\"BF16\",\"shape\":[128,64]"));
        Exception ex = LoadError(dir);
        Assert.IsType<CheckpointException>(ex);
        Assert.Contains("model.layers.1.self_attn.o_proj.weight", ex.Message);
        Assert.Contains("[128, 64]", ex.Message);
        Assert.Contains("expected [64, 128]", ex.Message);
    }

    [Fact]
    public void UnknownDTypeIsNamed()
    {
        string dir = EditHeader(h => h.Replace("\"model.norm.weight\":{\"dtype\":\"BF16\"", "\"model.norm.weight\":{\"dtype\":\"Q4_K\""));
        Exception ex = LoadError(dir);
        Assert.Contains("model.norm.weight", ex.Message);
        Assert.Contains("Q4_K", ex.Message);
    }

    [Fact]
    public void WrongDTypeForAMatrixIsNamed()
    {
        // The sink bias is F32 [4]: claiming I32 keeps the byte count but is not a float tensor.
        string dir = EditHeader(h => h.Replace("\"model.layers.1.self_attn.attention_sink_bias\":{\"dtype\":\"F32\"",
            "\"model.layers.1.self_attn.attention_sink_bias\":{\"dtype\":\"I32\""));
        Exception ex = LoadError(dir);
        Assert.Contains("attention_sink_bias", ex.Message);
        Assert.Contains("I32", ex.Message);
    }

    [Fact]
    public void MissingScalesAreNamed()
    {
        string dir = EditHeader(h => h.Replace("\"model.layers.0.self_attn.q_proj.weight_scale_inv\"", "\"model.layers.0.self_attn.q_proj.weight_scale_xxx\""));
        Exception ex = LoadError(dir);
        Assert.Contains("model.layers.0.self_attn.q_proj.weight_scale_inv", ex.Message);
        Assert.Contains("F8_E4M3", ex.Message);
    }

    [Fact]
    public void ScaleGridThatCannotCoverTheWeightIsReported()
    {
        // q_proj is [192, 64] with 32x32 blocks: a [6, 2] grid. Claim [4, 3] (same byte count).
        string dir = EditHeader(h => h.Replace("\"model.layers.0.self_attn.q_proj.weight_scale_inv\":{\"dtype\":\"F32\",\"shape\":[6,2]",
            "\"model.layers.0.self_attn.q_proj.weight_scale_inv\":{\"dtype\":\"F32\",\"shape\":[4,3]"));
        Exception ex = LoadError(dir);
        Assert.Contains("weight_scale_inv", ex.Message);
        Assert.Contains("cannot cover", ex.Message);
    }

    [Fact]
    public void OverlappingTensorsAreReported()
    {
        string dir = EditHeader(h =>
        {
            var json = JsonNode.Parse(h)!.AsObject();
            var first = json["model.embed_tokens.weight"]!["data_offsets"]!.AsArray();
            var norm = json["model.norm.weight"]!.AsObject();
            long begin = first[0]!.GetValue<long>();
            norm["data_offsets"] = new JsonArray(begin, begin + 128);
            return json.ToJsonString();
        });
        Assert.Contains("overlap", LoadError(dir).Message);
    }

    [Fact]
    public void NoWeightsInDirectoryIsReported()
    {
        string dir = RandomModels.TempDir("empty");
        File.WriteAllText(Path.Combine(dir, "config.json"), RandomModels.TinyConfig().ToJson());
        Exception ex = LoadError(dir);
        Assert.Contains("no model.safetensors", ex.Message);
    }

    [Fact]
    public void MtpHeadsAreDiscoveredFromTensorNames()
    {
        string dir = RandomModels.Write("tiny-mtp1", RandomModels.TinyConfig(), new RandomModelOptions { MtpHeads = 1 });
        using var model = MimoModel.Load(dir);
        Assert.Equal(1, model.MtpHeads);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.ForwardMtp(1, [], default));
    }

    [Fact]
    public void ConfigThatDisagreesWithTheWeightsIsReported()
    {
        string dir = Copy(Single());
        MimoConfig wider = RandomModels.TinyConfig() with { IntermediateSize = 256 };
        File.WriteAllText(Path.Combine(dir, "config.json"), wider.ToJson());
        Exception ex = LoadError(dir);
        Assert.Contains("model.layers.0.mlp.gate_proj.weight", ex.Message);
        Assert.Contains("expected [256, 64]", ex.Message);
    }
}
