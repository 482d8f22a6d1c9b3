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
        var command = new Command("logits", "Write the logits of every position (and of the MTP heads) as NumPy .npy files") { model, ids, mainOut, mtpOut, window };
        command.SetAction(parse =>
        {
            int[] tokens = CliParsing.ParseIds(parse.GetValue(ids)!);
            using var m = MimoModel.Load(parse.GetValue(model)!, new ModelLoadOptions { WindowConvention = parse.GetValue(window) });
            int t = tokens.Length, h = m.HiddenSize, v = m.VocabSize;
            SequenceKvCache cache = m.CreateCache(initialCapacity: t);
            var hidden = new float[t * h];
            var logits = new float[(long)t * v];
            m.Forward([new SequenceInput(cache, tokens)], hidden, logits);
            Npy.WriteFloat32(parse.GetValue(mainOut)!, logits, t, v);
            output.WriteLine($"wrote {parse.GetValue(mainOut)} [{t}, {v}]");

            if (parse.GetValue(mtpOut) is string mtpPath)
            {
                int heads = m.MtpHeads;
                if (heads == 0)
                {
                    throw new ArgumentException("--mtp-output given but the checkpoint has no MTP layers (model.mtp.layers.*)");
                }
                int rows = t - heads;
                if (rows <= 0)
                {
                    throw new ArgumentException($"--mtp-output needs more than {heads} ids (one row per position with all {heads} heads' inputs known); got {t}");
                }
                var mtpLogits = new float[(long)heads * rows * v];
                for (int k = 0; k < heads; k++)
                {
                    m.ForwardMtp(k, [new MtpInput(cache, tokens[(k + 1)..(k + 1 + rows)], hidden.AsMemory(0, rows * h))],
                        mtpLogits.AsSpan(k * rows * v, rows * v));
                }
                Npy.WriteFloat32(mtpPath, mtpLogits, heads, rows, v);
                output.WriteLine($"wrote {mtpPath} [{heads}, {rows}, {v}]");
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
