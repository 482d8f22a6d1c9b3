using System.Runtime.CompilerServices;
using MimoSharp.Models.Caching;
using MimoSharp.Models.Configuration;
using MimoSharp.Tensors;
using MimoSharp.Tensors.Kernels;
using MimoSharp.Tensors.Threading;

namespace MimoSharp.Models.Layers;

/// <summary>
/// Global or sliding-window attention (spec §2.3): GQA with contiguous groups, q/k head dim ≠ v head
/// dim, partial NeoX RoPE, V scaled by attention_value_scale before caching, scores scaled by
/// 1/√headDim, an optional per-query-head sink logit that joins the softmax denominator only.
/// </summary>
public sealed class AttentionLayer
{
    private readonly AttentionWeights _weights;
    private readonly AttentionGeometry _g;
    private readonly Rope _rope;
    private readonly float _valueScale;
    private readonly Func<SequenceKvCache, LayerKvCache> _selectCache;
    private readonly WorkerPool _pool;
    private readonly HeadJob _job = new();
    private LayerKvCache[] _rowCache = new LayerKvCache[16];
    private int[] _roundRows = new int[16];

    public AttentionLayer(AttentionWeights weights, float valueScale, Func<SequenceKvCache, LayerKvCache> selectCache, WorkerPool pool)
    {
        _weights = weights;
        _g = weights.Geometry;
        _rope = new Rope(_g.RotaryDims, _g.RopeTheta);
        _valueScale = valueScale;
        _selectCache = selectCache;
        _pool = pool;
    }

    public AttentionGeometry Geometry => _g;

    /// <summary>Bytes of weights one token reads.</summary>
    public long BytesRead => _weights.Query.BytesRead + _weights.Key.BytesRead + _weights.Value.BytesRead + _weights.Output.BytesRead;

    /// <summary>output [rows, H] = attention of normed [rows, H]; appends each row's key and value to its sequence's cache.</summary>
    public void Forward(BatchLayout layout, ReadOnlySpan<float> normed, Span<float> output, ForwardWorkspace ws)
    {
        int rows = layout.Rows;
        float[] q = ws.FloatArray("attn.q", rows * _g.QueryWidth);
        Span<float> k = ws.Floats("attn.k", rows * _g.KeyWidth);
        Span<float> v = ws.Floats("attn.v", rows * _g.ValueWidth);
        float[] heads = ws.FloatArray("attn.out", rows * _g.OutputWidth);
        MatMul.Multiply(_weights.Query, normed, q, rows, _pool);
        MatMul.Multiply(_weights.Key, normed, k, rows, _pool);
        MatMul.Multiply(_weights.Value, normed, v, rows, _pool);
        VectorMath.Scale(v, _valueScale);

        int half = _g.RotaryDims / 2;
        Span<float> cos = stackalloc float[half];
        Span<float> sin = stackalloc float[half];
        for (int r = 0; r < rows; r++)
        {
            _rope.Angles(layout.Position(r), cos, sin);
            _rope.Apply(q.AsSpan(r * _g.QueryWidth, _g.QueryWidth), _g.HeadDim, cos, sin);
            _rope.Apply(k.Slice(r * _g.KeyWidth, _g.KeyWidth), _g.HeadDim, cos, sin);
        }

        if (_rowCache.Length < rows)
        {
            _rowCache = new LayerKvCache[Math.Max(rows, _rowCache.Length * 2)];
            _roundRows = new int[_rowCache.Length];
        }
        for (int s = 0; s < layout.Segments; s++)
        {
            LayerKvCache cache = _selectCache(layout.Cache(s));
            if (cache.Length != layout.FirstPosition(s))
            {
                throw new InvalidOperationException(
                    $"sequence {s}: its cache holds {cache.Length} positions but the batch starts it at position {layout.FirstPosition(s)}");
            }
            for (int i = 0; i < layout.RowCount(s); i++)
            {
                _rowCache[layout.RowStart(s) + i] = cache;
            }
        }

        // Rounds: each takes from every sequence the next rows that fit in its cache at once (a ring
        // must not overwrite keys an earlier row of the round still needs), writes their keys and
        // values, then computes all their heads in parallel.
        Span<int> done = ws.Ints("attn.done", layout.Segments);
        done.Clear();
        _job.Set(this, q, heads, layout);
        while (true)
        {
            int roundCount = 0;
            for (int s = 0; s < layout.Segments; s++)
            {
                int remaining = layout.RowCount(s) - done[s];
                if (remaining == 0)
                {
                    continue;
                }
                LayerKvCache cache = _rowCache[layout.RowStart(s)];
                int take = Math.Min(remaining, cache.MaxChunk);
                int first = cache.Extend(take);
                for (int i = 0; i < take; i++)
                {
                    int row = layout.RowStart(s) + done[s] + i;
                    k.Slice(row * _g.KeyWidth, _g.KeyWidth).CopyTo(cache.Key(first + i));
                    v.Slice(row * _g.ValueWidth, _g.ValueWidth).CopyTo(cache.Value(first + i));
                    _roundRows[roundCount++] = row;
                }
                done[s] += take;
            }
            if (roundCount == 0)
            {
                break;
            }
            _job.RoundRows = _roundRows;
            int items = roundCount * _g.QueryHeads;
            _pool.Run(_job, items, _pool.GrainFor(items));
        }
        _job.Clear();
        MatMul.Multiply(_weights.Output, heads, output, rows, _pool);
    }

    /// <summary>One (row, query head) of a round: online softmax over the visible keys, sink first.</summary>
    private sealed class HeadJob : IParallelJob
    {
        private AttentionLayer? _layer;
        private float[]? _q;
        private float[]? _heads;
        private BatchLayout? _layout;
        public int[]? RoundRows;

        public void Set(AttentionLayer layer, float[] q, float[] heads, BatchLayout layout)
        {
            _layer = layer;
            _q = q;
            _heads = heads;
            _layout = layout;
        }

        public void Clear()
        {
            _layer = null;
            _q = null;
            _heads = null;
            _layout = null;
            RoundRows = null;
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]

        public void Execute(int start, int end)
        {
            AttentionLayer layer = _layer!;
            AttentionGeometry g = layer._g;
            float scale = 1f / MathF.Sqrt(g.HeadDim);
            Span<float> acc = stackalloc float[g.ValueHeadDim];
            for (int item = start; item < end; item++)
            {
                int row = RoundRows![item / g.QueryHeads];
                int head = item % g.QueryHeads;
                int kvHead = head / g.GroupSize;
                LayerKvCache cache = layer._rowCache[row];
                int position = _layout!.Position(row);
                ReadOnlySpan<float> query = _q.AsSpan(row * g.QueryWidth + head * g.HeadDim, g.HeadDim);

                // Online softmax. The sink is a logit with no value: start from it (m = σ, l = 1).
                float m = layer._weights.SinkBias is { } sink ? sink[head] : float.NegativeInfinity;
                float l = float.IsNegativeInfinity(m) ? 0f : 1f;
                acc.Clear();
                for (int j = cache.FirstVisible(position); j <= position; j++)
                {
                    ReadOnlySpan<float> key = cache.Key(j).Slice(kvHead * g.HeadDim, g.HeadDim);
                    ReadOnlySpan<float> value = cache.Value(j).Slice(kvHead * g.ValueHeadDim, g.ValueHeadDim);
                    float s = VectorMath.Dot(query, key) * scale;
                    if (s > m)
                    {
                        float correction = MathF.Exp(m - s);
                        l = l * correction + 1f;
                        VectorMath.Scale(acc, correction);
                        VectorMath.Add(value, acc);
                        m = s;
                    }
                    else
                    {
                        float e = MathF.Exp(s - m);
                        l += e;
                        VectorMath.MultiplyAdd(value, e, acc);
                    }
                }
                Span<float> outHead = _heads.AsSpan(row * g.OutputWidth + head * g.ValueHeadDim, g.ValueHeadDim);
                float inv = 1f / l;
                for (int d = 0; d < acc.Length; d++)
                {
                    outHead[d] = acc[d] * inv;
                }
            }
        }
    }
}
