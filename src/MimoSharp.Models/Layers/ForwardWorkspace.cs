using MimoSharp.Models.Caching;

namespace MimoSharp.Models.Layers;

/// <summary>
/// The per-call mutable state of forward passes (llama2.c's RunState): activation buffers sized for
/// the widest layer and grown to the largest batch seen, the batch layout, and the layers' parallel
/// job objects and row tables. The loaded <see cref="MimoModel"/> holds none of it, so one model is
/// shared by every executor; each executor (a decoding session, the scheduler's loop) owns one
/// workspace and runs one forward at a time on it. Reusing it keeps the decode loop free of allocation.
/// </summary>
public sealed class ForwardWorkspace
{
    private readonly Dictionary<string, float[]> _buffers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int[]> _intBuffers = new(StringComparer.Ordinal);
    private LayerKvCache[] _rowCaches = new LayerKvCache[16];
    private int[] _roundRows = new int[16];

    /// <summary>The rows of the call in progress.</summary>
    public BatchLayout Layout { get; } = new();

    /// <summary>Attention's work items (one per layer call; layers run one after another).</summary>
    internal AttentionLayer.HeadJob AttentionJob { get; } = new();

    /// <summary>The one-row MoE path's work items.</summary>
    internal MoeFeedForward.ExpertJob ExpertJob { get; } = new();

    /// <summary>The few-rows MoE path's work items.</summary>
    internal MoeFeedForward.BatchExpertJob BatchExpertJob { get; } = new();

    /// <summary>Attention: the cache of each row of the call, [rows].</summary>
    internal LayerKvCache[] RowCaches(int rows)
    {
        if (_rowCaches.Length < rows)
        {
            _rowCaches = new LayerKvCache[Math.Max(rows, _rowCaches.Length * 2)];
        }
        return _rowCaches;
    }

    /// <summary>Attention: the rows of one round, [rows].</summary>
    internal int[] RoundRows(int rows)
    {
        if (_roundRows.Length < rows)
        {
            _roundRows = new int[Math.Max(rows, _roundRows.Length * 2)];
        }
        return _roundRows;
    }

    /// <summary>A float buffer of at least <paramref name="length"/> elements, named so that callers can hold several at once.</summary>
    public Span<float> Floats(string name, int length)
    {
        if (!_buffers.TryGetValue(name, out float[]? buffer) || buffer.Length < length)
        {
            buffer = new float[Math.Max(length, (buffer?.Length ?? 0) * 2)];
            _buffers[name] = buffer;
        }
        return buffer.AsSpan(0, length);
    }

    /// <summary>The backing array of a named float buffer (for kernels that take arrays).</summary>
    public float[] FloatArray(string name, int length)
    {
        Floats(name, length);
        return _buffers[name];
    }

    /// <summary>The backing array of a named int buffer.</summary>
    public int[] IntArray(string name, int length)
    {
        Ints(name, length);
        return _intBuffers[name];
    }

    public Span<int> Ints(string name, int length)
    {
        if (!_intBuffers.TryGetValue(name, out int[]? buffer) || buffer.Length < length)
        {
            buffer = new int[Math.Max(length, (buffer?.Length ?? 0) * 2)];
            _intBuffers[name] = buffer;
        }
        return buffer.AsSpan(0, length);
    }

    /// <summary>Bytes of the activation buffers held now.</summary>
    public long Bytes => _buffers.Values.Sum(b => (long)b.Length * sizeof(float)) + _intBuffers.Values.Sum(b => (long)b.Length * sizeof(int));
}
