using System.Text.Json;
using System.Text.Json.Serialization;
using MimoSharp.Models.Configuration;

namespace MimoSharp.Training;

/// <summary>
/// The `mimo train --config FILE.json` file: "model" holds a config.json object (the architecture,
/// spec §1.2), the other keys the run. Unknown keys are errors, so a typo never silently means a default.
/// </summary>
public sealed record TrainingConfig
{
    [JsonPropertyName("model")] public JsonElement Model { get; init; }
    [JsonPropertyName("mtp_heads")] public int MtpHeads { get; init; } = 3;
    [JsonPropertyName("batch_size")] public int BatchSize { get; init; } = 8;
    [JsonPropertyName("sequence_length")] public int SequenceLength { get; init; } = 128;
    [JsonPropertyName("steps")] public int Steps { get; init; } = 1000;
    [JsonPropertyName("learning_rate")] public float LearningRate { get; init; } = 3e-3f;
    [JsonPropertyName("min_learning_rate")] public float MinLearningRate { get; init; } = 3e-4f;
    [JsonPropertyName("warmup_steps")] public int WarmupSteps { get; init; } = 50;
    /// <summary>Share of the steps, at the end, over which the learning rate decays to the minimum.</summary>
    [JsonPropertyName("decay_fraction")] public float DecayFraction { get; init; } = 0.2f;
    [JsonPropertyName("weight_decay")] public float WeightDecay { get; init; } = 0.1f;
    [JsonPropertyName("beta1")] public float Beta1 { get; init; } = 0.9f;
    [JsonPropertyName("beta2")] public float Beta2 { get; init; } = 0.95f;
    [JsonPropertyName("epsilon")] public float Epsilon { get; init; } = 1e-8f;
    [JsonPropertyName("grad_clip")] public float GradClip { get; init; } = 1f;
    /// <summary>"adamw" (every tensor), or "muon": Muon for the 2-D projections and AdamW for the rest (<see cref="Training.Muon"/>), at the same learning rate and weight decay.</summary>
    [JsonPropertyName("optimizer")] public string Optimizer { get; init; } = "adamw";
    /// <summary>μ of Muon's Nesterov momentum.</summary>
    [JsonPropertyName("muon_momentum")] public float MuonMomentum { get; init; } = 0.95f;
    /// <summary>γ of the router-bias balance update.</summary>
    [JsonPropertyName("router_bias_gamma")] public float RouterBiasGamma { get; init; } = 1e-3f;
    /// <summary>λ of the MTP loss (the seed: 0.3, then 0.1 late in training).</summary>
    [JsonPropertyName("mtp_loss_weight")] public float MtpLossWeight { get; init; } = 0.3f;
    [JsonPropertyName("mtp_loss_weight_late")] public float MtpLossWeightLate { get; init; } = 0.1f;
    /// <summary>Share of the steps after which λ drops to <see cref="MtpLossWeightLate"/>.</summary>
    [JsonPropertyName("mtp_late_fraction")] public float MtpLateFraction { get; init; } = 0.8f;
    /// <summary>Share of the steps trained with one MTP head; then head 0 is copied to the others and all train jointly.</summary>
    [JsonPropertyName("mtp_replicate_fraction")] public float MtpReplicateFraction { get; init; } = 0.7f;
    /// <summary>Sequences drawn from a fixed permutation of the data's windows (true) or read in order (false).</summary>
    [JsonPropertyName("shuffle")] public bool Shuffle { get; init; } = true;
    /// <summary>Share of each batch's sequences drawn from chat-train.bin (the chat stage) once <see cref="ChatStartFraction"/> of the steps are done; 0: none.</summary>
    [JsonPropertyName("chat_fraction")] public float ChatFraction { get; init; }
    /// <summary>Share of the steps after which chat sequences join the batches.</summary>
    [JsonPropertyName("chat_start_fraction")] public float ChatStartFraction { get; init; } = 0.6f;
    [JsonPropertyName("eval_interval")] public int EvalInterval { get; init; } = 100;
    [JsonPropertyName("eval_batches")] public int EvalBatches { get; init; } = 4;
    [JsonPropertyName("checkpoint_interval")] public int CheckpointInterval { get; init; } = 200;
    [JsonPropertyName("log_interval")] public int LogInterval { get; init; } = 10;
    [JsonPropertyName("seed")] public ulong Seed { get; init; } = 1;

    [JsonIgnore] public MimoConfig ModelConfig { get; private init; } = null!;
    [JsonIgnore] public string Source { get; private init; } = "training config";

    private static readonly JsonSerializerOptions s_options = new()
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        WriteIndented = true,
    };

    public static TrainingConfig Load(string path)
    {
        if (!File.Exists(path))
        {
            throw new TrainingException($"{path}: training config not found");
        }
        return Parse(File.ReadAllText(path), path);
    }

    public static TrainingConfig Parse(string json, string source)
    {
        TrainingConfig? config;
        try
        {
            config = JsonSerializer.Deserialize<TrainingConfig>(json, s_options);
        }
        catch (JsonException ex)
        {
            throw new TrainingException($"{source}: {ex.Message}");
        }
        if (config is null || config.Model.ValueKind != JsonValueKind.Object)
        {
            throw new TrainingException($"{source}: expected an object with a \"model\" object (the config.json of the architecture) and the run's keys");
        }
        MimoConfig model;
        try
        {
            model = MimoConfig.Parse(config.Model.GetRawText(), $"{source} \"model\"");
        }
        catch (ModelConfigException ex)
        {
            throw new TrainingException(ex.Message);
        }
        var c = config with { ModelConfig = model, Source = source };
        c.Validate();
        return c;
    }

    public string ToJson() => JsonSerializer.Serialize(this, s_options);

    private void Validate()
    {
        void Positive(double value, string key)
        {
            if (!(value > 0))
            {
                throw new TrainingException($"{Source}: \"{key}\" must be positive, got {value}");
            }
        }
        void Fraction(double value, string key)
        {
            if (!(value >= 0 && value <= 1))
            {
                throw new TrainingException($"{Source}: \"{key}\" must be in [0, 1], got {value}");
            }
        }
        Positive(BatchSize, "batch_size");
        Positive(SequenceLength, "sequence_length");
        Positive(Steps, "steps");
        Positive(LearningRate, "learning_rate");
        Positive(EvalInterval, "eval_interval");
        Positive(CheckpointInterval, "checkpoint_interval");
        Positive(LogInterval, "log_interval");
        Positive(Beta1, "beta1");
        Positive(Beta2, "beta2");
        Fraction(DecayFraction, "decay_fraction");
        Fraction(MtpLateFraction, "mtp_late_fraction");
        Fraction(MtpReplicateFraction, "mtp_replicate_fraction");
        Fraction(ChatFraction, "chat_fraction");
        Fraction(ChatStartFraction, "chat_start_fraction");
        if (Optimizer is not ("adamw" or "muon"))
        {
            throw new TrainingException($"{Source}: \"optimizer\" is \"{Optimizer}\"; expected \"adamw\" or \"muon\"");
        }
        if (!(MuonMomentum >= 0 && MuonMomentum < 1))
        {
            throw new TrainingException($"{Source}: \"muon_momentum\" must be in [0, 1), got {MuonMomentum}");
        }
        if (MinLearningRate < 0 || MinLearningRate > LearningRate)
        {
            throw new TrainingException($"{Source}: \"min_learning_rate\" {MinLearningRate} must be in [0, learning_rate {LearningRate}]");
        }
        if (MtpHeads < 0)
        {
            throw new TrainingException($"{Source}: \"mtp_heads\" must be 0 or more, got {MtpHeads}");
        }
        if (WarmupSteps < 0 || EvalBatches < 0)
        {
            throw new TrainingException($"{Source}: \"warmup_steps\" and \"eval_batches\" must be 0 or more");
        }
        if (ModelConfig.MaxPositionEmbeddings > 0 && SequenceLength > ModelConfig.MaxPositionEmbeddings)
        {
            throw new TrainingException($"{Source}: \"sequence_length\" {SequenceLength} exceeds the model's max_position_embeddings {ModelConfig.MaxPositionEmbeddings}");
        }
        if (ModelConfig.VocabSize > 65536)
        {
            throw new TrainingException($"{Source}: vocab_size {ModelConfig.VocabSize} does not fit the uint16 ids of llm.c's token files (at most 65536)");
        }
        if (ModelConfig.TieWordEmbeddings)
        {
            throw new TrainingException($"{Source}: tie_word_embeddings is true; MiMo-V2-Flash has a separate lm_head and the trainer implements only that");
        }
    }

    [JsonIgnore] public bool UsesMuon => Optimizer == "muon";

    public WarmupStableDecay Schedule => new(LearningRate, MinLearningRate, WarmupSteps, (int)Math.Round(DecayFraction * Steps), Steps);

    /// <summary>MTP heads trained at <paramref name="step"/>: one until the replication step, then all.</summary>
    public int ActiveHeadsAt(int step) => MtpHeads == 0 ? 0 : step < ReplicateStep ? 1 : MtpHeads;

    public int ReplicateStep => (int)Math.Round(MtpReplicateFraction * Steps);

    /// <summary>Sequences of the batch at <paramref name="step"/> drawn from the chat data (the first ones of the batch).</summary>
    public int ChatRowsAt(int step) => step < (int)Math.Round(ChatStartFraction * Steps) ? 0 : (int)Math.Round(ChatFraction * BatchSize);

    public float MtpWeightAt(int step) => step < (int)Math.Round(MtpLateFraction * Steps) ? MtpLossWeight : MtpLossWeightLate;
}
