namespace MimoSharp.Runtime.Speculative;

/// <summary>
/// The main model's pre-norm hidden states of recent positions, [count, H] from <see cref="FirstPosition"/>:
/// the MTP heads consume them one draft round later. Grows for a prefill and is trimmed back to the
/// last few positions after it.
/// </summary>
internal sealed class HiddenHistory(int hidden)
{
    private float[] _data = new float[hidden * 16];

    public int FirstPosition { get; private set; }
    public int Count { get; private set; }
    public int EndPosition => FirstPosition + Count;

    /// <summary>Appends rows for positions EndPosition.. (the caller passes them in order).</summary>
    public void Append(ReadOnlySpan<float> rows)
    {
        int added = rows.Length / hidden;
        if ((Count + added) * hidden > _data.Length)
        {
            Array.Resize(ref _data, Math.Max((Count + added) * hidden, _data.Length * 2));
        }
        rows.CopyTo(_data.AsSpan(Count * hidden));
        Count += added;
    }

    /// <summary>Forgets everything; the next row appended is position <paramref name="firstPosition"/>.</summary>
    public void Reset(int firstPosition)
    {
        FirstPosition = firstPosition;
        Count = 0;
    }

    /// <summary>Forgets positions at or after <paramref name="position"/>.</summary>
    public void TruncateTo(int position) => Count = Math.Clamp(position - FirstPosition, 0, Count);

    /// <summary>Keeps only the last <paramref name="keep"/> positions.</summary>
    public void KeepLast(int keep)
    {
        if (Count <= keep)
        {
            return;
        }
        int drop = Count - keep;
        _data.AsSpan(drop * hidden, keep * hidden).CopyTo(_data);
        FirstPosition += drop;
        Count = keep;
    }

    /// <summary>Rows for positions [from, from + count).</summary>
    public ReadOnlyMemory<float> Rows(int from, int count)
    {
        if (from < FirstPosition || from + count > EndPosition)
        {
            throw new InvalidOperationException($"hidden states of positions {from}..{from + count - 1} are not held (held: {FirstPosition}..{EndPosition - 1})");
        }
        return _data.AsMemory((from - FirstPosition) * hidden, count * hidden);
    }
}
