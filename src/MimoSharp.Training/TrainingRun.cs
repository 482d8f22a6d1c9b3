using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using MimoSharp.Tensors.Threading;
using MimoSharp.Tokenization;

namespace MimoSharp.Training;

/// <summary>
/// A training run on a data directory (train.bin, val.bin, tokenizer.json, tokenizer_config.json):
/// the loop, held-out evaluation, checkpoints and exact resumption. The output directory holds
/// checkpoint/ (training state: parameters, AdamW moments, Muon momentum when it is used, router biases, step and data cursor),
/// model/ (the last checkpoint exported in the HF layout), metrics.jsonl (every logged step and eval)
/// and config.json (the training config).
/// </summary>
public sealed class TrainingRun
{
    private readonly TrainingConfig _config;
    private readonly string _dataDir, _outputDir;
    private readonly TokenDataset _train;
    private readonly TokenDataset? _val;
    private readonly TokenDataset? _chat, _chatVal;
    private readonly TrainingModel _model;
    private readonly AdamW _optimizer;
    private readonly Muon? _muon;
    private readonly TextWriter _log;
    private readonly int[] _batch;
    private long _cursor, _chatCursor;

    public int Step { get; private set; }
    public TrainingConfig Config => _config;
    public TrainingModel Model => _model;
    public AdamW Optimizer => _optimizer;
    /// <summary>Muon, when the config's optimizer is "muon".</summary>
    public Muon? Muon => _muon;
    public string CheckpointDirectory => Path.Combine(_outputDir, "checkpoint");
    public string ModelDirectory => Path.Combine(_outputDir, "model");

    /// <summary>Mean training tokens/s and GFLOP/s of the steps this process ran.</summary>
    public double TokensPerSecond { get; private set; }
    public double GflopsPerSecond { get; private set; }

    private TrainingRun(TrainingConfig config, string dataDir, string outputDir, TextWriter log, WorkerPool? pool)
    {
        _config = config;
        _dataDir = dataDir;
        _outputDir = outputDir;
        _log = log;
        if (!Directory.Exists(dataDir))
        {
            throw new TrainingException($"{dataDir}: data directory not found (expected train.bin, val.bin and tokenizer.json from `mimo data`)");
        }
        _train = TokenDataset.Open(Path.Combine(dataDir, "train.bin"));
        string valPath = Path.Combine(dataDir, "val.bin");
        _val = File.Exists(valPath) ? TokenDataset.Open(valPath) : null;
        if (config.ChatFraction > 0)
        {
            string chatPath = Path.Combine(dataDir, "chat-train.bin");
            if (!File.Exists(chatPath))
            {
                throw new TrainingException($"{config.Source}: \"chat_fraction\" is {config.ChatFraction} but {chatPath} does not exist (`mimo data build` writes it); set chat_fraction to 0 or rebuild the data");
            }
            _chat = TokenDataset.Open(chatPath);
            string chatValPath = Path.Combine(dataDir, "chat-val.bin");
            _chatVal = File.Exists(chatValPath) ? TokenDataset.Open(chatValPath) : null;
        }
        int vocab = config.ModelConfig.VocabSize;
        CheckVocabulary(dataDir, vocab);
        foreach (TokenDataset? d in new[] { _train, _val, _chat, _chatVal })
        {
            if (d is not null && d.MaxToken >= vocab)
            {
                throw new TrainingException($"{d.Path}: holds token id {d.MaxToken} but the model's vocab_size is {vocab}; the data was tokenized with a larger vocabulary than the config's");
            }
        }
        CheckMemory(config, _train, _val, _chat);
        try
        {
            _model = new TrainingModel(config.ModelConfig, config.MtpHeads, config.BatchSize, config.SequenceLength, pool);
        }
        catch (OutOfMemoryException)
        {
            throw new TrainingException($"{config.Source}: the activations of batch_size {config.BatchSize} x sequence_length {config.SequenceLength} could not be allocated; reduce them");
        }
        _muon = config.UsesMuon ? new Muon(_model.Layout, pool) { Momentum = config.MuonMomentum, WeightDecay = config.WeightDecay } : null;
        _optimizer = new AdamW(_model.Layout, _muon is null ? null : Muon.Applies) { Beta1 = config.Beta1, Beta2 = config.Beta2, Epsilon = config.Epsilon, WeightDecay = config.WeightDecay };
        _batch = new int[config.BatchSize * _model.TokensPerSequence];
        _train.FillBatch(0, config.BatchSize, config.SequenceLength, _model.TokensPerSequence, _batch); // fails early if train.bin is too small
        if (config.EvalBatches > 0)
        {
            _val?.FillBatch(0, config.BatchSize, config.SequenceLength, _model.TokensPerSequence, _batch); // and val.bin
            _chatVal?.FillBatch(0, config.BatchSize, config.SequenceLength, _model.TokensPerSequence, _batch);
        }
        int chatRows = (int)Math.Round(config.ChatFraction * config.BatchSize);
        if (_chat is not null && chatRows > 0)
        {
            _chat.FillBatch(0, chatRows, config.SequenceLength, _model.TokensPerSequence, _batch);
        }
    }

    /// <summary>A fresh run: random weights from the config's seed.</summary>
    public static TrainingRun Start(TrainingConfig config, string dataDir, string outputDir, TextWriter log, WorkerPool? pool = null)
    {
        if (File.Exists(Path.Combine(outputDir, "checkpoint", "state.json")))
        {
            throw new TrainingException($"{outputDir}: holds a checkpoint already; continue it with --resume {outputDir} or choose another --output");
        }
        var run = new TrainingRun(config, dataDir, outputDir, log, pool);
        run._model.Initialize(config.Seed);
        run._model.ActiveMtpHeads = config.ActiveHeadsAt(0);
        Directory.CreateDirectory(outputDir);
        File.WriteAllText(Path.Combine(outputDir, "config.json"), config.ToJson());
        return run;
    }

    /// <summary>Continues the run saved in <paramref name="resumeDir"/>/checkpoint exactly where it stopped.</summary>
    public static TrainingRun Resume(string resumeDir, string? dataDir, string? outputDir, int? steps, TextWriter log, WorkerPool? pool = null)
    {
        string checkpoint = Path.Combine(resumeDir, "checkpoint");
        string statePath = Path.Combine(checkpoint, "state.json");
        if (!File.Exists(statePath))
        {
            throw new TrainingException($"{resumeDir}: no checkpoint to resume (expected {statePath}, written every checkpoint_interval steps)");
        }
        JsonNode state;
        try
        {
            state = JsonNode.Parse(File.ReadAllText(statePath)) ?? throw new JsonException("null");
        }
        catch (JsonException ex)
        {
            throw new TrainingException($"{statePath}: not valid JSON ({ex.Message}); the checkpoint is corrupt");
        }
        TrainingConfig config = TrainingConfig.Parse(state["config"]!.ToJsonString(), statePath + " \"config\"");
        if (steps is int s)
        {
            config = config with { Steps = s };
        }
        var run = new TrainingRun(config, dataDir ?? (string)state["data"]!, outputDir ?? resumeDir, log, pool);
        run.Step = (int)state["step"]!;
        run._cursor = (long)state["data_cursor"]!;
        run._chatCursor = (long?)state["chat_cursor"] ?? 0;
        run._optimizer.Step = (int)state["adam_step"]!;
        run._model.ActiveMtpHeads = (int)state["active_mtp_heads"]!;
        ReadFloats(Path.Combine(checkpoint, "parameters.bin"), run._model.Parameters);
        ReadFloats(Path.Combine(checkpoint, "adam_m.bin"), run._optimizer.M);
        ReadFloats(Path.Combine(checkpoint, "adam_v.bin"), run._optimizer.V);
        if (run._muon is not null)
        {
            ReadFloats(Path.Combine(checkpoint, "muon_momentum.bin"), run._muon.Buffer);
        }
        ReadFloats(Path.Combine(checkpoint, "router_bias.bin"), run._model.RouterBias);
        if (run._model.FindNonFiniteTensor(run._model.Parameters) is { } bad)
        {
            throw new TrainingException($"{checkpoint}: parameter \"{bad}\" holds a non-finite value; the checkpoint is corrupt");
        }
        log.WriteLine($"resumed {resumeDir} at step {run.Step} of {config.Steps}");
        return run;
    }

    private static void CheckVocabulary(string dataDir, int vocab)
    {
        if (!MimoTokenizer.Exists(dataDir))
        {
            return;
        }
        MimoTokenizer tokenizer;
        try
        {
            tokenizer = MimoTokenizer.Load(dataDir);
        }
        catch (Exception ex) when (ex is TokenizerException or JsonException or IOException)
        {
            throw new TrainingException($"{Path.Combine(dataDir, "tokenizer.json")}: cannot be loaded: {ex.Message}");
        }
        if (tokenizer.VocabularySize > vocab)
        {
            throw new TrainingException($"{Path.Combine(dataDir, "tokenizer.json")}: the tokenizer has {tokenizer.VocabularySize} ids but the model's vocab_size is {vocab}; set vocab_size to at least {tokenizer.VocabularySize}");
        }
    }

    /// <summary>Refuses, before allocating anything, a config whose buffers do not fit the memory this process may use.</summary>
    private static void CheckMemory(TrainingConfig config, TokenDataset train, TokenDataset? val, TokenDataset? chat)
    {
        var m = config.ModelConfig;
        long rows = (long)config.BatchSize * config.SequenceLength;
        long largest = Math.Max(rows * m.VocabSize, (long)config.BatchSize * Math.Max(m.NumAttentionHeads, m.SwaNumAttentionHeads) * config.SequenceLength * config.SequenceLength);
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (largest > Array.MaxLength)
        {
            throw new TrainingException($"{config.Source}: batch_size {config.BatchSize} x sequence_length {config.SequenceLength} needs an activation buffer of {largest} floats ({Gib(largest * 4)} GiB) alone, beyond one array; this machine has {Gib(available)} GiB. Reduce batch_size or sequence_length");
        }
        ParameterLayout layout;
        try
        {
            layout = new ParameterLayout(m, config.MtpHeads);
        }
        catch (ArgumentException ex)
        {
            throw new TrainingException($"{config.Source}: {ex.Message}");
        }
        long weights = 2L * layout.Length * 4; // parameters + gradients
        long optimizer = AdamW.StateBytes(layout) + (config.UsesMuon ? Muon.StateBytes(layout) : 0);
        long model = TrainingModel.EstimateBytes(m, config.MtpHeads, config.BatchSize, config.SequenceLength);
        long activations = model - weights;
        long data = 2L * (train.Tokens.Length + (val?.Tokens.Length ?? 0) + (chat?.Tokens.Length ?? 0));
        long total = model + optimizer + data;
        if (total > available * 0.85)
        {
            throw new TrainingException($"{config.Source}: training needs {Gib(total)} GiB (parameters + gradients {Gib(weights)}, {(config.UsesMuon ? "AdamW and Muon" : "AdamW")} state {Gib(optimizer)}, activations of batch_size {config.BatchSize} x sequence_length {config.SequenceLength} {Gib(activations)}, token data {Gib(data)}) but {Gib(available)} GiB is available; reduce batch_size / sequence_length or the model");
        }
    }

    private static string Gib(long bytes) => (bytes / (1024.0 * 1024 * 1024)).ToString("F2", CultureInfo.InvariantCulture);

    /// <summary>Runs until the config's last step (or <paramref name="stopAfter"/> more steps, or cancellation), then checkpoints and exports.</summary>
    public void Run(int? stopAfter = null, CancellationToken cancel = default)
    {
        int total = _config.Steps;
        int end = stopAfter is int n ? Math.Min(total, Step + n) : total;
        WarmupStableDecay schedule = _config.Schedule;
        int tokensPerStep = _config.BatchSize * _config.SequenceLength;
        var clock = Stopwatch.StartNew();
        double trainSeconds = 0, flops = 0;
        int stepsRun = 0;
        double recent = 0;
        _log.WriteLine($"training {_model.Layout.Length:N0} parameters ({_config.ModelConfig.NumHiddenLayers} layers, {_model.MtpHeads} MTP heads) on {_train.Tokens.Length:N0} tokens, batch {_config.BatchSize} x {_config.SequenceLength}, steps {Step}..{total}");
        while (Step < end && !cancel.IsCancellationRequested)
        {
            int heads = _config.ActiveHeadsAt(Step);
            if (heads > _model.ActiveMtpHeads)
            {
                for (int k = _model.ActiveMtpHeads; k < heads; k++)
                {
                    _model.CopyMtpHead(0, k);
                }
                _log.WriteLine($"step {Step}: MTP head 0 replicated to {heads} heads, trained jointly from now on");
            }
            _model.ActiveMtpHeads = heads;
            long started = Stopwatch.GetTimestamp();
            // The batch's first chatRows sequences come from the chat data, the rest from the corpus.
            int chatRows = _chat is null ? 0 : _config.ChatRowsAt(Step);
            int tps = _model.TokensPerSequence;
            if (chatRows > 0)
            {
                _chatCursor = Fill(_chat!, _chatCursor, chatRows, _batch.AsSpan(0, chatRows * tps));
            }
            if (chatRows < _config.BatchSize)
            {
                _cursor = Fill(_train, _cursor, _config.BatchSize - chatRows, _batch.AsSpan(chatRows * tps));
            }
            StepResult result = TrainingStep.Run(_model, _optimizer, _batch, schedule.At(Step), _config.MtpWeightAt(Step), _config.GradClip, _config.RouterBiasGamma, Step, _muon);
            double seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            trainSeconds += seconds;
            flops += _model.TrainingFlopsPerStep();
            stepsRun++;
            recent = stepsRun == 1 ? seconds : 0.9 * recent + 0.1 * seconds;
            Step++;
            if (Step % _config.LogInterval == 0 || Step == end || stepsRun == 1)
            {
                TimeSpan eta = TimeSpan.FromSeconds(recent * (total - Step));
                _log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"step {Step}/{total} | loss {result.Losses.Main:F4} | mtp {(heads > 0 ? result.Losses.Mtp.ToString("F4", CultureInfo.InvariantCulture) : "-")} ({heads} heads) | lr {result.LearningRate:E2} | |g| {result.GradientNorm:F2} | {tokensPerStep / recent:F0} tok/s | ETA {eta:hh\\:mm\\:ss}"));
                AppendMetrics(new JsonObject
                {
                    ["step"] = Step, ["loss"] = result.Losses.Main, ["mtp_loss"] = result.Losses.Mtp, ["mtp_heads"] = heads,
                    ["lr"] = result.LearningRate, ["grad_norm"] = result.GradientNorm, ["tokens_per_s"] = tokensPerStep / seconds,
                });
            }
            if (Step % _config.EvalInterval == 0 || Step == total)
            {
                Evaluate();
            }
            if (Step % _config.CheckpointInterval == 0 && Step < end)
            {
                SaveCheckpoint();
            }
        }
        if (stepsRun > 0)
        {
            TokensPerSecond = stepsRun * (double)tokensPerStep / trainSeconds;
            GflopsPerSecond = flops / trainSeconds / 1e9;
            _log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{stepsRun} steps in {clock.Elapsed.TotalSeconds:F1} s: {TokensPerSecond:F0} tokens/s, {GflopsPerSecond:F2} GFLOP/s"));
        }
        SaveCheckpoint();
    }

    /// <summary>The next <paramref name="rows"/> training sequences: shuffled windows (the cursor counts windows) or consecutive ones (it is a token offset).</summary>
    private long Fill(TokenDataset data, long cursor, int rows, Span<int> batch) => _config.Shuffle
        ? data.FillShuffled(cursor, rows, _config.SequenceLength, _model.TokensPerSequence, batch)
        : data.FillBatch(cursor, rows, _config.SequenceLength, _model.TokensPerSequence, batch);

    /// <summary>Mean held-out loss (main, MTP) over the first eval_batches batches of val.bin (and of chat-val.bin in the chat stage); null without val.bin.</summary>
    public StepLosses? Evaluate()
    {
        if (_val is null || _config.EvalBatches == 0)
        {
            return null;
        }
        StepLosses result = Evaluate(_val, "val");
        AppendMetrics(new JsonObject { ["step"] = Step, ["val_loss"] = result.Main, ["val_mtp_loss"] = result.Mtp });
        if (_chatVal is not null)
        {
            StepLosses chat = Evaluate(_chatVal, "chat val");
            AppendMetrics(new JsonObject { ["step"] = Step, ["chat_val_loss"] = chat.Main, ["chat_val_mtp_loss"] = chat.Mtp });
        }
        return result;
    }

    private StepLosses Evaluate(TokenDataset data, string name)
    {
        long cursor = 0;
        double main = 0, mtp = 0;
        int batches = 0;
        for (int i = 0; i < _config.EvalBatches; i++)
        {
            long next = data.FillBatch(cursor, _config.BatchSize, _config.SequenceLength, _model.TokensPerSequence, _batch);
            StepLosses l = _model.Forward(_batch, 0f, computeGradients: false);
            main += l.Main;
            mtp += l.Mtp;
            batches++;
            if (next == 0)
            {
                break;
            }
            cursor = next;
        }
        var result = new StepLosses((float)(main / batches), (float)(mtp / batches), 0);
        _log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"eval step {Step}: {name} loss {result.Main:F4} | {name} mtp {result.Mtp:F4} ({batches} batches)"));
        return result;
    }

    private void AppendMetrics(JsonObject entry) => File.AppendAllText(Path.Combine(_outputDir, "metrics.jsonl"), entry.ToJsonString() + "\n");

    /// <summary>Writes checkpoint/ (atomically: a new folder renamed over the old) and the HF export in model/.</summary>
    public void SaveCheckpoint()
    {
        Directory.CreateDirectory(_outputDir);
        string temp = CheckpointDirectory + ".tmp";
        if (Directory.Exists(temp))
        {
            Directory.Delete(temp, recursive: true);
        }
        Directory.CreateDirectory(temp);
        WriteFloats(Path.Combine(temp, "parameters.bin"), _model.Parameters);
        WriteFloats(Path.Combine(temp, "adam_m.bin"), _optimizer.M);
        WriteFloats(Path.Combine(temp, "adam_v.bin"), _optimizer.V);
        if (_muon is not null)
        {
            WriteFloats(Path.Combine(temp, "muon_momentum.bin"), _muon.Buffer);
        }
        WriteFloats(Path.Combine(temp, "router_bias.bin"), _model.RouterBias);
        var state = new JsonObject
        {
            ["step"] = Step,
            ["data_cursor"] = _cursor,
            ["chat_cursor"] = _chatCursor,
            ["adam_step"] = _optimizer.Step,
            ["active_mtp_heads"] = _model.ActiveMtpHeads,
            ["data"] = Path.GetFullPath(_dataDir),
            ["config"] = JsonNode.Parse(_config.ToJson()),
        };
        File.WriteAllText(Path.Combine(temp, "state.json"), state.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        string old = CheckpointDirectory + ".old";
        if (Directory.Exists(old))
        {
            Directory.Delete(old, recursive: true);
        }
        if (Directory.Exists(CheckpointDirectory))
        {
            Directory.Move(CheckpointDirectory, old);
        }
        Directory.Move(temp, CheckpointDirectory);
        if (Directory.Exists(old))
        {
            Directory.Delete(old, recursive: true);
        }
        HfExporter.Write(_model, ModelDirectory, _dataDir);
        _log.WriteLine($"step {Step}: checkpoint written to {CheckpointDirectory}, model to {ModelDirectory}");
    }

    private static void WriteFloats(string path, float[] values)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
    }

    private static void ReadFloats(string path, float[] values)
    {
        if (!File.Exists(path))
        {
            throw new TrainingException($"{path}: missing from the checkpoint");
        }
        long length = new FileInfo(path).Length;
        if (length != 4L * values.Length)
        {
            throw new TrainingException($"{path}: {length} bytes, expected {4L * values.Length} ({values.Length} floats for this config); the checkpoint is truncated or from another model");
        }
        using var stream = File.OpenRead(path);
        stream.ReadExactly(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
    }
}
