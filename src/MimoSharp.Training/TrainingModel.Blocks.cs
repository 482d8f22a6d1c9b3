using MimoSharp.Models.Configuration;
using MimoSharp.Training.Ops;

namespace MimoSharp.Training;

public sealed partial class TrainingModel
{
    /// <summary>Offsets of one attention's tensors in the flat buffers; Sink is −1 when it has none.</summary>
    private sealed record AttnParams(int Q, int K, int V, int O, int Sink, AttentionGeometry G, AttentionOp Op);

    private sealed record MlpParams(int Gate, int Up, int Down, int Width);

    private sealed record MoeParams(int Router, MlpParams[] Experts, int BiasOffset);

    /// <summary>A pre-norm block: attention then dense or MoE feed-forward, each with a residual.</summary>
    private sealed record BlockParams(int InputNorm, int PostNorm, AttnParams Attn, MlpParams? Mlp, MoeParams? Moe, string Name);

    private sealed record MtpParams(int EmbeddingNorm, int HiddenNorm, int EhProj, int FinalNorm, BlockParams Block);

    /// <summary>What a block's backward needs, saved by its forward ([rows, width] each).</summary>
    private sealed class BlockActs
    {
        public required string Name;
        public required float[] X, A, R1, Q, K, V, P, PSink, O, XM, M, R2, Out;
        // Dense: gate/up pre-activations and silu(g)·u [rows, width]; MoE: the same per (row, slot) in expert order.
        public float[] G = [], U = [], H = [];
        public float[] RouterLogits = [], Scores = [], Weights = [], ExpertIn = [], ExpertOut = [];
        public int[] Selected = [], Order = [], Counts = [];
    }

    /// <summary>Gradient scratch shared by all blocks (the backward runs one block at a time).</summary>
    private sealed class Scratch
    {
        public readonly float[] DNormed, DResidual, DConcat, DA, DQ, DK, DV, DO, DSink, DG, DU, DH, RowLoss;
        public readonly float[] DExpertOut, DExpertIn, DWeights, DRouter;

        public Scratch(TrainingModel m)
        {
            int n = m.Rows, h = m.Config.HiddenSize;
            int k = Math.Max(1, m.Config.NumExpertsPerTok), e = Math.Max(1, m.Config.NRoutedExperts);
            var geometries = new[] { m.Derived.Global, m.Derived.Sliding };
            int q = geometries.Max(g => g.QueryWidth), kw = geometries.Max(g => g.KeyWidth), vw = geometries.Max(g => g.ValueWidth);
            int o = geometries.Max(g => g.OutputWidth), heads = geometries.Max(g => g.QueryHeads);
            bool anyMoe = m.Derived.IsMoeLayer.Contains(true);
            long mlp = Math.Max((long)n * m.Config.IntermediateSize, anyMoe ? (long)n * k * m.Config.MoeIntermediateSize : 0);
            DNormed = m.Floats(n * h);
            DResidual = m.Floats(n * h);
            DConcat = m.Floats(m.MtpHeads > 0 ? n * 2 * h : 0);
            DA = m.Floats(n * h);
            DQ = m.Floats(n * q);
            DK = m.Floats(n * kw);
            DV = m.Floats(n * vw);
            DO = m.Floats(n * o);
            DSink = m.Floats(m.Batch * heads);
            DG = m.Floats(mlp);
            DU = m.Floats(mlp);
            DH = m.Floats(mlp);
            RowLoss = m.Floats(n);
            DExpertOut = m.Floats(anyMoe ? (long)n * k * h : 0);
            DExpertIn = m.Floats(anyMoe ? (long)n * k * h : 0);
            DWeights = m.Floats(anyMoe ? n * k : 0);
            DRouter = m.Floats(anyMoe ? n * e : 0);
        }
    }

    /// <summary>Out = XM + FFN(norm(XM)), XM = X + Attn(norm(X)). <paramref name="layer"/> ≥ 0 records MoE loads.</summary>
    private void BlockForward(BlockParams p, BlockActs a, int layer)
    {
        int n = Rows, h = Config.HiddenSize;
        float eps = Derived.RmsNormEps;
        for (int r = 0; r < n; r++)
        {
            a.R1[r] = RowOps.RmsNormForward(a.X.AsSpan(r * h, h), Parameters.AsSpan(p.InputNorm, h), eps, a.A.AsSpan(r * h, h));
        }
        AttentionForward(p.Attn, a, a.XM);
        for (int i = 0; i < n * h; i++)
        {
            a.XM[i] += a.X[i];
        }
        for (int r = 0; r < n; r++)
        {
            a.R2[r] = RowOps.RmsNormForward(a.XM.AsSpan(r * h, h), Parameters.AsSpan(p.PostNorm, h), eps, a.M.AsSpan(r * h, h));
        }
        if (p.Moe is { } moe)
        {
            MoeForward(moe, a, layer);
        }
        else
        {
            MlpForward(p.Mlp!, a.M, 0, a.G, a.U, a.H, 0, a.Out, 0, n);
        }
        for (int i = 0; i < n * h; i++)
        {
            a.Out[i] += a.XM[i];
        }
    }

    /// <summary><paramref name="dResidual"/> holds dOut on entry and dX on return.</summary>
    private void BlockBackward(BlockParams p, BlockActs a, float[] dResidual)
    {
        int n = Rows, h = Config.HiddenSize;
        float[] dm = _scratch.DNormed;
        if (p.Moe is { } moe)
        {
            MoeBackward(moe, a, dResidual, dm);
        }
        else
        {
            MlpBackward(p.Mlp!, a.M, 0, a.G, a.U, a.H, 0, dResidual, 0, dm, 0, n, accumulateInput: false);
        }
        for (int r = 0; r < n; r++)
        {
            RowOps.RmsNormBackward(dm.AsSpan(r * h, h), a.XM.AsSpan(r * h, h), Parameters.AsSpan(p.PostNorm, h), a.R2[r],
                dResidual.AsSpan(r * h, h), Gradients.AsSpan(p.PostNorm, h));
        }
        float[] da = _scratch.DA;
        AttentionBackward(p.Attn, a, dResidual, da);
        for (int r = 0; r < n; r++)
        {
            RowOps.RmsNormBackward(da.AsSpan(r * h, h), a.X.AsSpan(r * h, h), Parameters.AsSpan(p.InputNorm, h), a.R1[r],
                dResidual.AsSpan(r * h, h), Gradients.AsSpan(p.InputNorm, h));
        }
    }

    /// <summary>output [rows, H] = W_o · attention(RoPE(W_q a), RoPE(W_k a), value_scale · W_v a).</summary>
    private void AttentionForward(AttnParams p, BlockActs a, float[] output)
    {
        int n = Rows, h = Config.HiddenSize;
        AttentionGeometry g = p.G;
        LinearForward(a.A, 0, p.Q, a.Q, 0, n, g.QueryWidth, h);
        LinearForward(a.A, 0, p.K, a.K, 0, n, g.KeyWidth, h);
        LinearForward(a.A, 0, p.V, a.V, 0, n, g.ValueWidth, h);
        float valueScale = Derived.ValueScale;
        for (int i = 0; i < n * g.ValueWidth; i++)
        {
            a.V[i] *= valueScale;
        }
        p.Op.Rope(a.Q, a.K, inverse: false);
        p.Op.Forward(a.Q, a.K, a.V, p.Sink >= 0 ? Parameters : null, p.Sink, a.O, a.P, a.PSink, _pool);
        LinearForward(a.O, 0, p.O, output, 0, n, h, g.OutputWidth);
    }

    /// <summary>From dOut [rows, H] of the attention's output to da [rows, H] (written) and the weights' gradients.</summary>
    private void AttentionBackward(AttnParams p, BlockActs a, float[] dOut, float[] da)
    {
        int n = Rows, h = Config.HiddenSize;
        AttentionGeometry g = p.G;
        Scratch s = _scratch;
        LinearBackwardInput(dOut, 0, p.O, s.DO, 0, n, h, g.OutputWidth, accumulate: false);
        LinearBackwardWeight(dOut, 0, a.O, 0, p.O, n, h, g.OutputWidth);
        p.Op.Backward(s.DO, a.Q, a.K, a.V, a.P, a.PSink, s.DQ, s.DK, s.DV, s.DSink, _pool);
        if (p.Sink >= 0)
        {
            for (int b = 0; b < Batch; b++)
            {
                for (int head = 0; head < g.QueryHeads; head++)
                {
                    Gradients[p.Sink + head] += s.DSink[b * g.QueryHeads + head];
                }
            }
        }
        // RoPE is a rotation: its backward rotates the gradients back. The saved q/k stay rotated (only dq/dk are turned).
        p.Op.Rope(s.DQ, s.DK, inverse: true);
        float valueScale = Derived.ValueScale;
        for (int i = 0; i < n * g.ValueWidth; i++)
        {
            s.DV[i] *= valueScale;
        }
        LinearBackwardInput(s.DQ, 0, p.Q, da, 0, n, g.QueryWidth, h, accumulate: false);
        LinearBackwardInput(s.DK, 0, p.K, da, 0, n, g.KeyWidth, h, accumulate: true);
        LinearBackwardInput(s.DV, 0, p.V, da, 0, n, g.ValueWidth, h, accumulate: true);
        LinearBackwardWeight(s.DQ, 0, a.A, 0, p.Q, n, g.QueryWidth, h);
        LinearBackwardWeight(s.DK, 0, a.A, 0, p.K, n, g.KeyWidth, h);
        // dW_v += dvᵀ·a with dv of the unscaled projection.
        LinearBackwardWeight(s.DV, 0, a.A, 0, p.V, n, g.ValueWidth, h);
    }

    /// <summary>SwiGLU of rows of x: out = W_down·(silu(W_gate x) ⊙ W_up x), saving gate, up and their product.</summary>
    private void MlpForward(MlpParams p, float[] x, int xOffset, float[] gate, float[] up, float[] act, int actOffset, float[] output, int outOffset, int rows)
    {
        int h = Config.HiddenSize, w = p.Width;
        LinearForward(x, xOffset, p.Gate, gate, actOffset, rows, w, h);
        LinearForward(x, xOffset, p.Up, up, actOffset, rows, w, h);
        RowOps.SwiGluForward(gate.AsSpan(actOffset, rows * w), up.AsSpan(actOffset, rows * w), act.AsSpan(actOffset, rows * w));
        LinearForward(act, actOffset, p.Down, output, outOffset, rows, h, w);
    }

    private void MlpBackward(MlpParams p, float[] x, int xOffset, float[] gate, float[] up, float[] act, int actOffset,
        float[] dOut, int dOutOffset, float[] dx, int dxOffset, int rows, bool accumulateInput)
    {
        int h = Config.HiddenSize, w = p.Width;
        Scratch s = _scratch;
        LinearBackwardInput(dOut, dOutOffset, p.Down, s.DH, 0, rows, h, w, accumulate: false);
        LinearBackwardWeight(dOut, dOutOffset, act, actOffset, p.Down, rows, h, w);
        RowOps.SwiGluBackward(s.DH.AsSpan(0, rows * w), gate.AsSpan(actOffset, rows * w), up.AsSpan(actOffset, rows * w),
            s.DG.AsSpan(0, rows * w), s.DU.AsSpan(0, rows * w));
        LinearBackwardInput(s.DG, 0, p.Gate, dx, dxOffset, rows, w, h, accumulateInput);
        LinearBackwardInput(s.DU, 0, p.Up, dx, dxOffset, rows, w, h, accumulate: true);
        LinearBackwardWeight(s.DG, 0, x, xOffset, p.Gate, rows, w, h);
        LinearBackwardWeight(s.DU, 0, x, xOffset, p.Up, rows, w, h);
    }

    /// <summary>
    /// Routed experts (spec §2.6): the router chooses and weights k experts per row; rows are grouped
    /// by expert (counting sort, stable) so each expert runs once on its rows; Out = Σ w·expert(m).
    /// </summary>
    private void MoeForward(MoeParams p, BlockActs a, int layer)
    {
        int n = Rows, h = Config.HiddenSize, k = Config.NumExpertsPerTok, experts = p.Experts.Length, width = Config.MoeIntermediateSize;
        LinearForward(a.M, 0, p.Router, a.RouterLogits, 0, n, experts, h);
        Span<float> choice = _scratch.DRouter.AsSpan(0, experts); // scratch: the backward overwrites it
        for (int r = 0; r < n; r++)
        {
            RowOps.RouteForward(a.RouterLogits.AsSpan(r * experts, experts), RouterBias.AsSpan(p.BiasOffset, experts), Derived.ExpertGroups, Derived.TopkGroups,
                Config.NormTopkProb, Derived.RoutedScalingFactor, a.Scores.AsSpan(r * experts, experts), choice, a.Selected.AsSpan(r * k, k), a.Weights.AsSpan(r * k, k));
        }
        int[] counts = a.Counts;
        Array.Clear(counts);
        foreach (int e in a.Selected)
        {
            counts[e + 1]++;
        }
        if (layer >= 0)
        {
            for (int e = 0; e < experts; e++)
            {
                ExpertLoad[layer * experts + e] = counts[e + 1];
            }
        }
        for (int e = 0; e < experts; e++)
        {
            counts[e + 1] += counts[e];
        }
        Span<int> fill = stackalloc int[experts];
        counts.AsSpan(0, experts).CopyTo(fill);
        for (int i = 0; i < n * k; i++)
        {
            a.Order[fill[a.Selected[i]]++] = i;
        }
        for (int pos = 0; pos < n * k; pos++)
        {
            int row = a.Order[pos] / k;
            a.M.AsSpan(row * h, h).CopyTo(a.ExpertIn.AsSpan(pos * h, h));
        }
        for (int e = 0; e < experts; e++)
        {
            int begin = counts[e], m = counts[e + 1] - begin;
            if (m > 0)
            {
                MlpForward(p.Experts[e], a.ExpertIn, begin * h, a.G, a.U, a.H, begin * width, a.ExpertOut, begin * h, m);
            }
        }
        Array.Clear(a.Out, 0, n * h);
        for (int pos = 0; pos < n * k; pos++)
        {
            int pair = a.Order[pos];
            Gemm.Axpy(a.Weights[pair], a.ExpertOut.AsSpan(pos * h, h), a.Out.AsSpan(pair / k * h, h));
        }
    }

    /// <summary>From dOut [rows, H] to dm [rows, H] (written): experts' input gradients gathered back plus the router's.</summary>
    private void MoeBackward(MoeParams p, BlockActs a, float[] dOut, float[] dm)
    {
        int n = Rows, h = Config.HiddenSize, k = Config.NumExpertsPerTok, experts = p.Experts.Length, width = Config.MoeIntermediateSize;
        Scratch s = _scratch;
        for (int pos = 0; pos < n * k; pos++)
        {
            int pair = a.Order[pos];
            ReadOnlySpan<float> dRow = dOut.AsSpan(pair / k * h, h);
            Span<float> dY = s.DExpertOut.AsSpan(pos * h, h);
            float w = a.Weights[pair];
            for (int i = 0; i < h; i++)
            {
                dY[i] = w * dRow[i];
            }
            s.DWeights[pair] = Gemm.Dot(dRow, a.ExpertOut.AsSpan(pos * h, h));
        }
        int[] counts = a.Counts;
        for (int e = 0; e < experts; e++)
        {
            int begin = counts[e], m = counts[e + 1] - begin;
            if (m > 0)
            {
                MlpBackward(p.Experts[e], a.ExpertIn, begin * h, a.G, a.U, a.H, begin * width, s.DExpertOut, begin * h, s.DExpertIn, begin * h, m, accumulateInput: false);
            }
        }
        Array.Clear(dm, 0, n * h);
        for (int pos = 0; pos < n * k; pos++)
        {
            Gemm.Axpy(1f, s.DExpertIn.AsSpan(pos * h, h), dm.AsSpan(a.Order[pos] / k * h, h));
        }
        for (int r = 0; r < n; r++)
        {
            RowOps.RouteBackward(a.Scores.AsSpan(r * experts, experts), a.Selected.AsSpan(r * k, k), s.DWeights.AsSpan(r * k, k),
                Config.NormTopkProb, Derived.RoutedScalingFactor, s.DRouter.AsSpan(r * experts, experts));
        }
        LinearBackwardInput(s.DRouter, 0, p.Router, dm, 0, n, experts, h, accumulate: true);
        LinearBackwardWeight(s.DRouter, 0, a.M, 0, p.Router, n, experts, h);
    }

    /// <summary>
    /// The auxiliary-loss-free balance update (DeepSeek-V3, MiMo): per MoE layer,
    /// bias_e += γ · sign(mean load − load_e) from the last forward's loads.
    /// </summary>
    public void UpdateRouterBias(float gamma)
    {
        for (int i = 0; i < _layers.Length; i++)
        {
            if (_layers[i].Moe is not { } moe)
            {
                continue;
            }
            int experts = moe.Experts.Length;
            ReadOnlySpan<int> load = ExpertLoad.AsSpan(i * experts, experts);
            double mean = 0;
            foreach (int l in load)
            {
                mean += l;
            }
            mean /= experts;
            for (int e = 0; e < experts; e++)
            {
                RouterBias[moe.BiasOffset + e] += gamma * Math.Sign(mean - load[e]);
            }
        }
    }

    /// <summary>The first activation (in forward order) holding a NaN or infinity, or null; for the NaN-loss error.</summary>
    public string? FindNonFiniteActivation()
    {
        foreach (BlockActs a in _layerActs)
        {
            foreach ((string name, float[] values) in new[] { ("input", a.X), ("attention input norm", a.A), ("q", a.Q), ("k", a.K), ("v", a.V), ("attention output", a.O),
                         ("attention residual", a.XM), ("ffn input norm", a.M), ("router logits", a.RouterLogits), ("ffn gate", a.G), ("ffn up", a.U), ("output", a.Out) })
            {
                if (!AllFinite(values))
                {
                    return $"{a.Name} {name}";
                }
            }
        }
        return !AllFinite(_finalNormed) ? "final norm output" : null;
    }

    /// <summary>The first parameter tensor (checkpoint order) of <paramref name="buffer"/> holding a NaN or infinity, or null.</summary>
    public string? FindNonFiniteTensor(float[] buffer)
    {
        foreach (ParameterTensor t in Layout.Tensors)
        {
            if (!AllFinite(buffer.AsSpan(t.Offset, t.Length)))
            {
                return t.Name;
            }
        }
        return null;
    }

    private static bool AllFinite(ReadOnlySpan<float> values)
    {
        foreach (float v in values)
        {
            if (!float.IsFinite(v))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>
    /// Floating-point operations of one training step (forward + backward = 3 × the forward's matrix
    /// products, 2 flops per multiply-add), for GFLOP/s: every linear layer on the active path (k
    /// experts per token in MoE layers), attention scores and values over the visible keys, lm_head for
    /// the main model and each active MTP head. Element-wise ops are not counted.
    /// </summary>
    public double TrainingFlopsPerStep()
    {
        double n = Rows, h = Config.HiddenSize, v = Config.VocabSize;
        double forward = 0;
        double Attention(AttentionGeometry g)
        {
            double keys = 0;
            for (int t = 0; t < Sequence; t++)
            {
                keys += g.IsSliding ? Math.Min(t + 1, g.WindowKeys) : t + 1;
            }
            double projections = 2 * n * h * (g.QueryWidth + g.KeyWidth + g.ValueWidth + g.OutputWidth);
            return projections + 2.0 * Batch * keys * g.QueryHeads * (g.HeadDim + g.ValueHeadDim);
        }
        foreach (BlockParams p in _layers)
        {
            forward += Attention(p.Attn.G);
            forward += p.Moe is { } moe
                ? 2 * n * h * moe.Experts.Length + 2 * n * Config.NumExpertsPerTok * 3 * h * Config.MoeIntermediateSize
                : 2 * n * 3 * h * p.Mlp!.Width;
        }
        forward += 2 * n * h * v;
        int heads = Math.Min(ActiveMtpHeads, MtpHeads);
        forward += heads * (2 * n * 2 * h * h + Attention(Derived.Sliding) + 2 * n * 3 * h * Config.IntermediateSize + 2 * n * h * v);
        return 3 * forward;
    }

    /// <summary>Standard normal samples from a seeded xorshift64* generator (Box-Muller), independent of System.Random.</summary>
    internal struct Gaussian(ulong seed)
    {
        private ulong _state = seed == 0 ? 0x9E3779B97F4A7C15 : seed;

        public float Next()
        {
            double u1 = (NextUInt64() >> 11) * (1.0 / (1UL << 53)) + 1e-300;
            double u2 = (NextUInt64() >> 11) * (1.0 / (1UL << 53));
            return (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }

        private ulong NextUInt64()
        {
            _state ^= _state >> 12;
            _state ^= _state << 25;
            _state ^= _state >> 27;
            return _state * 2685821657736338717UL;
        }
    }
}
