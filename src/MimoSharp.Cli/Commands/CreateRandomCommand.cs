using System.CommandLine;
using MimoSharp.Models;
using MimoSharp.Models.Configuration;
using MimoSharp.Models.Creation;
using MimoSharp.Tokenization;

namespace MimoSharp.Cli.Commands;

/// <summary>`mimo create-random`: a randomly initialised model in the official layout, for tests and benchmarks.</summary>
internal static class CreateRandomCommand
{
    public static Command Create(TextWriter output)
    {
        var dir = new Option<string>("--output") { Description = "Directory to write", Required = true };
        var preset = new Option<string?>("--preset") { Description = $"Geometry: {string.Join(", ", ModelPresets.Names)}" };
        var config = new Option<string?>("--config") { Description = "A config.json to fill with random weights" };
        var mtp = new Option<int>("--mtp-layers") { Description = "MTP heads to write", DefaultValueFactory = _ => 3 };
        var layers = new Option<int?>("--layers") { Description = "Keep only the first N decoder layers (e.g. a few layers of flash)" };
        var configOnly = new Option<bool>("--config-only") { Description = "Write config.json only" };
        var seed = new Option<ulong>("--seed") { Description = "Random seed", DefaultValueFactory = _ => 1 };
        var shardMb = new Option<long?>("--shard-mb") { Description = "Shard the weights into files of at most this many MiB (with model.safetensors.index.json)" };
        var command = new Command("create-random", "Write a randomly initialised MiMo-V2-Flash-architecture model (FP8 where the real checkpoint is FP8)")
        {
            dir, preset, config, mtp, layers, configOnly, seed, shardMb,
        };
        command.SetAction(parse =>
        {
            string? presetName = parse.GetValue(preset);
            string? configPath = parse.GetValue(config);
            if ((presetName is null) == (configPath is null))
            {
                throw new ArgumentException("give exactly one of --preset NAME or --config FILE.json");
            }
            MimoConfig c = presetName is not null ? ModelPresets.Get(presetName) : MimoConfig.Load(configPath!);
            if (parse.GetValue(layers) is int n)
            {
                c = KeepLayers(c, n);
            }
            int heads = parse.GetValue(mtp);
            if (heads is < 0 or > ConfigLimits.MaxMtpHeads)
            {
                throw new ArgumentException($"--mtp-layers is {heads}; expected 0..{ConfigLimits.MaxMtpHeads}");
            }
            long? shardBytes = CliParsing.ShardBytes(parse.GetValue(shardMb));
            bool onlyConfig = parse.GetValue(configOnly);
            // Sized from the config alone, before anything is written: a flash-sized model is ~300 GB.
            long bytes = onlyConfig ? 0 : ModelSummary.From(c, null, heads).BytesByDType.Values.Sum();
            string outDir = CliParsing.CheckNewOutputDirectory(parse.GetValue(dir)!, "--output", "a model", bytes);
            TextWriter notes = parse.InvocationConfiguration.Error;
            var options = new RandomModelOptions
            {
                MtpHeads = heads, Seed = parse.GetValue(seed), MaxShardBytes = shardBytes, ConfigOnly = onlyConfig,
                Progress = bytes >= ProgressFrom ? CliParsing.ProgressPrinter(notes, bytes, "writing") : null,
            };
            RandomModelWriter.Write(outDir, c, options);
            bool tokenizer = !options.ConfigOnly && c.VocabSize >= 256 + ByteLevelTokenizerWriter.ControlTokens.Count;
            if (tokenizer)
            {
                // A byte-level tokenizer so that text commands (generate --prompt, chat) run on the random model.
                ByteLevelTokenizerWriter.Write(outDir, c.VocabSize);
            }
            output.WriteLine(options.ConfigOnly
                ? $"wrote {Path.Combine(outDir, "config.json")}"
                : $"wrote a random model ({c.NumHiddenLayers} layers, {heads} MTP heads{(tokenizer ? ", byte-level tokenizer" : "")}) to {outDir}");
            return 0;
        });
        return command;
    }

    /// <summary>Writes of at least this many bytes report their progress (on stderr).</summary>
    private const long ProgressFrom = 1L << 30;

    /// <summary>The config cut to its first <paramref name="layers"/> decoder layers.</summary>
    internal static MimoConfig KeepLayers(MimoConfig config, int layers)
    {
        if (layers <= 0 || layers > config.NumHiddenLayers)
        {
            throw new ArgumentException($"--layers must be in 1..{config.NumHiddenLayers}, got {layers}");
        }
        return (config with
        {
            NumHiddenLayers = layers,
            HybridLayerPattern = config.HybridLayerPattern!.Take(layers).ToArray(),
            MoeLayerFreq = config.MoeLayerFreq!.Take(layers).ToArray(),
            QuantizationConfig = config.QuantizationConfig is { } q
                ? q with { IgnoredLayers = q.IgnoredLayers?.Where(n => LayerIndex(n) is not int i || i < layers).ToArray() }
                : null,
        }).Validate();
    }

    private static int? LayerIndex(string module)
    {
        string[] parts = module.Split('.');
        return parts.Length > 2 && parts[0] == "model" && parts[1] == "layers" && int.TryParse(parts[2], out int i) ? i : null;
    }
}
