using System.Text.Json;
using Xunit.Abstractions;

namespace MimoSharp.Training.Tests;

/// <summary>`mimo train` and `mimo eval` as a user runs them (in-process through the CLI's entry point).</summary>
public sealed class TrainEvalCliTests(ITestOutputHelper output)
{
    private static (int Code, string Out, string Err) Mimo(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = MimoSharp.Cli.Program.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    [Fact]
    public void TrainResumeAndEval()
    {
        string data = SmokeData.Create("cli"), run = data + "-run";
        string configPath = data + "-config.json";
        try
        {
            string json = SmokeData.Config(steps: 20, batch: 2, seq: 32, checkpointInterval: 10, evalInterval: 10, warmup: 2).ToJson();
            File.WriteAllText(configPath, json.Replace("\"log_interval\": 50", "\"log_interval\": 5"));
            var first = Mimo("train", "--config", configPath, "--data", data, "--output", run, "--steps", "12");
            output.WriteLine(first.Out + first.Err);
            Assert.Equal(0, first.Code);
            Assert.Matches(@"step 5/12 \| loss \d+\.\d+ \| mtp \d+\.\d+ \(1 heads\) \| lr .* \| \d+ tok/s \| ETA \d\d:\d\d:\d\d", first.Out);
            Assert.Contains("eval step 10: val loss", first.Out);
            Assert.Contains("checkpoint written", first.Out);

            var again = Mimo("train", "--config", configPath, "--data", data, "--output", run);
            Assert.Equal(1, again.Code);
            Assert.Contains("--resume", again.Err);

            var resumed = Mimo("train", "--resume", run, "--steps", "16");
            output.WriteLine(resumed.Out + resumed.Err);
            Assert.Equal(0, resumed.Code);
            Assert.Contains("resumed", resumed.Out);
            Assert.Contains("step 16/16", resumed.Out);

            string heldOut = data + "-heldout.txt";
            File.WriteAllText(heldOut, File.ReadAllText(SmokeData.Corpus)[..3000]);
            var eval = Mimo("eval", "--model", Path.Combine(run, "model"), "--file", heldOut, "--json");
            output.WriteLine(eval.Out + eval.Err);
            Assert.Equal(0, eval.Code);
            JsonElement result = JsonDocument.Parse(eval.Out).RootElement;
            Assert.Equal(3000, result.GetProperty("bytes").GetInt64());
            Assert.Equal(3000, result.GetProperty("tokens").GetInt64()); // byte-level tokenizer: one token per ASCII byte
            double nll = result.GetProperty("nll_per_token").GetDouble();
            Assert.InRange(nll, 0.5, Math.Log(SmokeData.Vocab) + 0.5);
            Assert.Equal(nll * 3000 / Math.Log(2) / 3000, result.GetProperty("bits_per_byte").GetDouble(), 1e-9);
            var text = Mimo("eval", "--model", Path.Combine(run, "model"), "--file", heldOut);
            Assert.Contains("bits/byte", text.Out);

            var missing = Mimo("eval", "--model", Path.Combine(run, "model"), "--file", data + "-nothing.txt");
            Assert.Equal(1, missing.Code);
            Assert.Contains("not found", missing.Err);
        }
        finally
        {
            SmokeData.Delete(data, run);
            File.Delete(configPath);
        }
    }

    [Fact]
    public void TrainRefusesBadDataWithOneClearLine()
    {
        string data = SmokeData.Create("cli-bad"), configPath = data + "-config.json";
        try
        {
            File.WriteAllText(configPath, SmokeData.Config(steps: 5).ToJson());
            File.WriteAllBytes(Path.Combine(data, "train.bin"), [1, 2, 3]);
            var r = Mimo("train", "--config", configPath, "--data", data, "--output", data + "-run");
            Assert.Equal(1, r.Code);
            Assert.StartsWith("error: ", r.Err);
            Assert.Contains("train.bin", r.Err);
            Assert.DoesNotContain("   at ", r.Err);
        }
        finally
        {
            SmokeData.Delete(data);
            File.Delete(configPath);
        }
    }
}
