using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using MimoSharp.Models;
using MimoSharp.Runtime.Generation;
using MimoSharp.Tokenization;

namespace MimoSharp.Benchmarks.Speculative;

/// <summary>
/// MTP self-speculative decoding on held-out text, greedy: for each kind (prose, code) PROMPTS prompts of
/// PROMPT_TOKENS tokens, each cut from the middle of a different held-out document (document starts such as
/// licence headers would flatter the heads), continued for GEN_TOKENS tokens with 3 draft tokens and
/// with none, alternating over ROUNDS rounds. Reports the mean acceptance length (tokens emitted per
/// verify step, 1..4), each head's acceptance rate, decode tok/s of both modes and their ratio, and checks
/// that the drafted and plain greedy outputs are the same tokens.
/// Usage: dotnet run -c Release --project benchmarks/MimoSharp.Benchmarks -- mtp MODEL_DIR DATA_DIR [PROMPTS=16] [PROMPT_TOKENS=64] [GEN_TOKENS=64] [ROUNDS=2] [THREADS]
/// (DATA_DIR is a `mimo data build` output: heldout/index.json, prose.txt, code.txt.)
/// </summary>
internal static class MtpAcceptance
{
    public static int Run(string[] args)
    {
        string modelDir = args[1], dataDir = args[2];
        int prompts = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 16;
        int promptTokens = args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 64;
        int genTokens = args.Length > 5 ? int.Parse(args[5], CultureInfo.InvariantCulture) : 64;
        int rounds = args.Length > 6 ? int.Parse(args[6], CultureInfo.InvariantCulture) : 2;
        int? threads = args.Length > 7 ? int.Parse(args[7], CultureInfo.InvariantCulture) : null;
        using MimoModel model = MimoModel.Load(modelDir, new ModelLoadOptions { Threads = threads });
        MimoTokenizer tokenizer = MimoTokenizer.Load(modelDir);
        var generator = new Generator(model);
        Console.WriteLine($"{modelDir}: {model.MtpHeads} MTP heads; {prompts} held-out prompts per kind x {promptTokens} tokens, {genTokens} greedy tokens, {rounds} rounds alternating drafts 3 / 0");
        double allPlain = 0, allDrafted = 0;
        foreach (string kind in new[] { "prose", "code" })
        {
            List<int[]> cases = Prompts(dataDir, kind, tokenizer, prompts, promptTokens);
            double acceptance = 0;
            var headRates = new double[model.MtpHeads];
            double plainSeconds = 0, draftedSeconds = 0;
            long plainTokens = 0, draftedTokens = 0;
            int mismatches = 0;
            for (int round = 0; round < rounds; round++)
            {
                foreach (int[] prompt in cases)
                {
                    (int[] drafted, GenerationUsage du) = Generate(generator, prompt, genTokens, 3);
                    (int[] plain, GenerationUsage pu) = Generate(generator, prompt, genTokens, 0);
                    if (!drafted.AsSpan().SequenceEqual(plain))
                    {
                        mismatches++;
                    }
                    draftedSeconds += du.DecodeTime.TotalSeconds;
                    draftedTokens += Math.Max(0, du.CompletionTokens - 1);
                    plainSeconds += pu.DecodeTime.TotalSeconds;
                    plainTokens += Math.Max(0, pu.CompletionTokens - 1);
                    if (round == 0)
                    {
                        acceptance += du.MeanAcceptanceLength;
                        for (int h = 0; h < headRates.Length && h < du.HeadAcceptanceRates.Count; h++)
                        {
                            headRates[h] += du.HeadAcceptanceRates[h];
                        }
                    }
                }
            }
            double plainRate = plainTokens / plainSeconds, draftedRate = draftedTokens / draftedSeconds;
            allPlain += plainRate;
            allDrafted += draftedRate;
            string heads = string.Join(", ", headRates.Select((r, h) => $"head {h + 1} {r / cases.Count:P1}"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{kind}: mean acceptance length {acceptance / cases.Count:F2} ({heads}); decode {plainRate:F1} tok/s with 0 drafts, {draftedRate:F1} tok/s with 3 drafts = {draftedRate / plainRate:F2}x; drafted output differs from plain greedy in {mismatches} of {cases.Count * rounds} runs"));
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"both kinds: {allDrafted / allPlain:F2}x decode speed-up with 3 drafts"));
        return 0;
    }

    private static (int[] Tokens, GenerationUsage Usage) Generate(Generator generator, int[] prompt, int genTokens, int drafts)
    {
        var request = new GenerationRequest { PromptIds = prompt, MaxTokens = genTokens, DraftTokens = drafts };
        var tokens = new List<int>();
        GenerationUsage? usage = null;
        foreach (GenerationEvent e in generator.GenerateAsync(request).ToBlockingEnumerable())
        {
            if (e.IsFinal)
            {
                usage = e.Usage;
            }
            else
            {
                tokens.Add(e.Token);
            }
        }
        return (tokens.ToArray(), usage ?? throw new InvalidOperationException("generation ended without usage"));
    }

    /// <summary>From each of the first <paramref name="count"/> held-out documents of the kind long enough, the tokens from its middle.</summary>
    private static List<int[]> Prompts(string dataDir, string kind, MimoTokenizer tokenizer, int count, int promptTokens)
    {
        string heldout = Path.Combine(dataDir, "heldout");
        byte[] text = File.ReadAllBytes(Path.Combine(heldout, kind + ".txt"));
        using JsonDocument index = JsonDocument.Parse(File.ReadAllText(Path.Combine(heldout, "index.json")));
        var cases = new List<int[]>();
        foreach (JsonElement doc in index.RootElement.EnumerateArray())
        {
            if (doc.GetProperty("file").GetString() != kind + ".txt")
            {
                continue;
            }
            int offset = doc.GetProperty("byte_offset").GetInt32(), bytes = doc.GetProperty("bytes").GetInt32();
            string body = System.Text.Encoding.UTF8.GetString(text, offset, bytes);
            IReadOnlyList<int> ids = tokenizer.Encode(body);
            if (ids.Count < 2 * promptTokens + 2)
            {
                continue;
            }
            int start = ids.Count / 2 - promptTokens / 2;
            cases.Add(ids.Skip(start).Take(promptTokens).ToArray());
            if (cases.Count == count)
            {
                break;
            }
        }
        if (cases.Count == 0)
        {
            throw new InvalidOperationException($"{heldout}: no {kind} document of at least {2 * promptTokens + 2} tokens");
        }
        return cases;
    }
}
