using System.Text.Json.Nodes;
using MimoSharp.Models.Configuration;

namespace MimoSharp.Cli.Tests.Fuzz;

/// <summary>Issue 11, class 1: no input may exhaust memory, threads, time or disk.</summary>
public sealed class ResourceFuzzTests
{
    /// <summary>A config-only directory whose config asks for an absurd size (the cases that ran `mimo inspect` out of memory).</summary>
    [Theory]
    [InlineData("num_hidden_layers", 1_000_000, "at most 1024")]
    [InlineData("n_routed_experts", 1_000_000_000, "at most 4096")]
    [InlineData("vocab_size", 2_000_000_000, "at most 4194304")]
    [InlineData("hidden_size", 1_000_000, "at most 65536")]
    [InlineData("max_position_embeddings", 2_000_000_000, "2..16777216")]
    public void AbsurdConfigSizesAreRefusedBeforeAnythingIsSized(string key, int value, string bound)
    {
        string dir = FuzzKit.NewDirectory("absurd");
        MimoConfig config = FuzzKit.BaseConfig;
        string json = config.ToJson();
        JsonObject o = JsonNode.Parse(json)!.AsObject();
        o[key] = value;
        if (key == "num_hidden_layers")
        {
            // Lists of full length, as a careless generator writes them.
            o["hybrid_layer_pattern"] = new JsonArray(Enumerable.Repeat(1, value).Select(v => (JsonNode)v).ToArray());
            o["moe_layer_freq"] = new JsonArray(Enumerable.Repeat(1, value).Select(v => (JsonNode)v).ToArray());
        }
        File.WriteAllText(Path.Combine(dir, "config.json"), o.ToJsonString());
        FuzzKit.AssertClearError(FuzzKit.Run("inspect", "--model", dir), "config.json", $"\"{key}\"", bound);
    }

    [Fact]
    public void ExpertsTimesLayersIsBoundedToo()
    {
        string dir = FuzzKit.NewDirectory("experts");
        JsonObject o = JsonNode.Parse(FuzzKit.BaseConfig.ToJson())!.AsObject();
        o["n_routed_experts"] = 4096;
        o["num_hidden_layers"] = 1024;
        o["hybrid_layer_pattern"] = new JsonArray(Enumerable.Repeat(1, 1024).Select(v => (JsonNode)v).ToArray());
        o["moe_layer_freq"] = new JsonArray(Enumerable.Repeat(1, 1024).Select(v => (JsonNode)v).ToArray());
        File.WriteAllText(Path.Combine(dir, "config.json"), o.ToJsonString());
        FuzzKit.AssertClearError(FuzzKit.Run("inspect", "--model", dir), "config.json", "\"n_routed_experts\"", "expert tensors", "at most 1048576");
    }

    [Fact]
    public void TheLargestAllowedConfigIsSizedInBoundedMemory()
    {
        // Every bound at once that still passes: inspect answers from the config alone, without a list of every tensor.
        string dir = FuzzKit.NewDirectory("largest");
        JsonObject o = JsonNode.Parse(FuzzKit.BaseConfig.ToJson())!.AsObject();
        o["n_routed_experts"] = 4096;
        o["num_hidden_layers"] = 80;
        o["hybrid_layer_pattern"] = new JsonArray(Enumerable.Repeat(1, 80).Select(v => (JsonNode)v).ToArray());
        o["moe_layer_freq"] = new JsonArray(Enumerable.Repeat(1, 80).Select(v => (JsonNode)v).ToArray());
        File.WriteAllText(Path.Combine(dir, "config.json"), o.ToJsonString());
        FuzzKit.Outcome outcome = FuzzKit.Run("inspect", "--model", dir, "--json");
        Assert.True(outcome.Code == 0, outcome.Err);
        long total = System.Text.Json.JsonDocument.Parse(outcome.Out).RootElement.GetProperty("total_parameters").GetInt64();
        // 80 layers x 4096 experts x 3 matrices of 32 x 64, plus the rest: the experts alone are 2.0e9.
        Assert.True(total > 80L * 4096 * 3 * 32 * 64, $"total {total}");
    }

    [Fact]
    public void AbsurdMtpLayersAreRefused()
    {
        string dir = FuzzKit.NewDirectory("mtp");
        File.WriteAllText(Path.Combine(dir, "config.json"), FuzzKit.BaseConfig.ToJson());
        FuzzKit.AssertClearError(FuzzKit.Run("inspect", "--model", dir, "--mtp-layers", "1000000000"), "--mtp-layers", "1000000000", "0..16");
        FuzzKit.AssertClearError(FuzzKit.Run("create-random", "--preset", "tiny", "--output", FuzzKit.NewDirectory("mtp-out"), "--mtp-layers", "1000000000"), "--mtp-layers", "0..16");
    }

    [Theory]
    [InlineData("2000000000")]
    [InlineData("1000")]
    [InlineData("0")]
    public void ThreadsAreBounded(string threads)
    {
        string model = FuzzKit.CopyOfModel("threads");
        foreach (string command in new[] { "generate", "bench", "chat" })
        {
            string[] args = command == "generate" ? ["generate", "--model", model, "--ids", "1", "--threads", threads]
                : [command, "--model", model, "--threads", threads];
            FuzzKit.AssertClearError(FuzzKit.Run(args), "--threads", threads, $"1..{Environment.ProcessorCount * 4}");
        }
    }

    [Theory]
    [InlineData("config.json")]
    [InlineData("model.safetensors")]
    [InlineData("tokenizer.json")]
    public void AFifoIsRefusedAndNeverBlocks(string file)
    {
        string model = FuzzKit.CopyOfModel("fifo");
        File.Delete(Path.Combine(model, file));
        if (!FuzzKit.MakeFifo(Path.Combine(model, file)))
        {
            return; // no FIFOs on this platform
        }
        FuzzKit.Outcome outcome = FuzzKit.Run("generate", "--model", model, "--prompt", "hi", "--max-tokens", "1");
        FuzzKit.AssertClearError(outcome, file, "not a regular file");
        if (file == "config.json")
        {
            FuzzKit.AssertClearError(FuzzKit.Run("inspect", "--model", model), file, "not a regular file");
        }
    }

    [Fact]
    public void ADeviceInPlaceOfConfigIsRefused()
    {
        if (!File.Exists("/dev/zero"))
        {
            return;
        }
        string model = FuzzKit.CopyOfModel("device");
        File.Delete(Path.Combine(model, "config.json"));
        File.CreateSymbolicLink(Path.Combine(model, "config.json"), "/dev/zero");
        FuzzKit.AssertClearError(FuzzKit.Run("inspect", "--model", model), "config.json", "not a regular file");
    }

    [Fact]
    public void AHeaderLengthBeyondTheFileIsRefused()
    {
        string model = FuzzKit.CopyOfModel("header-length");
        (string header, byte[] data) = FuzzKit.ReadSafetensors(FuzzKit.SafetensorsPath(model));
        FuzzKit.WriteSafetensors(FuzzKit.SafetensorsPath(model), System.Text.Encoding.UTF8.GetBytes(header), data, declaredLength: ulong.MaxValue - 3);
        FuzzKit.AssertClearError(FuzzKit.Run("check", "--model", model), "model.safetensors", "header length", "does not fit");
    }

    [Fact]
    public void ACheckpointLargerThanTheDiskIsRefusedBeforeWriting()
    {
        // /dev/shm is RAM-backed: no machine has the 292 GB of the flash preset there.
        if (!Directory.Exists("/dev/shm"))
        {
            return;
        }
        string target = Path.Combine("/dev/shm", $"mimosharp-flash-{Guid.NewGuid():N}");
        FuzzKit.Outcome outcome = FuzzKit.Run("create-random", "--preset", "flash", "--output", target);
        FuzzKit.AssertClearError(outcome, "--output", "needs 291.", "free", "nothing was written", "--config-only");
        Assert.False(Directory.Exists(target), "nothing, not even the directory, should be written");
    }

    [Fact]
    public void LargeWritesShowProgress()
    {
        // create-random prints it for writes of 1 GiB and more; a test cannot afford such a write, so the printer alone.
        var notes = new StringWriter();
        Action<long> progress = MimoSharp.Cli.Commands.CliParsing.ProgressPrinter(notes, 400L << 30, "writing");
        for (long written = 0; written <= 400L << 30; written += 1L << 30)
        {
            progress(written);
        }
        string[] lines = notes.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.InRange(lines.Length, 90, 101); // once per whole percent
        Assert.Equal("writing: 400.00 GiB of 400.00 GiB (100%)", lines[^1]);
    }
}
