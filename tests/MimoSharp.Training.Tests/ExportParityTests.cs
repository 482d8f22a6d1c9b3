using MimoSharp.Models;
using MimoSharp.Models.Caching;
using MimoSharp.Models.Configuration;
using MimoSharp.Tensors;
using Xunit.Abstractions;

namespace MimoSharp.Training.Tests;

/// <summary>What we train is what we run: a trained model exported in the HF layout loads in the inference engine, whose main and MTP logits equal the trainer's forward.</summary>
public sealed class ExportParityTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(DType.BF16)]
    [InlineData(DType.F32)]
    public void EngineLogitsEqualTrainerForward(DType dtype)
    {
        MimoConfig config = MimoConfig.Load(Path.Combine(TestPaths.Root, "testdata", "training-fixture"));
        const int heads = 2, seq = 12;
        var model = new TrainingModel(config, heads, 1, seq);
        model.Initialize(7);
        var rng = new Random(5);
        for (int i = 0; i < model.RouterBias.Length; i++)
        {
            model.RouterBias[i] = (float)(rng.NextDouble() - 0.5) * 0.1f;
        }
        // A few real steps so the weights are not just the initialisation.
        var optimizer = new AdamW(model.Layout);
        int[] tokens = Enumerable.Range(0, model.TokensPerSequence).Select(_ => rng.Next(config.VocabSize)).ToArray();
        for (int step = 0; step < 3; step++)
        {
            TrainingStep.Run(model, optimizer, tokens, 1e-2f, 0.3f, 1f, 1e-3f, step);
        }
        string dir = Path.Combine(Path.GetTempPath(), $"mimosharp-export-{dtype}-{Environment.ProcessId}");
        HfExporter.Write(model, dir, tokenizerDirectory: null, dtype);
        if (dtype == DType.BF16)
        {
            HfExporter.RoundLikeExport(model);
        }
        int v = config.VocabSize;
        var trainerLogits = new float[(1 + heads) * seq * v];
        model.Forward(tokens, 0.3f, computeGradients: false, trainerLogits);

        using var engine = MimoModel.Load(dir);
        Assert.Equal(heads, engine.MtpHeads);
        SequenceKvCache cache = engine.CreateCache(initialCapacity: seq);
        var hidden = new float[seq * config.HiddenSize];
        var logits = new float[seq * v];
        engine.Forward([new SequenceInput(cache, tokens[..seq])], hidden, logits);
        double error = RelativeError(logits, trainerLogits.AsSpan(0, seq * v));
        Assert.True(error < 1e-4, $"main logits: relative error {error:E2}");
        for (int k = 0; k < heads; k++)
        {
            var mtp = new float[seq * v];
            engine.ForwardMtp(k, [new MtpInput(cache, tokens[(k + 1)..(k + 1 + seq)], hidden)], mtp);
            double e = RelativeError(mtp, trainerLogits.AsSpan((1 + k) * seq * v, seq * v));
            Assert.True(e < 1e-4, $"MTP head {k} logits: relative error {e:E2}");
            error = Math.Max(error, e);
        }
        output.WriteLine($"{dtype}: engine vs trainer logits, max relative error {error:E2}");
        Directory.Delete(dir, recursive: true);
    }

    private static double RelativeError(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        double diff = 0, scale = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            diff = Math.Max(diff, Math.Abs(actual[i] - expected[i]));
            scale = Math.Max(scale, Math.Abs(expected[i]));
        }
        return diff / scale;
    }
}
