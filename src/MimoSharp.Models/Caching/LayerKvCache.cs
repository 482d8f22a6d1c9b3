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
    private readonly int _slotLimit;
    private int _floor; // a ring restored from a snapshot holds nothing below this position
    private int _highWater; // one past the highest position ever written: removed positions' slots overwrote older ones

    public int KeyWidth { get; }
    public int ValueWidth { get; }
    /// <summary>Keys a query sees (its own included) on a sliding layer; 0 on a global layer.</summary>
    public int WindowKeys { get; }
    public bool IsRing => WindowKeys > 0;
    /// <summary>Positions appended so far; the next position to be written.</summary>
    public int Length { get; private set; }
    /// <summary>The oldest position still held.</summary>
    public int FirstHeld => IsRing ? Math.Max(_floor, Math.Max(0, _highWater - _slots)) : 0;
    /// <summary>How many of the last positions can still be removed.</summary>
    public int MaxRemovable => !IsRing || FirstHeld == 0 ? Length : Math.Max(0, Length - (FirstHeld + WindowKeys - 1));
    /// <summary>Positions the storage holds now (ring capacity, or the grown size of a global cache).</summary>
    public int SlotCount => _slots;

    /// <param name="slotLimit">Global layers: the most positions the storage may grow to (an admission budget); 0 for no limit.</param>
    public LayerKvCache(int keyWidth, int valueWidth, int windowKeys, int reserve, int initialCapacity, int slotLimit = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(keyWidth);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(valueWidth);
        ArgumentOutOfRangeException.ThrowIfNegative(windowKeys);
        ArgumentOutOfRangeException.ThrowIfNegative(reserve);
        KeyWidth = keyWidth;
        ValueWidth = valueWidth;
        WindowKeys = windowKeys;
        _slotLimit = slotLimit;
        _slots = windowKeys > 0 ? windowKeys + Math.Max(1, reserve) : Math.Max(1, slotLimit > 0 ? Math.Min(initialCapacity, slotLimit) : initialCapacity);
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
            if (_slotLimit > 0 && needed > _slotLimit)
            {
                throw new InvalidOperationException($"this cache may hold at most {_slotLimit} positions (its admission budget); {needed} were asked for");
            }
            int slots = Math.Max(needed, checked(_slots * 2));
            if (_slotLimit > 0)
            {
                slots = Math.Min(slots, _slotLimit);
            }
            Array.Resize(ref _keys, slots * KeyWidth);
            Array.Resize(ref _values, slots * ValueWidth);
            _slots = slots;
        }
        Length = needed;
        _highWater = Math.Max(_highWater, needed);
        return first;
    }

    /// <summary>Global only: appends <paramref name="count"/> positions of keys [count, KeyWidth] and values [count, ValueWidth] computed elsewhere (a prefix cache).</summary>
    public void AppendComputed(ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int count)
    {
        if (IsRing)
        {
            throw new InvalidOperationException("a sliding-window ring is restored from a snapshot, not appended to");
        }
        int first = Extend(count);
        keys[..(count * KeyWidth)].CopyTo(_keys.AsSpan(first * KeyWidth));
        values[..(count * ValueWidth)].CopyTo(_values.AsSpan(first * ValueWidth));
    }

    /// <summary>A deep copy of this cache (a ring's checkpoint: its last window + reserve positions).</summary>
    public LayerKvCache Snapshot()
    {
        var copy = (LayerKvCache)MemberwiseClone();
        copy._keys = (float[])_keys.Clone();
        copy._values = (float[])_values.Clone();
        return copy;
    }

    /// <summary>Whether <see cref="RestoreFrom"/> can cut <paramref name="snapshot"/> at <paramref name="length"/>: every key a query after it sees is held.</summary>
    public static bool CanRestoreAt(LayerKvCache snapshot, int length) =>
        length >= 0 && length <= snapshot.Length && (snapshot.FirstHeld == 0 || length >= snapshot.FirstHeld + snapshot.WindowKeys - 1);

    /// <summary>
    /// Ring only: this cache becomes <paramref name="snapshot"/> cut back to <paramref name="length"/>
    /// positions (the positions before the snapshot's oldest are gone for good).
    /// </summary>
    public void RestoreFrom(LayerKvCache snapshot, int length)
    {
        if (!IsRing || snapshot.WindowKeys != WindowKeys || snapshot._slots != _slots || snapshot.KeyWidth != KeyWidth || snapshot.ValueWidth != ValueWidth)
        {
            throw new InvalidOperationException($"a snapshot of a ring of {snapshot._slots} slots cannot be restored into this cache ({_slots} slots, window {WindowKeys})");
        }
        if (!CanRestoreAt(snapshot, length))
        {
            throw new InvalidOperationException(
                $"the snapshot holds positions {snapshot.FirstHeld}..{snapshot.Length - 1}; a cut at {length} needs the {WindowKeys - 1} before it");
        }
        snapshot._keys.CopyTo(_keys, 0);
        snapshot._values.CopyTo(_values, 0);
        _floor = snapshot.FirstHeld;
        Length = length;
        _highWater = length;
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
