using MimoSharp.Training;
using Xunit.Abstractions;

namespace MimoSharp.Training.Tests;

/// <summary>Trains a tiny model on checked-in text (byte-level tokens of the GPL-3 text) and checks that it learns, resumes exactly, and refuses bad input clearly.</summary>
public sealed class SmokeTrainingTests(ITestOutputHelper output)
{
    /// <summary>Held-out cross-entropy the smoke run must beat (nats per byte token). Uniform over the 264 ids is 5.58; byte unigrams about 3.0.</summary>
    private const double ValLossThreshold = 2.6;

    [Theory]
    [InlineData("adamw")]
    [InlineData("muon")]
    public void LossFallsBelowThresholdIn300Steps(string optimizer)
    {
        string data = SmokeData.Create("smoke-" + optimizer), run = data + "-run";
        try
        {
            var log = new StringWriter();
            TrainingRun training = TrainingRun.Start(SmokeData.Config(steps: 300, extra: $", \"optimizer\": \"{optimizer}\""), data, run, log);
            training.Run();
            output.WriteLine(log.ToString());
            double valLoss = SmokeData.LastEval(run).GetProperty("val_loss").GetDouble();
            double valMtp = SmokeData.LastEval(run).GetProperty("val_mtp_loss").GetDouble();
            Assert.True(valLoss < ValLossThreshold, $"held-out loss {valLoss:F3} after 300 steps, expected below {ValLossThreshold}");
            Assert.True(valMtp < 5.0, $"held-out MTP loss {valMtp:F3}, expected below ln(264) = 5.58");
            Assert.True(File.Exists(Path.Combine(run, "model", "model.safetensors")));
            Assert.Equal(2, training.Model.ActiveMtpHeads);
        }
        finally
        {
            SmokeData.Delete(data, run);
        }
    }

    [Theory]
    [InlineData("adamw")]
    [InlineData("muon")]
    public void ResumedRunContinuesExactly(string optimizer)
    {
        string data = SmokeData.Create("resume-" + optimizer), straight = data + "-straight", split = data + "-split";
        try
        {
            // 12 steps; one MTP head until step 6, then two (the replication happens right at the resume point).
            TrainingConfig config = SmokeData.Config(steps: 12, batch: 2, seq: 32, evalInterval: 5, warmup: 3, extra: $", \"optimizer\": \"{optimizer}\"");
            TrainingRun a = TrainingRun.Start(config, data, straight, TextWriter.Null);
            a.Run();
            TrainingRun b = TrainingRun.Start(config, data, split, TextWriter.Null);
            b.Run(stopAfter: 6);
            Assert.Equal(6, b.Step);
            TrainingRun c = TrainingRun.Resume(split, null, null, null, TextWriter.Null);
            Assert.Equal(6, c.Step);
            c.Run();
            Assert.Equal(12, c.Step);
            Assert.Equal(a.Model.Parameters, c.Model.Parameters);
            Assert.Equal(a.Optimizer.M, c.Optimizer.M);
            Assert.Equal(a.Optimizer.V, c.Optimizer.V);
            Assert.Equal(a.Model.RouterBias, c.Model.RouterBias);
            Assert.Equal(optimizer == "muon", c.Muon is not null);
            Assert.Equal(a.Muon?.Buffer, c.Muon?.Buffer);
        }
        finally
        {
            SmokeData.Delete(data, straight, split);
        }
    }

    [Theory]
    [InlineData("adamw")]
    [InlineData("muon")]
    public void OneStepAllocatesNothing(string optimizerName)
    {
        string data = SmokeData.Create("alloc-" + optimizerName), run = data + "-run";
        try
        {
            TrainingRun training = TrainingRun.Start(SmokeData.Config(steps: 10, batch: 2, seq: 32, extra: $", \"optimizer\": \"{optimizerName}\""), data, run, TextWriter.Null);
            var model = training.Model;
            var optimizer = training.Optimizer;
            int[] tokens = new int[model.Batch * model.TokensPerSequence];
            TrainingStep.Run(model, optimizer, tokens, 1e-3f, 0.3f, 1f, 1e-3f, 0, training.Muon); // warm up (JIT)
            long before = GC.GetAllocatedBytesForCurrentThread();
            TrainingStep.Run(model, optimizer, tokens, 1e-3f, 0.3f, 1f, 1e-3f, 1, training.Muon);
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(allocated < 1024, $"one training step allocated {allocated} bytes on the training thread");
        }
        finally
        {
            SmokeData.Delete(data, run);
        }
    }
}
