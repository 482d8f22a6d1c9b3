namespace MimoSharp.Models.Caching;

/// <summary>
/// Keys and values of one attention layer for one sequence, in float32.
/// Global layers keep every position (the arrays grow by doubling, or are sized once from a capacity
/// hint). Sliding-window layers keep a ring of <c>windowKeys + reserve</c> positions, so their memory
/// does not grow with the context; the reserve lets the last positions be removed again (speculative
/// decoding drops rejected drafts) while the window before them is still held.
/// Layout: position p lives in slot p (global) or p % Capacity (ring); keys [slot, KeyWidth],
/// values [slot, ValueWidth].
/// </summary>
public sealed class LayerKvCache
{
    private float[] _keys;
    private float[] _values;
    private int _slots;

    public int KeyWidth { get; }
    public int ValueWidth { get; }
    /// <summary>Keys a query sees (its own included) on a sliding layer; 0 on a global layer.</summary>
    public int WindowKeys { get; }
    public bool IsRing => WindowKeys > 0;
    /// <summary>Positions appended so far; the next position to be written.</summary>
    public int Length { get; private set; }
    /// <summary>The oldest position still held.</summary>
    public int FirstHeld => IsRing ? Math.Max(0, Length - _slots) : 0;
    /// <summary>How many of the last positions can still be removed.</summary>
    public int MaxRemovable => !IsRing || FirstHeld == 0 ? Length : Math.Max(0, Length - (FirstHeld + WindowKeys - 1));
    /// <summary>Positions the storage holds now (ring capacity, or the grown size of a global cache).</summary>
    public int SlotCount => _slots;

    public LayerKvCache(int keyWidth, int valueWidth, int windowKeys, int reserve, int initialCapacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(keyWidth);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(valueWidth);
        ArgumentOutOfRangeException.ThrowIfNegative(windowKeys);
        ArgumentOutOfRangeException.ThrowIfNegative(reserve);
        KeyWidth = keyWidth;
        ValueWidth = valueWidth;
        WindowKeys = windowKeys;
        _slots = windowKeys > 0 ? windowKeys + Math.Max(1, reserve) : Math.Max(1, initialCapacity);
        _keys = new float[(long)_slots * keyWidth];
        _values = new float[(long)_slots * valueWidth];
    }

    /// <summary>Bytes of key/value storage held now.</summary>
    public long Bytes => ((long)_keys.Length + _values.Length) * sizeof(float);

    /// <summary>
    /// Ring only: how many new positions may be appended before their queries are computed without
    /// overwriting a key that the first of them still needs (window + chunk must fit in the ring).
    /// </summary>
    public int MaxChunk => IsRing ? _slots - WindowKeys + 1 : int.MaxValue;

    /// <summary>The first position a query at <paramref name="position"/> attends to.</summary>
    public int FirstVisible(int position) => IsRing ? Math.Max(0, position - WindowKeys + 1) : 0;

    public int Slot(int position) => IsRing ? position % _slots : position;

    /// <summary>Positions from <paramref name="position"/> stored one after another (up to the end of the ring).</summary>
    public int ContiguousFrom(int position) => IsRing ? _slots - Slot(position) : Length - position;

    /// <summary>Keys of <paramref name="count"/> contiguous positions from <paramref name="position"/>, [count, KeyWidth].</summary>
    public ReadOnlySpan<float> KeysFrom(int position, int count) => _keys.AsSpan(Slot(position) * KeyWidth, count * KeyWidth);

    /// <summary>Values of <paramref name="count"/> contiguous positions from <paramref name="position"/>, [count, ValueWidth].</summary>
    public ReadOnlySpan<float> ValuesFrom(int position, int count) => _values.AsSpan(Slot(position) * ValueWidth, count * ValueWidth);

    public Span<float> Key(int position) => _keys.AsSpan(Slot(position) * KeyWidth, KeyWidth);

    public Span<float> Value(int position) => _values.AsSpan(Slot(position) * ValueWidth, ValueWidth);

    internal float[] KeyStorage => _keys;
    internal float[] ValueStorage => _values;

    /// <summary>Makes room for <paramref name="count"/> more positions and returns the first new position.</summary>
    public int Extend(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        int first = Length;
        int needed = checked(Length + count);
        if (!IsRing && needed > _slots)
        {
            int slots = Math.Max(needed, checked(_slots * 2));
            Array.Resize(ref _keys, slots * KeyWidth);
            Array.Resize(ref _values, slots * ValueWidth);
            _slots = slots;
        }
        Length = needed;
        return first;
    }

    /// <summary>Removes the last <paramref name="count"/> positions.</summary>
    public void RemoveLast(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count > MaxRemovable)
        {
            throw new InvalidOperationException(
                $"cannot remove {count} positions: this sliding-window cache holds positions {FirstHeld}..{Length - 1} and a query after removal needs the {WindowKeys} before it, so at most {MaxRemovable} can be removed (raise the cache reserve)");
        }
        Length -= count;
    }
}
