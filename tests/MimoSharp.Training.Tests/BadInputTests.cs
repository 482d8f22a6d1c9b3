using MimoSharp.Training;

namespace MimoSharp.Training.Tests;

/// <summary>Bad input gets a clear error naming what was wrong, where, and what was expected; never a crash or a silent result.</summary>
public sealed class BadInputTests
{
    private static TrainingException Fails(Action action) => Assert.Throws<TrainingException>(action);

    [Fact]
    public void AChatStageWithoutChatDataIsRefusedNamingTheFile()
    {
        string data = SmokeData.Create("nochat");
        try
        {
            var e = Fails(() => TrainingRun.Start(SmokeData.Config(10, extra: ", \"chat_fraction\": 0.25"), data, data + "-run", TextWriter.Null));
            Assert.Contains("chat-train.bin", e.Message);
            Assert.Contains("chat_fraction", e.Message);
            var bad = Assert.Throws<TrainingException>(() => SmokeData.Config(10, extra: ", \"chat_fraction\": 1.5"));
            Assert.Contains("\"chat_fraction\" must be in [0, 1]", bad.Message);
        }
        finally
        {
            SmokeData.Delete(data);
        }
    }

    [Fact]
    public void TheChatStageDrawsItsShareOfEachBatchFromChatDataOnceItStarts()
    {
        TrainingConfig config = SmokeData.Config(100, batch: 8, extra: ", \"chat_fraction\": 0.25, \"chat_start_fraction\": 0.6");
        Assert.Equal(0, config.ChatRowsAt(59));
        Assert.Equal(2, config.ChatRowsAt(60));
        Assert.Equal(2, config.ChatRowsAt(99));
        string data = SmokeData.Create("chat"), run = data + "-run";
        try
        {
            File.Copy(Path.Combine(data, "val.bin"), Path.Combine(data, "chat-train.bin"));
            TrainingConfig small = SmokeData.Config(6, batch: 4, seq: 16, extra: ", \"chat_fraction\": 0.5, \"chat_start_fraction\": 0.5");
            TrainingRun training = TrainingRun.Start(small, data, run, TextWriter.Null);
            training.Run();
            // Steps 3..5 each took 2 chat windows (the cursors count shuffled windows), checkpointed for an exact resume.
            var state = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(run, "checkpoint", "state.json")))!;
            Assert.Equal(3 * 2, (long)state["chat_cursor"]!);
            Assert.Equal(3 * 4 + 3 * 2, (long)state["data_cursor"]!);
        }
        finally
        {
            SmokeData.Delete(data, run);
        }
    }

    [Fact]
    public void MissingTrainBin()
    {
        string data = SmokeData.Create("missing");
        try
        {
            File.Delete(Path.Combine(data, "train.bin"));
            var e = Fails(() => TrainingRun.Start(SmokeData.Config(10), data, data + "-run", TextWriter.Null));
            Assert.Contains("train.bin", e.Message);
            Assert.Contains("not found", e.Message);
            Fails(() => TrainingRun.Start(SmokeData.Config(10), data + "-nowhere", data + "-run", TextWriter.Null));
        }
        finally
        {
            SmokeData.Delete(data);
        }
    }

    [Theory]
    [InlineData("magic")]
    [InlineData("version")]
    [InlineData("truncated")]
    [InlineData("short")]
    public void CorruptTokenFile(string damage)
    {
        string data = SmokeData.Create("corrupt");
        try
        {
            string path = Path.Combine(data, "val.bin");
            byte[] bytes = File.ReadAllBytes(path);
            bytes = damage switch
            {
                "magic" => [0x00, 0x11, .. bytes[2..]],
                "version" => [.. bytes[..4], 2, 0, 0, 0, .. bytes[8..]],
                "truncated" => bytes[..^10],
                _ => bytes[..100],
            };
            File.WriteAllBytes(path, bytes);
            var e = Fails(() => TrainingRun.Start(SmokeData.Config(10), data, data + "-run", TextWriter.Null));
            Assert.Contains("val.bin", e.Message);
            Assert.Contains(damage switch { "magic" => "magic", "version" => "version", "truncated" => "truncated or corrupt", _ => "header" }, e.Message);
        }
        finally
        {
            SmokeData.Delete(data);
        }
    }

    [Fact]
    public void TokenizerLargerThanModelVocabulary()
    {
        string data = SmokeData.Create("vocab");
        try
        {
            var e = Fails(() => TrainingRun.Start(SmokeData.Config(10, model: SmokeData.ModelJson(vocab: 260)), data, data + "-run", TextWriter.Null));
            Assert.Contains("tokenizer.json", e.Message);
            Assert.Contains("vocab_size is 260", e.Message);
        }
        finally
        {
            SmokeData.Delete(data);
        }
    }

    [Fact]
    public void TokenIdsBeyondVocabulary()
    {
        string data = SmokeData.Create("ids");
        try
        {
            File.Delete(Path.Combine(data, "tokenizer.json"));
            TokenDataset.Write(Path.Combine(data, "train.bin"), Enumerable.Range(0, 5000).Select(i => i % 300).ToArray());
            var e = Fails(() => TrainingRun.Start(SmokeData.Config(10), data, data + "-run", TextWriter.Null));
            Assert.Contains("train.bin", e.Message);
            Assert.Contains("token id 299", e.Message);
        }
        finally
        {
            SmokeData.Delete(data);
        }
    }

    [Fact]
    public void ActivationsThatDoNotFitAreRefusedBeforeStarting()
    {
        string data = SmokeData.Create("memory");
        try
        {
            var e = Fails(() => TrainingRun.Start(SmokeData.Config(10, batch: 512, seq: 4096, model: SmokeData.ModelJson(maxPositions: 8192)), data, data + "-run", TextWriter.Null));
            Assert.Contains("batch_size 512", e.Message);
            Assert.Contains("GiB", e.Message);
            Assert.False(Directory.Exists(data + "-run"));
        }
        finally
        {
            SmokeData.Delete(data);
        }
    }

    [Fact]
    public void OptimizerStateThatDoesNotFitIsRefused()
    {
        string data = SmokeData.Create("optimizer");
        try
        {
            // A dense width that makes parameters + gradients + AdamW moments (16 bytes a parameter) about 1.2x this
            // machine's memory (two dense MLPs: layer 0 and one MTP head), capped below the flat buffer's 2^31 limit.
            long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
            long width = Math.Min((long)(available * 1.2 / 16 / (2 * 3 * 64)), int.MaxValue / (2 * 3 * 64) + 1000);
            var e = Fails(() => TrainingRun.Start(SmokeData.Config(10, batch: 1, seq: 8, heads: 1, model: SmokeData.ModelJson(intermediate: width)), data, data + "-run", TextWriter.Null));
            Assert.Contains("parameters", e.Message);
        }
        finally
        {
            SmokeData.Delete(data);
        }
    }

    [Fact]
    public void NanLossNamesTheStepAndTheTensor()
    {
        string data = SmokeData.Create("nan"), run = data + "-run";
        try
        {
            TrainingRun training = TrainingRun.Start(SmokeData.Config(10, batch: 2, seq: 32), data, run, TextWriter.Null);
            training.Run(stopAfter: 3);
            ParameterTensor q = training.Model.Layout["model.layers.1.self_attn.q_proj.weight"];
            training.Model.Parameters[q.Offset + 5] = float.NaN;
            var e = Fails(() => training.Run());
            Assert.Contains("step 3", e.Message);
            Assert.Contains("model.layers.1.self_attn.q_proj.weight", e.Message);
        }
        finally
        {
            SmokeData.Delete(data, run);
        }
    }

    [Fact]
    public void DivergenceIsReportedWithItsStep()
    {
        string data = SmokeData.Create("diverge"), run = data + "-run";
        try
        {
            TrainingRun training = TrainingRun.Start(SmokeData.Config(50, batch: 2, seq: 32, lr: 1e8f, warmup: 0), data, run, TextWriter.Null);
            var e = Fails(() => training.Run());
            Assert.Matches(@"^step \d+: the (loss|gradient norm) is", e.Message);
            Assert.Contains("non-finite", e.Message);
        }
        finally
        {
            SmokeData.Delete(data, run);
        }
    }

    [Fact]
    public void UnknownConfigKeyAndMissingCheckpoint()
    {
        var e = Fails(() => TrainingConfig.Parse("""{"model": {}, "learning_rte": 1}""", "t.json"));
        Assert.Contains("learning_rte", e.Message);
        var r = Fails(() => TrainingRun.Resume(Path.GetTempPath() + "no-such-run", null, null, null, TextWriter.Null));
        Assert.Contains("no checkpoint to resume", r.Message);
    }
}
