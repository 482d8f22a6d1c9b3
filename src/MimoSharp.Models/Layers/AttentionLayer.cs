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
    private readonly KernelMode _kernels;

    public AttentionLayer(AttentionWeights weights, float valueScale, Func<SequenceKvCache, LayerKvCache> selectCache, WorkerPool pool, KernelMode kernels = default)
    {
        _weights = weights;
        _g = weights.Geometry;
        _rope = new Rope(_g.RotaryDims, _g.RopeTheta);
        _valueScale = valueScale;
        _selectCache = selectCache;
        _pool = pool;
        _kernels = kernels;
    }

    public AttentionGeometry Geometry => _g;

    /// <summary>
    /// Query heads of one work item in a round of <paramref name="rows"/> rows: a KV head's whole group when the
    /// round has at least four (row, KV head) items per thread, so each key and value of the cache is read by one
    /// item (the kernel then meets them again from L1 for its next tile of heads); else split into chunks of 4,
    /// so that decode of one row still feeds every thread. Measured on Model S at 8 streams: the split read the
    /// float32 cache twice per group and the attention core took ~6 ms of a ~78 ms step.
    /// </summary>
    private int HeadsPerItem(int rows) => rows * _g.KeyValueHeads >= 4 * _pool.ThreadCount ? _g.GroupSize : Math.Min(_g.GroupSize, 4);

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
        MatMul.Multiply(_weights.Query, normed, q, rows, _pool, _kernels);
        MatMul.Multiply(_weights.Key, normed, k, rows, _pool, _kernels);
        MatMul.Multiply(_weights.Value, normed, v, rows, _pool, _kernels);
        VectorMath.Scale(v, _valueScale, _kernels.Isa);

        int half = _g.RotaryDims / 2;
        Span<float> cos = stackalloc float[half];
        Span<float> sin = stackalloc float[half];
        for (int r = 0; r < rows; r++)
        {
            _rope.Angles(layout.Position(r), cos, sin);
            _rope.Apply(q.AsSpan(r * _g.QueryWidth, _g.QueryWidth), _g.HeadDim, cos, sin, _kernels.Isa);
            _rope.Apply(k.Slice(r * _g.KeyWidth, _g.KeyWidth), _g.HeadDim, cos, sin, _kernels.Isa);
        }

        LayerKvCache[] rowCache = ws.RowCaches(rows);
        int[] roundRows = ws.RoundRows(rows);
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
                rowCache[layout.RowStart(s) + i] = cache;
            }
        }

        // Rounds: each takes from every sequence the next rows that fit in its cache at once (a ring
        // must not overwrite keys an earlier row of the round still needs), writes their keys and
        // values, then computes all their heads in parallel.
        Span<int> done = ws.Ints("attn.done", layout.Segments);
        done.Clear();
        HeadJob job = ws.AttentionJob;
        job.Set(this, q, heads, layout, rowCache, roundRows);
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
                LayerKvCache cache = rowCache[layout.RowStart(s)];
                int take = Math.Min(remaining, cache.MaxChunk);
                int first = cache.Extend(take);
                for (int i = 0; i < take; i++)
                {
                    int row = layout.RowStart(s) + done[s] + i;
                    k.Slice(row * _g.KeyWidth, _g.KeyWidth).CopyTo(cache.Key(first + i));
                    v.Slice(row * _g.ValueWidth, _g.ValueWidth).CopyTo(cache.Value(first + i));
                    roundRows[roundCount++] = row;
                }
                done[s] += take;
            }
            if (roundCount == 0)
            {
                break;
            }
            job.HeadsPerItem = HeadsPerItem(roundCount);
            int items = roundCount * _g.KeyValueHeads * job.Chunks;
            _pool.Run(job, items, _pool.GrainFor(items));
        }
        job.Clear();
        MatMul.Multiply(_weights.Output, heads, output, rows, _pool, _kernels);
    }

    /// <summary>
    /// One (row, KV head, chunk of its query heads) of a round: blocked online softmax over the keys the
    /// row may see (sink first), read in at most two pieces (a ring buffer wraps once), each key and value
    /// loaded once for all the chunk's heads.
    /// </summary>
    internal sealed class HeadJob : IParallelJob
    {
        private AttentionLayer? _layer;
        private float[]? _q;
        private float[]? _heads;
        private BatchLayout? _layout;
        private LayerKvCache[]? _rowCache;
        private int[]? _roundRows;

        /// <summary>Query heads per item in the current round (see <see cref="AttentionLayer.HeadsPerItem"/>).</summary>
        public int HeadsPerItem;

        /// <summary>Items per KV head in the current round.</summary>
        public int Chunks => (_layer!._g.GroupSize + HeadsPerItem - 1) / HeadsPerItem;

        public void Set(AttentionLayer layer, float[] q, float[] heads, BatchLayout layout, LayerKvCache[] rowCache, int[] roundRows)
        {
            _layer = layer;
            _q = q;
            _heads = heads;
            _layout = layout;
            _rowCache = rowCache;
            _roundRows = roundRows;
        }

        public void Clear()
        {
            _layer = null;
            _q = null;
            _heads = null;
            _layout = null;
            _rowCache = null;
            _roundRows = null;
        }

        public void Execute(int start, int end)
        {
            AttentionLayer layer = _layer!;
            AttentionGeometry g = layer._g;
            int perItem = HeadsPerItem, chunks = Chunks;
            float scale = 1f / MathF.Sqrt(g.HeadDim);
            Span<float> max = stackalloc float[perItem];
            Span<float> sum = stackalloc float[perItem];
            Span<float> acc = stackalloc float[perItem * g.ValueHeadDim];
            Span<float> scratch = stackalloc float[AttentionKernel.ScratchLength(perItem)];
            for (int item = start; item < end; item++)
            {
                int row = _roundRows![item / (g.KeyValueHeads * chunks)];
                int kvHead = item / chunks % g.KeyValueHeads;
                int firstHead = kvHead * g.GroupSize + item % chunks * perItem;
                int heads = Math.Min(perItem, (kvHead + 1) * g.GroupSize - firstHead);
                LayerKvCache cache = _rowCache![row];
                int position = _layout!.Position(row);
                ReadOnlySpan<float> queries = _q.AsSpan(row * g.QueryWidth + firstHead * g.HeadDim, heads * g.HeadDim);
                ReadOnlySpan<float> sinks = layer._weights.SinkBias is { } sink ? sink.AsSpan(firstHead, heads) : default;
                AttentionKernel.Begin(heads, g.ValueHeadDim, sinks, max, sum, acc);
                int first = cache.FirstVisible(position);
                while (first <= position)
                {
                    int count = Math.Min(position - first + 1, cache.ContiguousFrom(first));
                    AttentionKernel.Accumulate(queries, heads, g.HeadDim,
                        cache.KeysFrom(first, count)[(kvHead * g.HeadDim)..], g.KeyWidth,
                        cache.ValuesFrom(first, count)[(kvHead * g.ValueHeadDim)..], g.ValueWidth, g.ValueHeadDim,
                        count, scale, max, sum, acc, scratch, layer._kernels.Isa);
                    first += count;
                }
                AttentionKernel.Finish(heads, g.ValueHeadDim, sum, acc,
                    _heads.AsSpan(row * g.OutputWidth + firstHead * g.ValueHeadDim, heads * g.ValueHeadDim));
            }
        }
    }
}
