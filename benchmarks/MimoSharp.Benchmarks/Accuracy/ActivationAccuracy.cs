using MimoSharp.Models;
using MimoSharp.Tensors.Kernels;

namespace MimoSharp.Benchmarks.Accuracy;

/// <summary>
/// The accuracy cost of int8 activations on a Q8_0 / Q4_0 checkpoint: the same model loaded twice, exact
/// (float activations) and default (int8 activations), fed the same tokens one at a time as in decode. The
/// exact model generates greedily from a random prompt; the fast model is teacher-forced on that sequence.
/// Reports max |Δ logit| (and relative to the logits' max |value|) and the share of positions whose greedy
/// token agrees.
/// Usage: dotnet run -c Release --project benchmarks/MimoSharp.Benchmarks -- accuracy MODEL_DIR [PROMPTS=20] [PROMPT_TOKENS=8] [GEN_TOKENS=24] [ISA=Auto]
/// </summary>
internal static class ActivationAccuracy
{
    public static int Run(string[] args)
    {
        string dir = args[1];
        int prompts = args.Length > 2 ? int.Parse(args[2]) : 20;
        int promptTokens = args.Length > 3 ? int.Parse(args[3]) : 8;
        int genTokens = args.Length > 4 ? int.Parse(args[4]) : 24;
        KernelIsa isa = args.Length > 5 ? Enum.Parse<KernelIsa>(args[5]) : KernelIsa.Auto;
        using MimoModel exact = MimoModel.Load(dir, new ModelLoadOptions { Kernels = KernelMode.Exact(isa) });
        using MimoModel fast = MimoModel.Load(dir, new ModelLoadOptions { Kernels = new KernelMode(isa) });
        int vocab = exact.VocabSize;
        var exactLogits = new float[vocab];
        var fastLogits = new float[vocab];
        var random = new Random(1234);
        double maxDelta = 0, maxRelative = 0, sumDelta = 0;
        long positions = 0, agree = 0, compared = 0;
        for (int p = 0; p < prompts; p++)
        {
            var exactCache = exact.CreateCache();
            var fastCache = fast.CreateCache();
            int token = random.Next(vocab);
            int remaining = promptTokens - 1;
            for (int step = 0; step < promptTokens + genTokens - 1; step++)
            {
                exact.Forward([new SequenceInput(exactCache, new[] { token })], default, exactLogits);
                fast.Forward([new SequenceInput(fastCache, new[] { token })], default, fastLogits);
                double delta = 0, magnitude = 0, deltaSum = 0;
                for (int i = 0; i < vocab; i++)
                {
                    double d = Math.Abs(exactLogits[i] - fastLogits[i]);
                    delta = Math.Max(delta, d);
                    deltaSum += d;
                    magnitude = Math.Max(magnitude, Math.Abs(exactLogits[i]));
                }
                maxDelta = Math.Max(maxDelta, delta);
                maxRelative = Math.Max(maxRelative, delta / magnitude);
                sumDelta += deltaSum / vocab;
                positions++;
                int greedy = VectorMath.ArgMax(exactLogits);
                if (remaining == 0)
                {
                    compared++;
                    agree += VectorMath.ArgMax(fastLogits) == greedy ? 1 : 0;
                }
                token = remaining > 0 ? random.Next(vocab) : greedy;
                remaining = Math.Max(0, remaining - 1);
            }
        }
        Console.WriteLine($"{dir}: {prompts} prompts x ({promptTokens} prompt + {genTokens} greedy) tokens, decoded one at a time, kernels {exact.Kernels.Isa}");
        Console.WriteLine($"int8 activations vs exact: max |delta logit| {maxDelta:G4} ({maxRelative:P2} of that position's max |logit|), mean |delta logit| {sumDelta / positions:G4} over {positions} positions");
        Console.WriteLine($"greedy agreement (teacher-forced): {agree}/{compared} = {(double)agree / compared:P2}");
        return 0;
    }
}
