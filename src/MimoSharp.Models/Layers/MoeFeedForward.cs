using System.Runtime.CompilerServices;
using MimoSharp.Tensors.Kernels;
using MimoSharp.Tensors.Threading;

namespace MimoSharp.Models.Layers;

/// <summary>
/// Routed experts (spec §2.6). Router logits in fp32, sigmoid scores s; the correction bias b chooses
/// the top-k by s + b (after DeepSeek-V3 group-limited selection, a no-op with one group) but the
/// weights are the unbiased s of the chosen experts, normalised to sum 1 when norm_topk_prob, then
/// multiplied by routed_scaling_factor. Rows are grouped by expert so that each chosen expert's
/// weights are read once per call however many rows chose it.
/// </summary>
public sealed class MoeFeedForward
{
    private readonly MoeWeights _weights;
    private readonly int _topK;
    private readonly int _groups;
    private readonly int _topkGroups;
    private readonly bool _normalize;
    private readonly float _scaling;
    private readonly int _hidden;
    private readonly WorkerPool _pool;
    private readonly KernelMode _kernels;

    public MoeFeedForward(MoeWeights weights, int topK, int groups, int topkGroups, bool normalize, float scaling, WorkerPool pool, KernelMode kernels = default)
    {
        _weights = weights;
        _topK = topK;
        _groups = groups;
        _topkGroups = topkGroups;
        _normalize = normalize;
        _scaling = scaling;
        _hidden = weights.Router.Cols;
        _pool = pool;
        _kernels = kernels;
    }

    public int Experts => _weights.Experts.Length;
    public int TopK => _topK;

    /// <summary>Bytes one token reads: the router and top-k experts (assuming an average expert size).</summary>
    public long BytesReadPerToken => _weights.Router.BytesRead + _topK * _weights.Experts[0].BytesRead;

    /// <summary>output [rows, H] from input [rows, H]. <paramref name="chosen"/> [rows, topK] receives the routing if not empty.</summary>
    public void Forward(ReadOnlySpan<float> input, Span<float> output, int rows, ForwardWorkspace ws, Span<int> chosen = default)
    {
        int experts = Experts;
        Span<float> logits = ws.Floats("moe.router", rows * experts);
        MatMul.Multiply(_weights.Router, input, logits, rows, _pool, _kernels);

        Span<int> selected = ws.Ints("moe.selected", rows * _topK);
        Span<float> weights = ws.Floats("moe.weights", rows * _topK);
        Span<float> scores = ws.Floats("moe.scores", experts);
        Span<float> choice = ws.Floats("moe.choice", experts);
        for (int r = 0; r < rows; r++)
        {
            Route(logits.Slice(r * experts, experts), scores, choice, selected.Slice(r * _topK, _topK), weights.Slice(r * _topK, _topK));
        }
        if (!chosen.IsEmpty)
        {
            selected.CopyTo(chosen);
        }

        // Counting sort of (row, slot) pairs by expert.
        Span<int> counts = ws.Ints("moe.counts", experts + 1);
        counts.Clear();
        foreach (int e in selected)
        {
            counts[e + 1]++;
        }
        for (int e = 0; e < experts; e++)
        {
            counts[e + 1] += counts[e];
        }
        Span<int> order = ws.Ints("moe.order", rows * _topK);
        Span<int> fill = ws.Ints("moe.fill", experts);
        counts[..experts].CopyTo(fill);
        for (int i = 0; i < selected.Length; i++)
        {
            order[fill[selected[i]]++] = i;
        }

        output[..(rows * _hidden)].Clear();
        if (rows == 1)
        {
            ForwardOneRow(input, output, selected, weights, ws);
            return;
        }
        if (rows <= FewRows)
        {
            ForwardFewRows(input, output, rows, counts, order, weights, ws);
            return;
        }
        Span<float> gathered = ws.Floats("moe.in", rows * _hidden);
        Span<float> expertOut = ws.Floats("moe.out", rows * _hidden);
        for (int e = 0; e < experts; e++)
        {
            int begin = counts[e], end = counts[e + 1];
            int m = end - begin;
            if (m == 0)
            {
                continue;
            }
            for (int j = 0; j < m; j++)
            {
                int row = order[begin + j] / _topK;
                input.Slice(row * _hidden, _hidden).CopyTo(gathered.Slice(j * _hidden, _hidden));
            }
            DenseFeedForward.Apply(_weights.Experts[e], gathered[..(m * _hidden)], expertOut, m, ws, _pool, _kernels);
            for (int j = 0; j < m; j++)
            {
                int pair = order[begin + j];
                int row = pair / _topK;
                VectorMath.MultiplyAdd(expertOut.Slice(j * _hidden, _hidden), weights[pair], output.Slice(row * _hidden, _hidden), _kernels.Isa);
            }
        }
    }

    /// <summary>
    /// Decode (one row): each thread runs whole experts, so the k small expert products need one
    /// dispatch instead of 3·k, and each thread streams its experts' weights back to back. Outputs
    /// are summed afterwards in selection order, so the result does not depend on the threads.
    /// </summary>
    private void ForwardOneRow(ReadOnlySpan<float> input, Span<float> output, Span<int> selected, Span<float> weights, ForwardWorkspace ws)
    {
        MlpWeights first = _weights.Experts[selected[0]];
        int width = first.Width;
        ExpertJob job = ws.ExpertJob;
        if (job.Selected.Length < _topK)
        {
            job.Selected = new int[_topK];
        }
        job.Input = ws.FloatArray("moe.one.in", _hidden);
        input[.._hidden].CopyTo(job.Input);
        job.Gate = ws.FloatArray("moe.one.gate", _topK * width);
        job.Up = ws.FloatArray("moe.one.up", _topK * width);
        job.Out = ws.FloatArray("moe.one.out", _topK * _hidden);
        selected[.._topK].CopyTo(job.Selected);
        job.Width = width;
        job.Hidden = _hidden;
        job.Experts = _weights.Experts;
        job.Pool = _pool;
        job.Kernels = _kernels;
        _pool.Run(job, _topK, 1);
        for (int k = 0; k < _topK; k++)
        {
            VectorMath.MultiplyAdd(job.Out.AsSpan(k * _hidden, _hidden), weights[k], output[.._hidden], _kernels.Isa);
        }
    }

    /// <summary>Batches up to this many rows (a decode step of several sequences) run whole experts per thread.</summary>
    private const int FewRows = 32;

    /// <summary>
    /// A few rows (continuous batching's decode steps): the rows choose many distinct experts with one
    /// or two rows each, so per-expert products split over the threads would cost 3 dispatches per
    /// expert for tiny work. Instead each thread runs whole experts over all their rows, one dispatch
    /// per layer. The products and the sum (by expert, then row) are those of the general path.
    /// </summary>
    private void ForwardFewRows(ReadOnlySpan<float> input, Span<float> output, int rows, ReadOnlySpan<int> counts, ReadOnlySpan<int> order,
        ReadOnlySpan<float> weights, ForwardWorkspace ws)
    {
        int pairs = rows * _topK;
        int width = _weights.Experts[0].Width;
        BatchExpertJob job = ws.BatchExpertJob;
        job.Gathered = ws.FloatArray("moe.few.in", pairs * _hidden);
        job.Gate = ws.FloatArray("moe.few.gate", pairs * width);
        job.Up = ws.FloatArray("moe.few.up", pairs * width);
        job.Out = ws.FloatArray("moe.few.out", pairs * _hidden);
        if (job.Active.Length < Experts)
        {
            job.Active = new int[Experts];
        }
        int active = 0;
        for (int e = 0; e < Experts; e++)
        {
            if (counts[e + 1] > counts[e])
            {
                job.Active[active++] = e;
            }
        }
        for (int p = 0; p < pairs; p++)
        {
            input.Slice(order[p] / _topK * _hidden, _hidden).CopyTo(job.Gathered.AsSpan(p * _hidden, _hidden));
        }
        job.Counts = ws.IntArray("moe.counts", Experts + 1);
        job.Width = width;
        job.Hidden = _hidden;
        job.Experts = _weights.Experts;
        job.Pool = _pool;
        job.Kernels = _kernels;
        _pool.Run(job, active, 1);
        for (int p = 0; p < pairs; p++)
        {
            int pair = order[p];
            VectorMath.MultiplyAdd(job.Out.AsSpan(p * _hidden, _hidden), weights[pair], output.Slice(pair / _topK * _hidden, _hidden), _kernels.Isa);
        }
    }

    /// <summary>
    /// One expert's SwiGLU over <paramref name="rows"/> rows: output [rows, hidden] = down(silu(gate·x) ⊙ up·x),
    /// with gate and up [rows, width] as scratch. Called from inside a pool job: the pool is busy running it,
    /// so these products run on the calling thread alone.
    /// </summary>
    private static void RunExpert(MlpWeights w, ReadOnlySpan<float> x, Span<float> gate, Span<float> up, Span<float> output, int rows, WorkerPool pool, KernelMode kernels)
    {
        MatMul.Multiply(w.Gate, x, gate, rows, pool, kernels);
        MatMul.Multiply(w.Up, x, up, rows, pool, kernels);
        VectorMath.SwiGlu(gate, up, kernels.Isa);
        MatMul.Multiply(w.Down, gate, output, rows, pool, kernels);
    }

    internal sealed class BatchExpertJob : IParallelJob
    {
        public float[] Gathered = [];
        public float[] Gate = [];
        public float[] Up = [];
        public float[] Out = [];
        public int[] Active = [];
        public int[] Counts = [];
        public int Width;
        public int Hidden;
        public MlpWeights[] Experts = [];
        public WorkerPool Pool = WorkerPool.Shared;
        public KernelMode Kernels;

        public void Execute(int start, int end)
        {
            for (int i = start; i < end; i++)
            {
                int e = Active[i];
                int begin = Counts[e], m = Counts[e + 1] - begin;
                MlpWeights w = Experts[e];
                RunExpert(w, Gathered.AsSpan(begin * Hidden, m * Hidden), Gate.AsSpan(begin * Width, m * Width), Up.AsSpan(begin * Width, m * Width),
                    Out.AsSpan(begin * Hidden, m * Hidden), m, Pool, Kernels);
            }
        }
    }

    internal sealed class ExpertJob : IParallelJob
    {
        public float[] Input = [];
        public float[] Gate = [];
        public float[] Up = [];
        public float[] Out = [];
        public int[] Selected = [];
        public int Width;
        public int Hidden;
        public MlpWeights[] Experts = [];
        public WorkerPool Pool = WorkerPool.Shared;
        public KernelMode Kernels;

        public void Execute(int start, int end)
        {
            for (int k = start; k < end; k++)
            {
                MlpWeights e = Experts[Selected[k]];
                RunExpert(e, Input, Gate.AsSpan(k * Width, Width), Up.AsSpan(k * Width, Width), Out.AsSpan(k * Hidden, Hidden), 1, Pool, Kernels);
            }
        }
    }

    /// <summary>Chooses the top-k experts of one row and their weights.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Route(ReadOnlySpan<float> logits, Span<float> scores, Span<float> choice, Span<int> selected, Span<float> weights)
    {
        ReadOnlySpan<float> bias = _weights.CorrectionBias;
        for (int e = 0; e < logits.Length; e++)
        {
            scores[e] = 1f / (1f + MathF.Exp(-logits[e]));
            choice[e] = scores[e] + bias[e];
        }
        if (_groups > 1)
        {
            MaskGroups(choice, _groups, _topkGroups);
        }
        for (int k = 0; k < _topK; k++)
        {
            int best = -1;
            for (int e = 0; e < choice.Length; e++)
            {
                if (choice[e] != float.NegativeInfinity && (best < 0 || choice[e] > choice[best]))
                {
                    best = e;
                }
            }
            selected[k] = best;
            weights[k] = scores[best];
            choice[best] = float.NegativeInfinity;
        }
        float sum = 0;
        foreach (float w in weights)
        {
            sum += w;
        }
        float factor = _normalize ? _scaling / (sum + 1e-20f) : _scaling;
        for (int k = 0; k < weights.Length; k++)
        {
            weights[k] *= factor;
        }
    }

    /// <summary>
    /// DeepSeek-V3 group-limited routing: keep the experts of the topk_group groups whose top-2 choice scores sum highest
    /// (choice [experts] = sigmoid score + correction bias; the others become -inf). The trainer routes with it too.
    /// </summary>
    public static void MaskGroups(Span<float> choice, int groups, int topkGroups)
    {
        int size = choice.Length / groups;
        Span<float> groupScore = stackalloc float[groups];
        for (int g = 0; g < groups; g++)
        {
            float first = float.NegativeInfinity, second = float.NegativeInfinity;
            foreach (float c in choice.Slice(g * size, size))
            {
                if (c > first)
                {
                    second = first;
                    first = c;
                }
                else if (c > second)
                {
                    second = c;
                }
            }
            groupScore[g] = size > 1 ? first + second : first;
        }
        Span<bool> keep = stackalloc bool[groups];
        for (int k = 0; k < topkGroups; k++)
        {
            int best = -1;
            for (int g = 0; g < groups; g++)
            {
                if (!keep[g] && (best < 0 || groupScore[g] > groupScore[best]))
                {
                    best = g;
                }
            }
            keep[best] = true;
        }
        for (int g = 0; g < groups; g++)
        {
            if (!keep[g])
            {
                choice.Slice(g * size, size).Fill(float.NegativeInfinity);
            }
        }
    }
}
