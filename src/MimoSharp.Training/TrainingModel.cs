using MimoSharp.Models.Configuration;
using MimoSharp.Models.Loading;
using MimoSharp.Tensors.Threading;
using MimoSharp.Training.Ops;

namespace MimoSharp.Training;

/// <summary>Losses of one forward: the main model's mean cross-entropy and the mean over active MTP heads.</summary>
public readonly record struct StepLosses(float Main, float Mtp, float Total);

/// <summary>
/// The trainable MiMo-V2-Flash model, in llm.c's manner: fp32 master weights in one flat buffer
/// (<see cref="Parameters"/>, layout <see cref="Layout"/>), gradients in another of the same layout,
/// every activation the backward needs saved in buffers allocated once for a fixed batch
/// [<see cref="Batch"/>, <see cref="Sequence"/>]. A forward reads tokens [B, T + 1 + MTP heads]: row
/// (b, t) embeds token t and predicts t + 1; MTP head k at row t embeds token t + k + 1, reads the main
/// model's pre-norm hidden h_t and predicts token t + k + 2 (spec §3.2). The loss is
/// main + λ · mean over active heads; gradients are exact for it. Nothing is allocated per step.
/// </summary>
public sealed partial class TrainingModel
{
    private readonly WorkerPool _pool;
    private readonly Gemm _gemm = new();
    private readonly CrossEntropyJob _crossEntropy;
    private readonly bool _sizeOnly;
    private long _plannedFloats;

    public MimoConfig Config { get; }
    public MimoDerivedConfig Derived { get; }
    public ParameterLayout Layout { get; }
    public int Batch { get; }
    public int Sequence { get; }
    public int Rows => Batch * Sequence;
    /// <summary>MTP heads in the layout (the checkpoint's count).</summary>
    public int MtpHeads => Layout.MtpHeads;
    /// <summary>Heads trained and evaluated now (the seed's schedule: 1 in pre-training, then all).</summary>
    public int ActiveMtpHeads { get; set; }
    public int TokensPerSequence => Sequence + 1 + MtpHeads;

    public float[] Parameters { get; }
    public float[] Gradients { get; }
    /// <summary>Per MoE layer the correction bias [experts] (selection only; updated from the load, not by gradient).</summary>
    public float[] RouterBias { get; }
    /// <summary>Tokens routed to each expert of each MoE layer in the last forward [layers × experts] (dense layers: zeros).</summary>
    public int[] ExpertLoad { get; }

    /// <summary>Bytes of every buffer the model allocates (parameters, gradients, activations, scratch), excluding optimizer state.</summary>
    public long PlannedBytes => _plannedFloats * 4;

    private readonly BlockParams[] _layers;
    private readonly BlockActs[] _layerActs;
    private readonly MtpParams[] _mtp;
    private readonly BlockActs _mtpActs;
    private readonly Scratch _scratch;
    private readonly int _embedding, _finalNorm, _lmHead;

    // Main-model buffers: embedded input is _layerActs[0].X; the final hidden (pre-norm) is _finalHidden.
    private readonly float[] _finalHidden, _finalNormed, _finalRstd, _logits, _dHidden;
    // MTP head input fusion.
    private readonly float[] _mtpEmbedded, _mtpConcat, _mtpEmbRstd, _mtpHidRstd, _mtpFinalNormed, _mtpFinalRstd;
    private readonly int[] _inputTokens, _mtpTokens, _targets;

    public TrainingModel(MimoConfig config, int mtpHeads, int batch, int sequence, WorkerPool? pool = null)
        : this(config, mtpHeads, batch, sequence, pool, sizeOnly: false)
    {
    }

    /// <summary>Bytes a model of this shape would allocate, computed without allocating it (to refuse a config that does not fit before starting).</summary>
    public static long EstimateBytes(MimoConfig config, int mtpHeads, int batch, int sequence) =>
        new TrainingModel(config, mtpHeads, batch, sequence, null, sizeOnly: true).PlannedBytes;

    private TrainingModel(MimoConfig config, int mtpHeads, int batch, int sequence, WorkerPool? pool, bool sizeOnly)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batch);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sequence);
        ArgumentOutOfRangeException.ThrowIfNegative(mtpHeads);
        _sizeOnly = sizeOnly;
        _pool = pool ?? WorkerPool.Shared;
        Config = config;
        Derived = config.Derived;
        Layout = new ParameterLayout(config, mtpHeads);
        Batch = batch;
        Sequence = sequence;
        ActiveMtpHeads = mtpHeads;
        int n = Rows, h = config.HiddenSize;

        Parameters = Floats(Layout.Length);
        Gradients = Floats(Layout.Length);
        RouterBias = Floats(Layout.RouterBiasLength);
        ExpertLoad = new int[config.NumHiddenLayers * Math.Max(1, config.NRoutedExperts)];
        _embedding = Layout["model.embed_tokens.weight"].Offset;
        _finalNorm = Layout["model.norm.weight"].Offset;
        _lmHead = Layout["lm_head.weight"].Offset;

        _layers = new BlockParams[config.NumHiddenLayers];
        _layerActs = new BlockActs[config.NumHiddenLayers];
        int biasOffset = 0;
        float[]? previousOut = null;
        for (int i = 0; i < _layers.Length; i++)
        {
            string p = $"model.layers.{i}";
            AttentionGeometry g = Derived.Attention(i);
            MoeParams? moe = null;
            MlpParams? mlp = null;
            if (Derived.IsMoeLayer[i])
            {
                var experts = new MlpParams[config.NRoutedExperts];
                for (int e = 0; e < experts.Length; e++)
                {
                    experts[e] = Mlp($"{p}.mlp.experts.{e}", config.MoeIntermediateSize);
                }
                moe = new MoeParams(Layout[$"{p}.mlp.gate.weight"].Offset, experts, biasOffset);
                biasOffset += config.NRoutedExperts;
            }
            else
            {
                mlp = Mlp($"{p}.mlp", config.IntermediateSize);
            }
            _layers[i] = new BlockParams(Layout[$"{p}.input_layernorm.weight"].Offset, Layout[$"{p}.post_attention_layernorm.weight"].Offset,
                Attention($"{p}.self_attn", g), mlp, moe, $"layer {i}");
            _layerActs[i] = NewActs(_layers[i], previousOut, $"model.layers.{i}");
            previousOut = _layerActs[i].Out;
        }
        _finalHidden = previousOut!;
        _finalNormed = Floats(n * h);
        _finalRstd = Floats(n);
        _logits = Floats((long)n * config.VocabSize);
        _dHidden = Floats(n * h);

        _mtp = new MtpParams[mtpHeads];
        for (int k = 0; k < mtpHeads; k++)
        {
            string p = $"model.mtp.layers.{k}";
            var block = new BlockParams(Layout[$"{p}.input_layernorm.weight"].Offset, Layout[$"{p}.pre_mlp_layernorm.weight"].Offset,
                Attention($"{p}.self_attn", Derived.Sliding), Mlp($"{p}.mlp", config.IntermediateSize), null, $"MTP head {k}");
            _mtp[k] = new MtpParams(Layout[$"{p}.enorm.weight"].Offset, Layout[$"{p}.hnorm.weight"].Offset, Layout[$"{p}.eh_proj.weight"].Offset,
                Layout[$"{p}.final_layernorm.weight"].Offset, block);
        }
        _mtpActs = mtpHeads > 0 ? NewActs(_mtp[0].Block, null, "model.mtp") : null!;
        _mtpEmbedded = Floats(mtpHeads > 0 ? n * h : 0);
        _mtpConcat = Floats(mtpHeads > 0 ? n * 2 * h : 0);
        _mtpEmbRstd = Floats(mtpHeads > 0 ? n : 0);
        _mtpHidRstd = Floats(mtpHeads > 0 ? n : 0);
        _mtpFinalNormed = Floats(mtpHeads > 0 ? n * h : 0);
        _mtpFinalRstd = Floats(mtpHeads > 0 ? n : 0);
        _inputTokens = new int[n];
        _mtpTokens = new int[n];
        _targets = new int[n];
        _scratch = new Scratch(this);
        _crossEntropy = new CrossEntropyJob();
    }

    private MlpParams Mlp(string prefix, int width) => new(
        Layout[$"{prefix}.gate_proj.weight"].Offset, Layout[$"{prefix}.up_proj.weight"].Offset, Layout[$"{prefix}.down_proj.weight"].Offset, width);

    private AttnParams Attention(string prefix, AttentionGeometry g)
    {
        string sink = $"{prefix}.attention_sink_bias";
        return new AttnParams(Layout[$"{prefix}.q_proj.weight"].Offset, Layout[$"{prefix}.k_proj.weight"].Offset,
            Layout[$"{prefix}.v_proj.weight"].Offset, Layout[$"{prefix}.o_proj.weight"].Offset,
            g.HasSinkBias ? Layout[sink].Offset : -1, g, _sizeOnly ? null! : new AttentionOp(g, Batch, Sequence));
    }

    /// <summary>A buffer of the plan; with <see cref="_sizeOnly"/> only counted.</summary>
    private float[] Floats(long length)
    {
        _plannedFloats += length;
        if (_sizeOnly)
        {
            return [];
        }
        if (length > Array.MaxLength)
        {
            throw new ArgumentException($"a training buffer of {length} floats exceeds .NET's array limit; use a smaller batch or sequence length");
        }
        return new float[length];
    }

    private int[] Ints(long length)
    {
        _plannedFloats += length;
        return _sizeOnly ? [] : new int[length];
    }

    private BlockActs NewActs(BlockParams p, float[]? input, string name)
    {
        int n = Rows, h = Config.HiddenSize;
        AttentionGeometry g = p.Attn.G;
        var a = new BlockActs
        {
            Name = name,
            X = input ?? Floats(n * h),
            A = Floats(n * h),
            R1 = Floats(n),
            Q = Floats(n * g.QueryWidth),
            K = Floats(n * g.KeyWidth),
            V = Floats(n * g.ValueWidth),
            P = Floats(AttentionOp.ProbabilityLength(g, Batch, Sequence)),
            PSink = Floats((long)Batch * g.QueryHeads * Sequence),
            O = Floats(n * g.OutputWidth),
            XM = Floats(n * h),
            M = Floats(n * h),
            R2 = Floats(n),
            Out = Floats(n * h),
        };
        if (p.Mlp is { } mlp)
        {
            a.G = Floats(n * mlp.Width);
            a.U = Floats(n * mlp.Width);
            a.H = Floats(n * mlp.Width);
        }
        if (p.Moe is { } moe)
        {
            int e = moe.Experts.Length, k = Config.NumExpertsPerTok, width = Config.MoeIntermediateSize;
            a.RouterLogits = Floats(n * e);
            a.Scores = Floats(n * e);
            a.Selected = Ints(n * k);
            a.Weights = Floats(n * k);
            a.Order = Ints(n * k);
            a.Counts = Ints(e + 1);
            a.ExpertIn = Floats((long)n * k * h);
            a.G = Floats((long)n * k * width);
            a.U = Floats((long)n * k * width);
            a.H = Floats((long)n * k * width);
            a.ExpertOut = Floats((long)n * k * h);
        }
        return a;
    }

    /// <summary>Random initial weights: N(0, initializer_range) matrices, output projections (o_proj, down_proj) scaled by 1/√(2·layers) as GPT-2, norms 1, sinks 0, correction biases 0.</summary>
    public void Initialize(ulong seed)
    {
        var random = new Gaussian(seed);
        float std = (float)Config.InitializerRange;
        float residualStd = std / MathF.Sqrt(2f * Config.NumHiddenLayers);
        foreach (ParameterTensor t in Layout.Tensors)
        {
            Span<float> w = Parameters.AsSpan(t.Offset, t.Length);
            switch (t.Role)
            {
                case TensorRole.Norm:
                    w.Fill(1f);
                    break;
                case TensorRole.SinkBias:
                    w.Clear();
                    break;
                default:
                    float s = t.Name.EndsWith("o_proj.weight", StringComparison.Ordinal) || t.Name.EndsWith("down_proj.weight", StringComparison.Ordinal) ? residualStd : std;
                    for (int i = 0; i < w.Length; i++)
                    {
                        w[i] = s * random.Next();
                    }
                    break;
            }
        }
        RouterBias.AsSpan().Clear();
    }

    /// <summary>Copies MTP head <paramref name="from"/>'s weights onto head <paramref name="to"/> (the seed's 1 → 3 head replication).</summary>
    public void CopyMtpHead(int from, int to)
    {
        string source = $"model.mtp.layers.{from}.", target = $"model.mtp.layers.{to}.";
        foreach (ParameterTensor t in Layout.Tensors)
        {
            if (t.Name.StartsWith(target, StringComparison.Ordinal))
            {
                ParameterTensor s = Layout[source + t.Name[target.Length..]];
                Parameters.AsSpan(s.Offset, s.Length).CopyTo(Parameters.AsSpan(t.Offset, t.Length));
            }
        }
    }

    /// <summary>
    /// Runs the model on tokens [B, <see cref="TokensPerSequence"/>] and returns the losses; with
    /// <paramref name="computeGradients"/>, zeroes <see cref="Gradients"/> and fills it with the gradient of
    /// Total = Main + <paramref name="mtpWeight"/> · Mtp. <paramref name="logits"/>, if given, receives the
    /// main logits [B·T, vocab] then those of each active head (no gradients then).
    /// </summary>
    public StepLosses Forward(ReadOnlySpan<int> tokens, float mtpWeight, bool computeGradients, float[]? logits = null)
    {
        int n = Rows, h = Config.HiddenSize, vocab = Config.VocabSize, tps = TokensPerSequence;
        if (tokens.Length != Batch * tps)
        {
            throw new ArgumentException($"expected {Batch} x {tps} tokens, got {tokens.Length}");
        }
        foreach (int token in tokens)
        {
            if ((uint)token >= (uint)vocab)
            {
                throw new ArgumentException($"token id {token} is outside the model's vocabulary [0, {vocab})");
            }
        }
        if (logits is not null && computeGradients)
        {
            throw new ArgumentException("logits are returned by a forward without gradients");
        }
        if (computeGradients)
        {
            Gradients.AsSpan().Clear();
        }
        int heads = Math.Min(ActiveMtpHeads, MtpHeads);
        Array.Clear(ExpertLoad);

        // Embedding.
        float[] x0 = _layerActs[0].X;
        for (int b = 0; b < Batch; b++)
        {
            for (int t = 0; t < Sequence; t++)
            {
                int row = b * Sequence + t;
                _inputTokens[row] = tokens[b * tps + t];
                _targets[row] = tokens[b * tps + t + 1];
                Parameters.AsSpan(_embedding + _inputTokens[row] * h, h).CopyTo(x0.AsSpan(row * h, h));
            }
        }
        for (int i = 0; i < _layers.Length; i++)
        {
            BlockForward(_layers[i], _layerActs[i], i);
        }

        // Final norm, lm_head, cross-entropy (its backward runs now: the logits buffer is shared with the heads).
        for (int r = 0; r < n; r++)
        {
            _finalRstd[r] = RowOps.RmsNormForward(_finalHidden.AsSpan(r * h, h), Parameters.AsSpan(_finalNorm, h), Derived.RmsNormEps, _finalNormed.AsSpan(r * h, h));
        }
        float mainLoss = LmHeadLoss(_finalNormed, computeGradients ? 1f / n : 0f, logits, 0);
        if (computeGradients)
        {
            _dHidden.AsSpan().Clear();
            float[] dNormed = _scratch.DNormed;
            LinearBackwardInput(_logits, 0, _lmHead, dNormed, 0, n, vocab, h, accumulate: false);
            LinearBackwardWeight(_logits, 0, _finalNormed, 0, _lmHead, n, vocab, h);
            for (int r = 0; r < n; r++)
            {
                RowOps.RmsNormBackward(dNormed.AsSpan(r * h, h), _finalHidden.AsSpan(r * h, h), Parameters.AsSpan(_finalNorm, h), _finalRstd[r],
                    _dHidden.AsSpan(r * h, h), Gradients.AsSpan(_finalNorm, h));
            }
        }

        // MTP heads: each runs forward and, with gradients, its whole backward (adding to dHidden and the embedding).
        float mtpLoss = 0;
        for (int k = 0; k < heads; k++)
        {
            float headLoss = MtpHead(k, tokens, computeGradients ? mtpWeight / (heads * n) : 0f, logits, (1 + k) * (long)n * vocab);
            mtpLoss += headLoss / heads;
        }

        if (computeGradients)
        {
            // Back through the trunk; _dHidden becomes the gradient of each layer's input in turn.
            for (int i = _layers.Length - 1; i >= 0; i--)
            {
                BlockBackward(_layers[i], _layerActs[i], _dHidden);
            }
            for (int r = 0; r < n; r++)
            {
                Gemm.Axpy(1f, _dHidden.AsSpan(r * h, h), Gradients.AsSpan(_embedding + _inputTokens[r] * h, h));
            }
        }
        return new StepLosses(mainLoss, mtpLoss, mainLoss + (heads > 0 ? mtpWeight * mtpLoss : 0f));
    }

    /// <summary>One MTP head k: returns its mean loss; with gradScale ≠ 0 runs its backward too.</summary>
    private float MtpHead(int k, ReadOnlySpan<int> tokens, float gradScale, float[]? logitsOut, long logitsOffset)
    {
        int n = Rows, h = Config.HiddenSize, vocab = Config.VocabSize, tps = TokensPerSequence;
        float eps = Derived.RmsNormEps;
        MtpParams p = _mtp[k];
        BlockActs a = _mtpActs;
        for (int b = 0; b < Batch; b++)
        {
            for (int t = 0; t < Sequence; t++)
            {
                int row = b * Sequence + t;
                _mtpTokens[row] = tokens[b * tps + t + k + 1];
                _targets[row] = tokens[b * tps + t + k + 2];
                Span<float> emb = _mtpEmbedded.AsSpan(row * h, h);
                Parameters.AsSpan(_embedding + _mtpTokens[row] * h, h).CopyTo(emb);
                // concat order [enorm(E[token]); hnorm(h_main)] (spec §3.1)
                _mtpEmbRstd[row] = RowOps.RmsNormForward(emb, Parameters.AsSpan(p.EmbeddingNorm, h), eps, _mtpConcat.AsSpan(row * 2 * h, h));
                _mtpHidRstd[row] = RowOps.RmsNormForward(_finalHidden.AsSpan(row * h, h), Parameters.AsSpan(p.HiddenNorm, h), eps, _mtpConcat.AsSpan(row * 2 * h + h, h));
            }
        }
        LinearForward(_mtpConcat, 0, p.EhProj, a.X, 0, n, h, 2 * h);
        BlockForward(p.Block, a, -1);
        for (int r = 0; r < n; r++)
        {
            _mtpFinalRstd[r] = RowOps.RmsNormForward(a.Out.AsSpan(r * h, h), Parameters.AsSpan(p.FinalNorm, h), eps, _mtpFinalNormed.AsSpan(r * h, h));
        }
        float loss = LmHeadLoss(_mtpFinalNormed, gradScale, logitsOut, logitsOffset);
        if (gradScale == 0)
        {
            return loss;
        }

        float[] dNormed = _scratch.DNormed;
        LinearBackwardInput(_logits, 0, _lmHead, dNormed, 0, n, vocab, h, accumulate: false);
        LinearBackwardWeight(_logits, 0, _mtpFinalNormed, 0, _lmHead, n, vocab, h);
        float[] dz = _scratch.DResidual;
        Array.Clear(dz, 0, n * h);
        for (int r = 0; r < n; r++)
        {
            RowOps.RmsNormBackward(dNormed.AsSpan(r * h, h), a.Out.AsSpan(r * h, h), Parameters.AsSpan(p.FinalNorm, h), _mtpFinalRstd[r],
                dz.AsSpan(r * h, h), Gradients.AsSpan(p.FinalNorm, h));
        }
        BlockBackward(p.Block, a, dz);
        float[] dConcat = _scratch.DConcat;
        LinearBackwardInput(dz, 0, p.EhProj, dConcat, 0, n, h, 2 * h, accumulate: false);
        LinearBackwardWeight(dz, 0, _mtpConcat, 0, p.EhProj, n, h, 2 * h);
        for (int r = 0; r < n; r++)
        {
            Span<float> dEmb = dNormed.AsSpan(r * h, h); // reused as the embedding row's gradient
            dEmb.Clear();
            RowOps.RmsNormBackward(dConcat.AsSpan(r * 2 * h, h), _mtpEmbedded.AsSpan(r * h, h), Parameters.AsSpan(p.EmbeddingNorm, h), _mtpEmbRstd[r],
                dEmb, Gradients.AsSpan(p.EmbeddingNorm, h));
            Gemm.Axpy(1f, dEmb, Gradients.AsSpan(_embedding + _mtpTokens[r] * h, h));
            RowOps.RmsNormBackward(dConcat.AsSpan(r * 2 * h + h, h), _finalHidden.AsSpan(r * h, h), Parameters.AsSpan(p.HiddenNorm, h), _mtpHidRstd[r],
                _dHidden.AsSpan(r * h, h), Gradients.AsSpan(p.HiddenNorm, h));
        }
        return loss;
    }

    /// <summary>logits = normed·W_lmᵀ into the shared buffer, then the mean cross-entropy of <see cref="_targets"/>; with gradScale ≠ 0 the buffer becomes dlogits.</summary>
    private float LmHeadLoss(float[] normed, float gradScale, float[]? logitsOut, long logitsOffset)
    {
        int n = Rows, h = Config.HiddenSize, vocab = Config.VocabSize;
        LinearForward(normed, 0, _lmHead, _logits, 0, n, vocab, h);
        if (logitsOut is not null)
        {
            Array.Copy(_logits, 0, logitsOut, logitsOffset, (long)n * vocab);
        }
        _crossEntropy.Set(_logits, _targets, vocab, gradScale, _scratch.RowLoss);
        _pool.Run(_crossEntropy, n, _pool.GrainFor(n, 4));
        _crossEntropy.Clear();
        double sum = 0;
        for (int r = 0; r < n; r++)
        {
            sum += _scratch.RowLoss[r];
        }
        return (float)(sum / n);
    }

    private sealed class CrossEntropyJob : IParallelJob
    {
        private float[] _logits = [], _loss = [];
        private int[] _targets = [];
        private int _vocab;
        private float _scale;

        public void Set(float[] logits, int[] targets, int vocab, float scale, float[] loss) => (_logits, _targets, _vocab, _scale, _loss) = (logits, targets, vocab, scale, loss);

        public void Clear() => (_logits, _targets, _loss) = ([], [], []);

        public void Execute(int start, int end)
        {
            for (int r = start; r < end; r++)
            {
                _loss[r] = RowOps.CrossEntropy(_logits.AsSpan(r * _vocab, _vocab), _targets[r], _scale);
            }
        }
    }

    // ---- linear layers: y [rows, out] = x [rows, in] · Wᵀ, W [out, in] at a parameter offset.
    private void LinearForward(float[] x, int xOffset, int weight, float[] y, int yOffset, int rows, int outDim, int inDim) =>
        _gemm.Multiply(x, xOffset, Parameters, weight, y, yOffset, rows, outDim, inDim, accumulate: false, _pool);

    /// <summary>dx (+)= dy·W.</summary>
    private void LinearBackwardInput(float[] dy, int dyOffset, int weight, float[] dx, int dxOffset, int rows, int outDim, int inDim, bool accumulate) =>
        _gemm.MultiplyStrided(dy, dyOffset, outDim, 1, Parameters, weight, dx, dxOffset, rows, inDim, outDim, accumulate, _pool);

    /// <summary>dW += dyᵀ·x.</summary>
    private void LinearBackwardWeight(float[] dy, int dyOffset, float[] x, int xOffset, int weight, int rows, int outDim, int inDim) =>
        _gemm.MultiplyStrided(dy, dyOffset, 1, outDim, x, xOffset, Gradients, weight, outDim, inDim, rows, accumulate: true, _pool);
}
