using System.Collections.Concurrent;
using MimoSharp.Tensors.Storage;
using MimoSharp.Models.Caching;
using MimoSharp.Models.Configuration;
using MimoSharp.Models.Layers;
using MimoSharp.Models.Loading;
using MimoSharp.Tensors;
using MimoSharp.Tensors.Kernels;
using MimoSharp.Tensors.Threading;

namespace MimoSharp.Models;

/// <summary>
/// MiMo-V2-Flash: the main decoder (spec §2) and its MTP heads (spec §3). Loading builds the layers
/// once from the checkpoint; <see cref="Forward"/> runs a batch of sequences, each at its own positions
/// with its own cache, and reads top to bottom: embed → (norm → attention → residual → norm → dense or
/// MoE → residual) per layer → final norm → lm_head.
/// The loaded model is immutable: weights and layers only. Every mutable thing a forward needs lives
/// in the caller's <see cref="ForwardWorkspace"/> (activations, batch layout, job objects) and in the
/// sequences' caches, so one model serves any number of executors on any threads. The overloads
/// without a workspace rent one from a small pool (no allocation once warm).
/// </summary>
public sealed class MimoModel : IDisposable
{
    private readonly Checkpoint? _checkpoint;
    private readonly WorkerPool _pool;

    private readonly KernelMode _kernels;

    /// <summary>The kernels' path and activation mode (Auto resolved).</summary>
    public KernelMode Kernels => _kernels;

    /// <summary>The kernels' thread pool.</summary>
    public WorkerPool Pool => _pool;

    /// <summary>Whether the weights were read into memory or are mapped from the files.</summary>
    public WeightResidency Residency { get; private init; } = WeightResidency.Map;
    private readonly bool _ownsPool;
    private readonly MimoWeights _w;
    private readonly AttentionLayer[] _attention;
    private readonly DenseFeedForward?[] _dense;
    private readonly MoeFeedForward?[] _moe;
    private readonly AttentionLayer[] _mtpAttention;
    private readonly DenseFeedForward[] _mtpMlp;
    private readonly ConcurrentBag<ForwardWorkspace> _spareWorkspaces = [];
    private readonly bool _checkActivations;

    public MimoConfig Config { get; }
    public MimoDerivedConfig Derived { get; }
    public MimoWeights Weights => _w;
    public int MtpHeads => _w.MtpHeads.Length;
    public int VocabSize => Config.VocabSize;
    public int HiddenSize => Config.HiddenSize;
    public string? Directory => _checkpoint?.Directory;

    public MimoModel(MimoConfig config, MimoWeights weights, ModelLoadOptions? options = null, Checkpoint? checkpoint = null)
    {
        options ??= new ModelLoadOptions();
        Config = config;
        Derived = config.Derived.WithWindowConvention(options.WindowConvention);
        _w = weights;
        _checkpoint = checkpoint;
        _ownsPool = options.Threads is not null;
        _pool = options.Threads is int threads ? new WorkerPool(threads) : WorkerPool.Shared;
        _kernels = options.Kernels with { Isa = options.Kernels.ResolvedIsa };
        _checkActivations = options.CheckActivations;

        int layers = config.NumHiddenLayers;
        _attention = new AttentionLayer[layers];
        _dense = new DenseFeedForward?[layers];
        _moe = new MoeFeedForward?[layers];
        for (int i = 0; i < layers; i++)
        {
            int layer = i;
            DecoderLayerWeights lw = weights.Layers[i];
            _attention[i] = new AttentionLayer(lw.Attention with { Geometry = Derived.Attention(i) }, Derived.ValueScale, c => c.Layer(layer), _pool, _kernels);
            if (lw.Moe is { } moe)
            {
                _moe[i] = new MoeFeedForward(moe, config.NumExpertsPerTok, Derived.ExpertGroups, Derived.TopkGroups,
                    config.NormTopkProb, Derived.RoutedScalingFactor, _pool, _kernels);
            }
            else
            {
                _dense[i] = new DenseFeedForward(lw.Mlp!, _pool, _kernels);
            }
        }
        _mtpAttention = new AttentionLayer[MtpHeads];
        _mtpMlp = new DenseFeedForward[MtpHeads];
        for (int k = 0; k < MtpHeads; k++)
        {
            int head = k;
            MtpHeadWeights hw = weights.MtpHeads[k];
            _mtpAttention[k] = new AttentionLayer(hw.Attention with { Geometry = Derived.Sliding }, Derived.ValueScale, c => c.Mtp(head), _pool, _kernels);
            _mtpMlp[k] = new DenseFeedForward(hw.Mlp, _pool, _kernels);
        }
    }

    /// <summary>Opens config.json and the safetensors weights of <paramref name="directory"/> and checks every tensor against the config.</summary>
    public static MimoModel Load(string directory, ModelLoadOptions? options = null)
    {
        MimoConfig config = MimoConfig.Load(directory);
        // Decode touches every active weight per token: private huge-page memory beats the page cache's
        // 4 KiB pages (measured 1.5x on FP8 matrix-vector products), so read the checkpoint when it fits
        // comfortably; a larger one is mapped, and not prefaulted, since touching it all would evict itself.
        long fileBytes = Checkpoint.FileBytes(directory);
        bool fits = fileBytes < GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 2;
        WeightResidency residency = options?.Residency ?? WeightResidency.Auto;
        bool read = residency == WeightResidency.Read || (residency == WeightResidency.Auto && fits);
        Checkpoint checkpoint = Checkpoint.Open(directory, read);
        try
        {
            if (options?.CheckTensors == true)
            {
                TensorScanner.ThrowIfCorrupt(checkpoint);
            }
            MimoWeights weights = MimoWeights.Load(checkpoint, config, config.Derived);
            var model = new MimoModel(config, weights, options, checkpoint) { Residency = read ? WeightResidency.Read : WeightResidency.Map };
            if (!read && (options?.Prefault ?? true) && fits)
            {
                foreach (SafetensorsFile file in checkpoint.Files)
                {
                    ((MappedFile)file.Storage).Prefault(model._pool);
                }
            }
            return model;
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A cache for one sequence. <paramref name="reserve"/>: positions a sliding layer can give back
    /// (speculative drafts); <paramref name="positionLimit"/>: global layers never grow beyond it (0: no limit).
    /// </summary>
    public SequenceKvCache CreateCache(int reserve = 64, int initialCapacity = 256, int positionLimit = 0) =>
        new(Derived, MtpHeads, reserve, initialCapacity, positionLimit);

    /// <summary>Bytes of weights one decoded token reads (attention, active experts, dense layers, embedding row, lm_head).</summary>
    public long WeightBytesPerToken
    {
        get
        {
            long bytes = _w.LmHead.BytesRead + _w.Embedding.RowStrideBytes;
            for (int i = 0; i < _attention.Length; i++)
            {
                bytes += _attention[i].BytesRead + (_moe[i]?.BytesReadPerToken ?? _dense[i]!.BytesRead);
            }
            return bytes;
        }
    }

    /// <summary>Rows of logits that <paramref name="inputs"/> ask for.</summary>
    public static int CountLogitRows(ReadOnlySpan<SequenceInput> inputs)
    {
        int rows = 0;
        foreach (SequenceInput input in inputs)
        {
            rows += LogitRowCount(input.Logits, input.Tokens.Length);
        }
        return rows;
    }

    private static int LogitRowCount(LogitRows mode, int tokens) => mode switch
    {
        LogitRows.All => tokens,
        LogitRows.Last => tokens > 0 ? 1 : 0,
        _ => 0,
    };

    /// <summary>
    /// Runs the new tokens of every input through the main model, appending them to their caches.
    /// <paramref name="hidden"/> [rows, H] receives each row's last-layer residual before the final norm
    /// (what the MTP heads consume); <paramref name="logits"/> [logit rows, vocab] the logits of the rows
    /// the inputs ask for, in input order.
    /// </summary>
    public void Forward(ReadOnlySpan<SequenceInput> inputs, Span<float> hidden, Span<float> logits)
    {
        ForwardWorkspace ws = RentWorkspace();
        try
        {
            Forward(ws, inputs, hidden, logits);
        }
        finally
        {
            _spareWorkspaces.Add(ws);
        }
    }

    /// <inheritdoc cref="Forward(ReadOnlySpan{SequenceInput}, Span{float}, Span{float})"/>
    /// <param name="ws">The caller's run state; one forward at a time per workspace.</param>
    public void Forward(ForwardWorkspace ws, ReadOnlySpan<SequenceInput> inputs, Span<float> hidden, Span<float> logits)
    {
        int h = HiddenSize;
        int rows = BuildLayout(ws.Layout, inputs);
        CheckOutputs(rows, CountLogitRows(inputs), hidden, logits);

        Span<float> x = ws.Floats("x", rows * h);
        for (int s = 0, r = 0; s < inputs.Length; s++)
        {
            foreach (int token in inputs[s].Tokens.Span)
            {
                _w.Embedding.DequantizeRow(token, x.Slice(r++ * h, h));
            }
        }
        Guard(x, Sublayer.Embedding, -1);

        Span<float> normed = ws.Floats("normed", rows * h);
        Span<float> delta = ws.Floats("delta", rows * h);
        // Each residual add is fused with the RMSNorm that follows it (the next sublayer's input norm).
        RmsNormRows(x, _w.Layers[0].InputNorm, normed, rows);
        for (int i = 0; i < _attention.Length; i++)
        {
            DecoderLayerWeights lw = _w.Layers[i];
            _attention[i].Forward(ws.Layout, normed, delta, ws);
            Guard(delta, Sublayer.Attention, i);
            AddRmsNormRows(delta, x, lw.PostAttentionNorm, normed, rows);
            if (_moe[i] is { } moe)
            {
                moe.Forward(normed, delta, rows, ws);
            }
            else
            {
                _dense[i]!.Forward(normed, delta, rows, ws);
            }
            Guard(delta, Sublayer.FeedForward, i);
            if (i + 1 < _attention.Length)
            {
                AddRmsNormRows(delta, x, _w.Layers[i + 1].InputNorm, normed, rows);
            }
            else
            {
                VectorMath.Add(delta, x, _kernels.Isa);
            }
        }
        if (!hidden.IsEmpty)
        {
            x.CopyTo(hidden);
        }
        ProjectLogits(ws, x, _w.FinalNorm, logits);
        Guard(logits[..(CountLogitRows(inputs) * VocabSize)], Sublayer.LmHead, -1);
    }

    private ForwardWorkspace RentWorkspace() => _spareWorkspaces.TryTake(out ForwardWorkspace? ws) ? ws : new ForwardWorkspace();

    /// <summary>
    /// Runs MTP head <paramref name="head"/> over rows of (token, main hidden) pairs, appending them to
    /// the head's cache of each sequence, and writes logits of the rows the inputs ask for.
    /// </summary>
    public void ForwardMtp(int head, ReadOnlySpan<MtpInput> inputs, Span<float> logits)
    {
        ForwardWorkspace ws = RentWorkspace();
        try
        {
            ForwardMtp(ws, head, inputs, logits);
        }
        finally
        {
            _spareWorkspaces.Add(ws);
        }
    }

    /// <inheritdoc cref="ForwardMtp(int, ReadOnlySpan{MtpInput}, Span{float})"/>
    /// <param name="ws">The caller's run state; one forward at a time per workspace.</param>
    public void ForwardMtp(ForwardWorkspace ws, int head, ReadOnlySpan<MtpInput> inputs, Span<float> logits)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(head);
        if (head >= MtpHeads)
        {
            throw new ArgumentOutOfRangeException(nameof(head), $"MTP head {head} requested but the checkpoint has {MtpHeads}");
        }
        int h = HiddenSize;
        MtpHeadWeights hw = _w.MtpHeads[head];
        BatchLayout layout = ws.Layout;
        layout.Clear();
        int logitRows = 0;
        foreach (MtpInput input in inputs)
        {
            if (input.MainHidden.Length != input.Tokens.Length * h)
            {
                throw new ArgumentException($"MTP input has {input.Tokens.Length} tokens but {input.MainHidden.Length} hidden values; expected {input.Tokens.Length * h}");
            }
            CheckTokens(input.Tokens.Span);
            layout.Add(input.Cache, input.Cache.Mtp(head).Length, input.Tokens.Length, input.Logits);
            logitRows += LogitRowCount(input.Logits, input.Tokens.Length);
        }
        int rows = layout.Rows;
        CheckOutputs(rows, logitRows, default, logits);

        // z = eh_proj · [enorm(E[token]); hnorm(h_main)]   (concat order [embedding, hidden])
        Span<float> fused = ws.Floats("mtp.concat", rows * 2 * h);
        Span<float> embedded = ws.Floats("mtp.embed", h);
        for (int s = 0, r = 0; s < inputs.Length; s++)
        {
            ReadOnlySpan<int> tokens = inputs[s].Tokens.Span;
            ReadOnlySpan<float> mainHidden = inputs[s].MainHidden.Span;
            for (int t = 0; t < tokens.Length; t++, r++)
            {
                _w.Embedding.DequantizeRow(tokens[t], embedded);
                VectorMath.RmsNorm(embedded, hw.EmbeddingNorm, Derived.RmsNormEps, fused.Slice(r * 2 * h, h), _kernels.Isa);
                VectorMath.RmsNorm(mainHidden.Slice(t * h, h), hw.HiddenNorm, Derived.RmsNormEps, fused.Slice(r * 2 * h + h, h), _kernels.Isa);
            }
        }
        Span<float> z = ws.Floats("mtp.z", rows * h);
        MatMul.Multiply(hw.EhProj, fused, z, rows, _pool, _kernels);

        Span<float> normed = ws.Floats("normed", rows * h);
        Span<float> delta = ws.Floats("delta", rows * h);
        RmsNormRows(z, hw.InputNorm, normed, rows);
        _mtpAttention[head].Forward(layout, normed, delta, ws);
        Guard(delta, Sublayer.Attention, head, mtp: true);
        VectorMath.Add(delta, z, _kernels.Isa);
        RmsNormRows(z, hw.PreMlpNorm, normed, rows);
        _mtpMlp[head].Forward(normed, delta, rows, ws);
        Guard(delta, Sublayer.FeedForward, head, mtp: true);
        VectorMath.Add(delta, z, _kernels.Isa);
        ProjectLogits(ws, z, hw.FinalNorm, logits);
        Guard(logits[..(logitRows * VocabSize)], Sublayer.LmHead, head, mtp: true);
    }

    private int BuildLayout(BatchLayout layout, ReadOnlySpan<SequenceInput> inputs)
    {
        layout.Clear();
        foreach (SequenceInput input in inputs)
        {
            CheckTokens(input.Tokens.Span);
            if (input.Cache.MtpHeads != MtpHeads)
            {
                throw new ArgumentException($"cache was made for {input.Cache.MtpHeads} MTP heads, the model has {MtpHeads}; create it with CreateCache");
            }
            if (input.Cache.Length + input.Tokens.Length > Config.MaxPositionEmbeddings && Config.MaxPositionEmbeddings > 0)
            {
                throw new ArgumentException(
                    $"sequence would reach {input.Cache.Length + input.Tokens.Length} positions, beyond max_position_embeddings {Config.MaxPositionEmbeddings}");
            }
            layout.Add(input.Cache, input.Cache.Length, input.Tokens.Length, input.Logits);
        }
        return layout.Rows;
    }

    private void CheckTokens(ReadOnlySpan<int> tokens)
    {
        foreach (int token in tokens)
        {
            if ((uint)token >= (uint)VocabSize)
            {
                throw new ArgumentException($"token id {token} is outside the vocabulary [0, {VocabSize})");
            }
        }
    }

    private void CheckOutputs(int rows, int logitRows, Span<float> hidden, Span<float> logits)
    {
        if (!hidden.IsEmpty && hidden.Length < rows * HiddenSize)
        {
            throw new ArgumentException($"hidden output holds {hidden.Length} floats; {rows} rows need {rows * HiddenSize}");
        }
        if (logits.Length < (long)logitRows * VocabSize)
        {
            throw new ArgumentException($"logits output holds {logits.Length} floats; {logitRows} rows need {(long)logitRows * VocabSize}");
        }
    }

    /// <summary>Stops at the first non-finite sublayer output (see <see cref="ActivationGuard"/>); the rows of this forward only.</summary>
    private void Guard(ReadOnlySpan<float> values, Sublayer sublayer, int layer, bool mtp = false)
    {
        if (_checkActivations)
        {
            ActivationGuard.Check(values, sublayer == Sublayer.LmHead ? VocabSize : HiddenSize, sublayer, layer, mtp);
        }
    }

    /// <summary>x += delta and y = RmsNorm(x), row by row.</summary>
    private void AddRmsNormRows(ReadOnlySpan<float> delta, Span<float> x, float[] weight, Span<float> y, int rows)
    {
        int h = HiddenSize;
        for (int r = 0; r < rows; r++)
        {
            VectorMath.AddRmsNorm(delta.Slice(r * h, h), x.Slice(r * h, h), weight, Derived.RmsNormEps, y.Slice(r * h, h), _kernels.Isa);
        }
    }

    private void RmsNormRows(ReadOnlySpan<float> x, float[] weight, Span<float> y, int rows)
    {
        int h = HiddenSize;
        for (int r = 0; r < rows; r++)
        {
            VectorMath.RmsNorm(x.Slice(r * h, h), weight, Derived.RmsNormEps, y.Slice(r * h, h), _kernels.Isa);
        }
    }

    /// <summary>logits of the selected rows = lm_head · RMSNorm(x_row).</summary>
    private void ProjectLogits(ForwardWorkspace ws, ReadOnlySpan<float> x, float[] norm, Span<float> logits)
    {
        int h = HiddenSize;
        BatchLayout layout = ws.Layout;
        Span<float> selected = ws.Floats("logits.in", layout.Rows * h);
        int count = 0;
        for (int s = 0, row = 0; s < layout.Segments; s++)
        {
            LogitRows mode = layout.Logits(s);
            int tokens = layout.RowCount(s);
            int first = mode == LogitRows.Last ? tokens - 1 : mode == LogitRows.All ? 0 : tokens;
            for (int t = first; t < tokens; t++)
            {
                VectorMath.RmsNorm(x.Slice((row + t) * h, h), norm, Derived.RmsNormEps, selected.Slice(count++ * h, h), _kernels.Isa);
            }
            row += tokens;
        }
        MatMul.Multiply(_w.LmHead, selected[..(count * h)], logits, count, _pool, _kernels);
    }

    public void Dispose()
    {
        _checkpoint?.Dispose();
        if (_ownsPool)
        {
            _pool.Dispose();
        }
    }
}
