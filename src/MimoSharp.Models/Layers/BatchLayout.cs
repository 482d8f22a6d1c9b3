using MimoSharp.Models.Caching;

namespace MimoSharp.Models.Layers;

/// <summary>
/// The rows of one forward call: the new tokens of several sequences laid end to end. Segment s owns
/// rows [RowStart[s], RowStart[s] + RowCount[s]) at positions cache.Length.. of its own cache.
/// Reused across calls; it grows and never shrinks.
/// </summary>
public sealed class BatchLayout
{
    private SequenceKvCache[] _caches = new SequenceKvCache[4];
    private int[] _rowStart = new int[4];
    private int[] _rowCount = new int[4];
    private int[] _firstPosition = new int[4];
    private LogitRows[] _logits = new LogitRows[4];
    private int[] _positions = new int[16];

    public int Segments { get; private set; }
    public int Rows { get; private set; }

    public SequenceKvCache Cache(int segment) => _caches[segment];
    public int RowStart(int segment) => _rowStart[segment];
    public int RowCount(int segment) => _rowCount[segment];
    /// <summary>Position of the first row of a segment.</summary>
    public int FirstPosition(int segment) => _firstPosition[segment];
    public int Position(int row) => _positions[row];
    /// <summary>Which rows of a segment get logits.</summary>
    public LogitRows Logits(int segment) => _logits[segment];

    public void Clear()
    {
        Segments = 0;
        Rows = 0;
    }

    public void Add(SequenceKvCache cache, int firstPosition, int count, LogitRows logits)
    {
        if (Segments == _caches.Length)
        {
            Array.Resize(ref _caches, Segments * 2);
            Array.Resize(ref _rowStart, Segments * 2);
            Array.Resize(ref _rowCount, Segments * 2);
            Array.Resize(ref _firstPosition, Segments * 2);
            Array.Resize(ref _logits, Segments * 2);
        }
        if (Rows + count > _positions.Length)
        {
            Array.Resize(ref _positions, Math.Max(Rows + count, _positions.Length * 2));
        }
        _caches[Segments] = cache;
        _rowStart[Segments] = Rows;
        _rowCount[Segments] = count;
        _firstPosition[Segments] = firstPosition;
        _logits[Segments] = logits;
        for (int i = 0; i < count; i++)
        {
            _positions[Rows + i] = firstPosition + i;
        }
        Segments++;
        Rows += count;
    }
}
