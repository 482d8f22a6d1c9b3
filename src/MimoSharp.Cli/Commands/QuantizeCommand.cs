using System.CommandLine;
using MimoSharp.Models.Creation;

namespace MimoSharp.Cli.Commands;

/// <summary>`mimo quantize`: rewrite a checkpoint in Q8_0, Q4_0 or FP8 (a loadable checkpoint directory).</summary>
internal static class QuantizeCommand
{
    public static Command Create(TextWriter output)
    {
        var model = new Option<string>("--model") { Description = "Checkpoint directory to read", Required = true };
        var dir = new Option<string>("--output") { Description = "Directory to write (must differ from --model)", Required = true };
        var type = new Option<string>("--type") { Description = "q8_0 (8-bit, 1.125 B/weight), q4_0 (4-bit, 0.625 B/weight), or fp8 (E4M3 with 128 x 128 block scales, the official checkpoint's format: q/k/v and MLP projections)", DefaultValueFactory = _ => "q8_0" };
        var shardMb = new Option<long?>("--shard-mb") { Description = "Shard the weights into files of at most this many MiB (with model.safetensors.index.json)" };
        var command = new Command("quantize", "Quantize a checkpoint's projections, embedding and LM head to Q8_0 or Q4_0 (groups of 32 weights with one scale), or its projections to FP8 with 128 x 128 block scales")
        {
            model, dir, type, shardMb,
        };
        command.SetAction(parse =>
        {
            string typeName = parse.GetValue(type)!;
            QuantizedFormat format = typeName.ToLowerInvariant() switch
            {
                "q8_0" or "q8" => QuantizedFormat.Q8_0,
                "q4_0" or "q4" => QuantizedFormat.Q4_0,
                "fp8" or "f8_e4m3" => QuantizedFormat.Fp8,
                _ => throw new ArgumentException($"--type is \"{typeName}\"; expected q8_0, q4_0 or fp8"),
            };
            long? shardBytes = CliParsing.ShardBytes(parse.GetValue(shardMb));
            string source = parse.GetValue(model)!, target = parse.GetValue(dir)!;
            if (Path.GetFullPath(source) != Path.GetFullPath(target))
            {
                // The quantizer refuses the same directory itself, naming why.
                CliParsing.CheckNewOutputDirectory(target, "--output", "a quantized checkpoint");
            }
            var started = System.Diagnostics.Stopwatch.StartNew();
            QuantizeReport report = CheckpointQuantizer.Quantize(parse.GetValue(model)!, parse.GetValue(dir)!, format, shardBytes);
            output.WriteLine(
                $"wrote {format} checkpoint to {parse.GetValue(dir)}: {report.QuantizedTensors} tensors quantized, {report.CopiedTensors} copied; " +
                $"{report.InputBytes / 1e6:F1} MB -> {report.OutputBytes / 1e6:F1} MB in {started.Elapsed.TotalSeconds:F1} s");
            return 0;
        });
        return command;
    }
}
