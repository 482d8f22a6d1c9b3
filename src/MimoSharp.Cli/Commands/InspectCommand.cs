using System.CommandLine;
using System.Text.Json;
using MimoSharp.Models;
using MimoSharp.Models.Configuration;
using MimoSharp.Models.Loading;

namespace MimoSharp.Cli.Commands;

/// <summary>`mimo inspect`: what a checkpoint (or a lone config.json) holds and implies.</summary>
internal static class InspectCommand
{
    public static Command Create(TextWriter output)
    {
        var model = new Option<string>("--model") { Description = "Model directory (config.json, and safetensors if downloaded)", Required = true };
        var context = new Option<long>("--context") { Description = "Context length for the KV-cache estimate", DefaultValueFactory = _ => 32768 };
        var mtp = new Option<int>("--mtp-layers") { Description = "MTP heads to assume when only config.json is present", DefaultValueFactory = _ => 3 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var command = new Command("inspect", "Report the architecture, parameter counts, bytes by dtype and KV-cache size of a model") { model, context, mtp, json };
        command.SetAction(parse =>
        {
            string dir = parse.GetValue(model)!;
            long ctx = parse.GetValue(context);
            if (ctx <= 0)
            {
                throw new ArgumentException($"--context must be positive, got {ctx}");
            }
            int assumedHeads = parse.GetValue(mtp);
            if (assumedHeads is < 0 or > ConfigLimits.MaxMtpHeads)
            {
                throw new ArgumentException($"--mtp-layers is {assumedHeads}; expected 0..{ConfigLimits.MaxMtpHeads}");
            }
            MimoConfig config = MimoConfig.Load(dir);
            using Checkpoint? checkpoint = Checkpoint.HasWeights(dir) ? Checkpoint.Open(dir) : null;
            ModelSummary s = ModelSummary.From(config, checkpoint, assumedHeads);
            MimoDerivedConfig d = config.Derived;
            long weightBytes = s.BytesByDType.Values.Sum();
            if (parse.GetValue(json))
            {
                var result = new
                {
                    architecture = config.Architectures?.FirstOrDefault(),
                    model_type = config.ModelType,
                    layers = s.Layers,
                    global_layers = s.GlobalLayers,
                    sliding_layers = s.SlidingLayers,
                    dense_layers = s.DenseLayers,
                    moe_layers = s.MoeLayers,
                    mtp_heads = s.MtpHeads,
                    mtp_heads_from_checkpoint = s.MtpHeadsFromCheckpoint,
                    layer_kinds = string.Concat(d.LayerKinds.Select(k => k == LayerKind.GlobalAttention ? 'G' : 'S')),
                    total_parameters = s.TotalParameters,
                    mtp_parameters = s.MtpParameters,
                    active_parameters = s.ActiveParameters,
                    bytes_by_dtype = s.BytesByDType,
                    weight_bytes = weightBytes,
                    bytes_from_checkpoint = s.BytesFromCheckpoint,
                    kv_bytes_per_token_global_bf16 = s.GlobalKvValuesPerToken * 2,
                    kv_bytes_per_token_global_f32 = s.GlobalKvValuesPerToken * 4,
                    kv_bytes_sliding_per_sequence_f32 = (long)s.WindowKeys * s.SlidingKvValuesPerToken * 4,
                    context = ctx,
                    kv_bytes_at_context_bf16 = s.KvBytes(ctx, 2),
                    kv_bytes_at_context_f32 = s.KvBytes(ctx, 4),
                };
                output.WriteLine(JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
                return 0;
            }
            output.WriteLine($"model:        {dir}");
            output.WriteLine($"architecture: {config.Architectures?.FirstOrDefault() ?? "?"} ({config.ModelType ?? "?"})");
            output.WriteLine($"layers:       {s.Layers} ({s.GlobalLayers} global, {s.SlidingLayers} sliding window {d.SlidingWindow}; {s.DenseLayers} dense, {s.MoeLayers} MoE)");
            output.WriteLine($"pattern:      {string.Concat(d.LayerKinds.Select(k => k == LayerKind.GlobalAttention ? 'G' : 'S'))}");
            output.WriteLine($"attention:    global {d.Global.QueryHeads}q/{d.Global.KeyValueHeads}kv x {d.Global.HeadDim}/{d.Global.ValueHeadDim}, " +
                $"sliding {d.Sliding.QueryHeads}q/{d.Sliding.KeyValueHeads}kv x {d.Sliding.HeadDim}/{d.Sliding.ValueHeadDim}, rotary {d.Global.RotaryDims} dims, " +
                $"sinks: global {(d.Global.HasSinkBias ? "yes" : "no")}, sliding {(d.Sliding.HasSinkBias ? "yes" : "no")}, value scale {d.ValueScale}");
            output.WriteLine($"experts:      {config.NRoutedExperts} routed, top-{config.NumExpertsPerTok}, width {config.MoeIntermediateSize}");
            output.WriteLine($"MTP heads:    {s.MtpHeads}{(s.MtpHeadsFromCheckpoint ? "" : " (assumed: only config.json present)")}");
            output.WriteLine($"parameters:   {CliParsing.FormatCount(s.TotalParameters)} total ({CliParsing.FormatCount(s.TotalParameters - s.MtpParameters)} main + {CliParsing.FormatCount(s.MtpParameters)} MTP), " +
                $"{CliParsing.FormatCount(s.ActiveParameters)} active per token");
            output.WriteLine($"weights:      {CliParsing.FormatBytes(weightBytes)}{(s.BytesFromCheckpoint ? "" : " (estimated from the config)")}: " +
                string.Join(", ", s.BytesByDType.Select(p => $"{p.Key} {CliParsing.FormatBytes(p.Value)}")));
            output.WriteLine($"KV cache:     global layers {CliParsing.FormatBytes(s.GlobalKvValuesPerToken * 2)}/token in BF16 ({CliParsing.FormatBytes(s.GlobalKvValuesPerToken * 4)} in F32 as MimoSharp stores it); " +
                $"sliding layers + MTP {CliParsing.FormatBytes(s.SlidingKvValuesPerToken * 2)}/token but only for the last {s.WindowKeys} tokens");
            output.WriteLine($"at {ctx} tokens: {CliParsing.FormatBytes(s.KvBytes(ctx, 2))} BF16, {CliParsing.FormatBytes(s.KvBytes(ctx, 4))} F32 per sequence");
            return 0;
        });
        return command;
    }
}
