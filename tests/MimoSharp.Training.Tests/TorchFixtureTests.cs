using System.Text.Json;
using MimoSharp.Models.Configuration;
using MimoSharp.Models.Loading;
using MimoSharp.Training;
using Xunit.Abstractions;

namespace MimoSharp.Training.Tests;

/// <summary>
/// The whole model against testdata/training-fixture, written once by PyTorch 1.13 in float64 with
/// autograd and torch.optim.AdamW (tools/training-fixture/make_fixture.py): the loss and every
/// gradient of the first batch, then 10 AdamW steps (warmup-stable-decay, clipping, router-bias
/// updates). Error of a tensor = max |ours − torch| / max |torch|, which must stay below 1e-4.
/// </summary>
public sealed class TorchFixtureTests(ITestOutputHelper output)
{
    private const double Tolerance = 1e-4;
    private static string FixtureDirectory => Path.Combine(TestPaths.Root, "testdata", "training-fixture");

    private sealed record Fixture(MimoConfig Config, JsonElement Json, Checkpoint Tensors, int Heads, int Batch, int Sequence)
    {
        public int[] Tokens(int step) => Json.GetProperty("tokens")[step].EnumerateArray().SelectMany(b => b.EnumerateArray().Select(t => t.GetInt32())).ToArray();

        public float[] Read(string name) => Tensors.ReadFloats(name, Tensors.Get(name).Shape.ToArray());

        public JsonElement Training => Json.GetProperty("training");

        public double Step(int step, string key) => Json.GetProperty("steps")[step].GetProperty(key).GetDouble();
    }

    private static Fixture Load()
    {
        JsonElement json = JsonDocument.Parse(File.ReadAllText(Path.Combine(FixtureDirectory, "fixture.json"))).RootElement;
        return new Fixture(MimoConfig.Load(FixtureDirectory), json, Checkpoint.Open(FixtureDirectory),
            json.GetProperty("mtp_heads").GetInt32(), json.GetProperty("batch").GetInt32(), json.GetProperty("sequence").GetInt32());
    }

    private static TrainingModel ModelFrom(Fixture f)
    {
        var model = new TrainingModel(f.Config, f.Heads, f.Batch, f.Sequence);
        foreach (ParameterTensor t in model.Layout.Tensors)
        {
            f.Read("initial/" + t.Name).CopyTo(model.Parameters, t.Offset);
        }
        f.Read("initial/router_bias").CopyTo(model.RouterBias, 0);
        return model;
    }

    private static double RelativeError(ReadOnlySpan<float> ours, ReadOnlySpan<float> reference)
    {
        double maxDiff = 0, maxRef = 0;
        for (int i = 0; i < reference.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs((double)ours[i] - reference[i]));
            maxRef = Math.Max(maxRef, Math.Abs((double)reference[i]));
        }
        return maxRef == 0 ? maxDiff : maxDiff / maxRef;
    }

    [Fact]
    public void LossAndEveryGradientMatchTorch()
    {
        Fixture f = Load();
        TrainingModel model = ModelFrom(f);
        float lambda = (float)f.Training.GetProperty("mtp_loss_weight").GetDouble();
        StepLosses losses = model.Forward(f.Tokens(0), lambda, computeGradients: true);

        Assert.Equal(f.Step(0, "main"), losses.Main, Tolerance * f.Step(0, "main"));
        Assert.Equal(f.Step(0, "mtp"), losses.Mtp, Tolerance * f.Step(0, "mtp"));
        Assert.Equal(f.Step(0, "total"), losses.Total, Tolerance * f.Step(0, "total"));
        double worst = 0;
        string worstName = "";
        foreach (ParameterTensor t in model.Layout.Tensors)
        {
            double error = RelativeError(model.Gradients.AsSpan(t.Offset, t.Length), f.Read("grad/" + t.Name));
            Assert.True(error < Tolerance, $"gradient of {t.Name}: relative error {error:E2}");
            if (error > worst)
            {
                (worst, worstName) = (error, t.Name);
            }
        }
        output.WriteLine($"{model.Layout.Tensors.Count} gradients; worst relative error {worst:E2} ({worstName}); loss {losses.Total} vs torch {f.Step(0, "total")}");
    }

    [Fact]
    public void TenAdamWStepsMatchTorch()
    {
        Fixture f = Load();
        TrainingModel model = ModelFrom(f);
        JsonElement tr = f.Training;
        float F(string key) => (float)tr.GetProperty(key).GetDouble();
        int steps = tr.GetProperty("steps").GetInt32();
        var optimizer = new AdamW(model.Layout) { Beta1 = F("beta1"), Beta2 = F("beta2"), Epsilon = F("epsilon"), WeightDecay = F("weight_decay") };
        var schedule = new WarmupStableDecay(F("learning_rate"), F("min_learning_rate"), tr.GetProperty("warmup_steps").GetInt32(), tr.GetProperty("decay_steps").GetInt32(), steps);
        for (int step = 0; step < steps; step++)
        {
            float lr = schedule.At(step);
            Assert.Equal(f.Step(step, "lr"), lr, 1e-9);
            StepResult result = TrainingStep.Run(model, optimizer, f.Tokens(step), lr, F("mtp_loss_weight"), F("grad_clip"), F("router_bias_gamma"), step);
            Assert.True(Math.Abs(result.Losses.Total - f.Step(step, "total")) < Tolerance * f.Step(step, "total"), $"step {step}: loss {result.Losses.Total} vs torch {f.Step(step, "total")}");
            Assert.True(Math.Abs(result.GradientNorm - f.Step(step, "grad_norm")) < Tolerance * f.Step(step, "grad_norm"), $"step {step}: gradient norm {result.GradientNorm} vs torch {f.Step(step, "grad_norm")}");
        }
        double worst = 0;
        string worstName = "";
        foreach (ParameterTensor t in model.Layout.Tensors)
        {
            double error = RelativeError(model.Parameters.AsSpan(t.Offset, t.Length), f.Read("final/" + t.Name));
            Assert.True(error < Tolerance, $"{t.Name} after {steps} steps: relative error {error:E2}");
            if (error > worst)
            {
                (worst, worstName) = (error, t.Name);
            }
        }
        double biasError = RelativeError(model.RouterBias, f.Read("final/router_bias"));
        Assert.True(biasError < Tolerance, $"router correction bias after {steps} steps: relative error {biasError:E2}");
        output.WriteLine($"after {steps} AdamW steps: worst parameter relative error {worst:E2} ({worstName}); router bias {biasError:E2}");
    }
}
