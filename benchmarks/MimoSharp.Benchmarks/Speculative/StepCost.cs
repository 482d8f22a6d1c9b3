using System.Diagnostics;
using System.Globalization;
using MimoSharp.Models;
using MimoSharp.Models.Caching;
using MimoSharp.Models.Layers;

namespace MimoSharp.Benchmarks.Speculative;

/// <summary>
/// What a speculative step costs against a plain one, on a warm cache of PROMPT positions: the main
/// model's forward of 1 row (plain decode) and of 4 rows (verifying 3 drafts, logits on every row), and
/// one MTP head's forward of 1 row (a draft), each timed over ITERATIONS calls, interleaved.
/// Usage: dotnet run -c Release --project benchmarks/MimoSharp.Benchmarks -- step-cost MODEL_DIR [PROMPT=256] [ITERATIONS=200] [THREADS]
/// </summary>
internal static class StepCost
{
    public static int Run(string[] args)
    {
        string dir = args[1];
        int prompt = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 256;
        int iterations = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 200;
        int? threads = args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : null;
        using MimoModel model = MimoModel.Load(dir, new ModelLoadOptions { Threads = threads });
        int vocab = model.VocabSize, h = model.HiddenSize;
        var random = new Random(7);
        int[] tokens = Enumerable.Range(0, prompt).Select(_ => random.Next(Math.Min(vocab, 4096))).ToArray();
        SequenceKvCache cache = model.CreateCache(reserve: 8, initialCapacity: prompt + 8);
        var ws = new ForwardWorkspace();
        var hidden = new float[prompt * h];
        var logits = new float[4 * vocab];
        model.Forward(ws, [new SequenceInput(cache, tokens, LogitRows.None)], hidden, default);
        if (model.MtpHeads > 0)
        {
            model.ForwardMtp(ws, 0, [new MtpInput(cache, tokens.AsMemory(1), hidden.AsMemory(0, (prompt - 1) * h), LogitRows.Last)], logits.AsSpan(0, vocab));
        }
        int[] one = [tokens[^1]], four = [tokens[^1], tokens[^2], tokens[^3], tokens[^4]];
        var rowHidden = new float[4 * h];
        double plain = 0, verify = 0, draft = 0;
        for (int i = 0; i < iterations + 10; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            model.Forward(ws, [new SequenceInput(cache, one)], rowHidden.AsSpan(0, h), logits.AsSpan(0, vocab));
            cache.RemoveLast(1);
            long t1 = Stopwatch.GetTimestamp();
            model.Forward(ws, [new SequenceInput(cache, four)], rowHidden, logits);
            cache.RemoveLast(4);
            long t2 = Stopwatch.GetTimestamp();
            if (model.MtpHeads > 0)
            {
                model.ForwardMtp(ws, 0, [new MtpInput(cache, one, rowHidden.AsMemory(0, h), LogitRows.Last)], logits.AsSpan(0, vocab));
                cache.Mtp(0).RemoveLast(1);
            }
            long t3 = Stopwatch.GetTimestamp();
            if (i >= 10)
            {
                plain += Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds;
                verify += Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds;
                draft += Stopwatch.GetElapsedTime(t2, t3).TotalMilliseconds;
            }
        }
        plain /= iterations; verify /= iterations; draft /= iterations;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{dir} at {prompt} positions, {threads?.ToString(CultureInfo.InvariantCulture) ?? "default"} threads: plain step (1 row) {plain:F3} ms, verify (4 rows) {verify:F3} ms = {verify / plain:F2}x, one MTP head (1 row) {draft:F3} ms = {draft / plain:F2}x"));
        double step3 = verify + 3 * draft;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"a 3-draft step costs {step3 / plain:F2} plain steps: mean acceptance length {1.5 * step3 / plain:F2} is needed for 1.5x, {step3 / plain:F2} to break even"));
        return 0;
    }
}
