using System.CommandLine;
using MimoSharp.Models;
using MimoSharp.Models.Caching;
using MimoSharp.Models.Configuration;
using MimoSharp.Tensors.Storage;

namespace MimoSharp.Cli.Commands;

/// <summary>
/// `mimo logits`: float32 logits of every position as .npy [T, vocab], and optionally the MTP heads'
/// [heads, T - heads, vocab] (head k at row t: hidden of position t, embedding of ids[t + k + 1]).
/// </summary>
internal static class LogitsCommand
{
    public static Command Create(TextWriter output)
    {
        var model = new Option<string>("--model") { Description = "Model directory", Required = true };
        var ids = new Option<string>("--ids") { Description = "Comma-separated token ids", Required = true };
        var mainOut = new Option<string>("--output") { Description = "Where to write the main logits (.npy)", Required = true };
        var mtpOut = new Option<string?>("--mtp-output") { Description = "Where to write the MTP heads' logits (.npy)" };
        var window = WindowOption();
        var checkTensors = CliParsing.CheckTensorsOption();
        var command = new Command("logits", "Write the logits of every position (and of the MTP heads) as NumPy .npy files") { model, ids, mainOut, mtpOut, window, checkTensors };
        command.SetAction(parse =>
        {
            int[] tokens = CliParsing.ParseIds(parse.GetValue(ids)!);
            // Every output is checked before the forward pass, and written only once all are computed.
            string mainPath = CliParsing.CheckOutputFile(parse.GetValue(mainOut)!, "--output");
            string? mtpPath = parse.GetValue(mtpOut) is string given ? CliParsing.CheckOutputFile(given, "--mtp-output") : null;
            if (mtpPath is not null && mtpPath == mainPath)
            {
                throw new ArgumentException($"--mtp-output {parse.GetValue(mtpOut)} is the same file as --output; expected two different files");
            }
            using var m = MimoModel.Load(parse.GetValue(model)!, new ModelLoadOptions { WindowConvention = parse.GetValue(window), CheckTensors = parse.GetValue(checkTensors) });
            int t = tokens.Length, h = m.HiddenSize, v = m.VocabSize, heads = m.MtpHeads;
            int rows = t - heads;
            if (mtpPath is not null && heads == 0)
            {
                throw new ArgumentException("--mtp-output given but the checkpoint has no MTP layers (model.mtp.layers.*)");
            }
            if (mtpPath is not null && rows <= 0)
            {
                throw new ArgumentException($"--mtp-output needs more than {heads} ids (one row per position with all {heads} heads' inputs known); got {t}");
            }
            SequenceKvCache cache = m.CreateCache(initialCapacity: t);
            var hidden = new float[t * h];
            var logits = new float[(long)t * v];
            m.Forward([new SequenceInput(cache, tokens)], hidden, logits);
            float[]? mtpLogits = null;
            if (mtpPath is not null)
            {
                mtpLogits = new float[(long)heads * rows * v];
                for (int k = 0; k < heads; k++)
                {
                    m.ForwardMtp(k, [new MtpInput(cache, tokens[(k + 1)..(k + 1 + rows)], hidden.AsMemory(0, rows * h))],
                        mtpLogits.AsSpan(k * rows * v, rows * v));
                }
            }
            CliParsing.WriteAtomically(mainPath, "--output", path => Npy.WriteFloat32(path, logits, t, v));
            if (mtpPath is not null)
            {
                try
                {
                    CliParsing.WriteAtomically(mtpPath, "--mtp-output", path => Npy.WriteFloat32(path, mtpLogits!, heads, rows, v));
                }
                catch
                {
                    File.Delete(mainPath); // no half of the result left behind
                    throw;
                }
            }
            output.WriteLine($"wrote {parse.GetValue(mainOut)} [{t}, {v}]");
            if (mtpPath is not null)
            {
                output.WriteLine($"wrote {parse.GetValue(mtpOut)} [{heads}, {rows}, {v}]");
            }
            return 0;
        });
        return command;
    }

    internal static Option<SlidingWindowConvention> WindowOption() => new("--window-convention")
    {
        Description = "Sliding-window keys: HuggingFace (w keys, as HF/vLLM/llama.cpp) or SGLang (w + 1)",
        DefaultValueFactory = _ => SlidingWindowConvention.HuggingFace,
    };
}
