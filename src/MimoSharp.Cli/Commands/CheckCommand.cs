using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using MimoSharp.Models;
using MimoSharp.Models.Configuration;
using MimoSharp.Models.Loading;

namespace MimoSharp.Cli.Commands;

/// <summary>
/// `mimo check`: everything a load checks (config.json, headers, index, shapes against the config),
/// then a scan of every tensor's values: NaN/Inf counts, E4M3 NaN codes, scale sanity. Exit 0 when the
/// checkpoint is clean, 1 otherwise, with a report of every tensor that is not.
/// </summary>
internal static class CheckCommand
{
    public static Command Create(TextWriter output)
    {
        var model = new Option<string>("--model") { Description = "Model directory (config.json and safetensors)", Required = true };
        var all = new Option<bool>("--all") { Description = "List every tensor, clean ones too" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object with every tensor's counts" };
        var command = new Command("check", "Scan a checkpoint: structure against config.json, then every tensor for NaN/Inf, E4M3 NaN codes and bad scales") { model, all, json };
        command.SetAction(parse =>
        {
            string dir = parse.GetValue(model)!;
            long start = Stopwatch.GetTimestamp();
            MimoConfig config = MimoConfig.Load(dir);
            using Checkpoint checkpoint = Checkpoint.Open(dir);
            IReadOnlyList<TensorScan> scans = TensorScanner.Scan(checkpoint);
            // The structure after the scan, so a checkpoint with bad values still gets its full report.
            string? structure = null;
            try
            {
                MimoWeights.Load(checkpoint, config, config.Derived);
            }
            catch (Exception ex) when (ex is CheckpointException or ModelConfigException)
            {
                structure = ex.Message;
            }
            TensorScan[] bad = scans.Where(s => !s.IsClean).ToArray();
            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            long bytes = checkpoint.Tensors.Values.Sum(e => e.ByteLength);
            if (parse.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(new
                {
                    model = dir,
                    clean = bad.Length == 0 && structure is null,
                    structure_error = structure,
                    tensors = scans.Count,
                    bad_tensors = bad.Length,
                    bytes_scanned = bytes,
                    seconds,
                    report = (parse.GetValue(all) ? scans : bad).Select(s => new
                    {
                        file = s.File, name = s.Name, dtype = s.DType, shape = s.Shape, elements = s.Elements,
                        nan = s.NaN, inf = s.Infinity, nan_codes = s.NaNCodes, bad_scales = s.BadScales, clean = s.IsClean,
                    }),
                }, CliParsing.Json));
            }
            else
            {
                foreach (TensorScan s in parse.GetValue(all) ? scans : bad)
                {
                    output.WriteLine($"{(s.IsClean ? "ok " : "BAD")} {s.Name} ({s.DType} {s.Shape}, {Path.GetFileName(s.File)}): {s.Problems}");
                }
                output.WriteLine(structure is null
                    ? $"structure: every tensor config.json implies is present with its shape ({checkpoint.Tensors.Count} tensors, {checkpoint.Files.Count} files)"
                    : $"structure: {structure}");
                output.WriteLine($"{scans.Count} tensors, {CliParsing.FormatBytes(bytes)} scanned in {seconds:F1} s: " +
                    (bad.Length == 0 ? "no NaN, Inf, E4M3 NaN code or bad scale" : $"{bad.Length} tensor{(bad.Length == 1 ? "" : "s")} hold values no weight may have"));
            }
            return bad.Length == 0 && structure is null ? 0 : 1;
        });
        return command;
    }
}
