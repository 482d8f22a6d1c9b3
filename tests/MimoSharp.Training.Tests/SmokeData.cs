using System.Text.Json;
using MimoSharp.Tokenization;
using MimoSharp.Training;

namespace MimoSharp.Training.Tests;

/// <summary>Data directories for the tests, made from checked-in text with a byte-level tokenizer (as `mimo data` lays them out).</summary>
internal static class SmokeData
{
    public const int Vocab = 264;

    public static string Corpus => Path.Combine(TestPaths.Root, "testdata", "training-smoke", "gpl-3.0.txt");

    /// <summary>train.bin (the corpus but its middle tenth), val.bin (the middle tenth), tokenizer files; in a fresh temp folder.</summary>
    public static string Create(string name)
    {
        string dir = Path.Combine(Path.GetTempPath(), $"mimosharp-train-{name}-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        ByteLevelTokenizerWriter.Write(dir, Vocab);
        MimoTokenizer tokenizer = MimoTokenizer.Load(dir);
        int eot = tokenizer.TokenToId("<|endoftext|>")!.Value;
        string text = File.ReadAllText(Corpus);
        int from = (int)(text.Length * 0.45), to = (int)(text.Length * 0.55);
        int[] train = [.. tokenizer.Encode(text[..from]), eot, .. tokenizer.Encode(text[to..]), eot];
        int[] val = [.. tokenizer.Encode(text[from..to]), eot];
        TokenDataset.Write(Path.Combine(dir, "train.bin"), train);
        TokenDataset.Write(Path.Combine(dir, "val.bin"), val);
        return dir;
    }

    /// <summary>A tiny MiMo-shaped model: global dense layer 0, a sliding-window MoE layer with sinks, MTP heads.</summary>
    public static string ModelJson(int vocab = Vocab, int hidden = 64, int window = 16, int maxPositions = 256, long intermediate = 128) => $$"""
    {
      "architectures": ["MiMoV2FlashForCausalLM"], "model_type": "mimo_v2_flash",
      "vocab_size": {{vocab}}, "hidden_size": {{hidden}}, "intermediate_size": {{intermediate}}, "moe_intermediate_size": 64,
      "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "v_head_dim": 16,
      "swa_num_attention_heads": 4, "swa_num_key_value_heads": 2, "swa_head_dim": 16, "swa_v_head_dim": 16,
      "partial_rotary_factor": 0.5, "rope_theta": 500000.0, "swa_rope_theta": 10000.0, "rope_scaling": null,
      "max_position_embeddings": {{maxPositions}}, "sliding_window": {{window}}, "sliding_window_size": {{window}},
      "hybrid_layer_pattern": [0, 1], "moe_layer_freq": [0, 1],
      "add_full_attention_sink_bias": false, "add_swa_attention_sink_bias": true, "attention_value_scale": 0.707,
      "hidden_act": "silu", "layernorm_epsilon": 1e-5, "initializer_range": 0.02,
      "n_routed_experts": 4, "num_experts_per_tok": 2, "scoring_func": "sigmoid", "topk_method": "noaux_tc",
      "n_group": 1, "topk_group": 1, "norm_topk_prob": true, "routed_scaling_factor": null, "tie_word_embeddings": false
    }
    """;

    public static TrainingConfig Config(int steps, int batch = 8, int seq = 64, int heads = 2, float lr = 3e-3f, string? model = null, int checkpointInterval = 1000,
        int evalInterval = 100, int warmup = 20, string extra = "") =>
        TrainingConfig.Parse($$"""
        {
          "model": {{model ?? ModelJson()}},
          "mtp_heads": {{heads}}, "batch_size": {{batch}}, "sequence_length": {{seq}}, "steps": {{steps}},
          "learning_rate": {{lr.ToString(System.Globalization.CultureInfo.InvariantCulture)}}, "min_learning_rate": 3e-4, "warmup_steps": {{warmup}}, "decay_fraction": 0.3,
          "mtp_replicate_fraction": 0.5, "mtp_late_fraction": 0.8, "eval_interval": {{evalInterval}}, "eval_batches": 4,
          "checkpoint_interval": {{checkpointInterval}}, "log_interval": 50, "seed": 3{{extra}}
        }
        """, "test config");

    public static void Delete(params string[] dirs)
    {
        foreach (string d in dirs)
        {
            if (Directory.Exists(d))
            {
                Directory.Delete(d, recursive: true);
            }
        }
    }

    public static JsonElement LastEval(string runDir) =>
        File.ReadLines(Path.Combine(runDir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).Last(e => e.TryGetProperty("val_loss", out _));
}
