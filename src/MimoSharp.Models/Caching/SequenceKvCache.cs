using MimoSharp.Models.Configuration;

namespace MimoSharp.Models.Caching;

/// <summary>
/// Everything one sequence has cached: a <see cref="LayerKvCache"/> per decoder layer (global or ring
/// by the layer's kind) and one per MTP head (rings, as the heads are sliding-window layers).
/// </summary>
public sealed class SequenceKvCache
{
    private readonly LayerKvCache[] _layers;
    private readonly LayerKvCache[] _mtp;

    /// <param name="positionLimit">Global layers never grow beyond this many positions (0: no limit); see <see cref="BytesFor"/>.</param>
    public SequenceKvCache(MimoDerivedConfig derived, int mtpHeads, int reserve = 16, int initialCapacity = 256, int positionLimit = 0)
    {
        _layers = new LayerKvCache[derived.LayerKinds.Count];
        for (int i = 0; i < _layers.Length; i++)
        {
            AttentionGeometry g = derived.Attention(i);
            _layers[i] = new LayerKvCache(g.KeyWidth, g.ValueWidth, g.WindowKeys, reserve, initialCapacity, positionLimit);
        }
        _mtp = new LayerKvCache[mtpHeads];
        for (int k = 0; k < mtpHeads; k++)
        {
            AttentionGeometry g = derived.Sliding;
            _mtp[k] = new LayerKvCache(g.KeyWidth, g.ValueWidth, g.WindowKeys, reserve, initialCapacity);
        }
    }

    /// <summary>
    /// The most bytes a cache of <paramref name="positions"/> positions can hold: global layers
    /// [positions, K + V] each, sliding layers and MTP heads their rings of window + reserve.
    /// </summary>
    public static long BytesFor(MimoDerivedConfig derived, int mtpHeads, int reserve, int positions)
    {
        long bytes = 0;
        for (int i = 0; i < derived.LayerKinds.Count; i++)
        {
            AttentionGeometry g = derived.Attention(i);
            bytes += (long)(g.WindowKeys > 0 ? g.WindowKeys + Math.Max(1, reserve) : Math.Max(1, positions)) * (g.KeyWidth + g.ValueWidth);
        }
        AttentionGeometry s = derived.Sliding;
        bytes += (long)mtpHeads * (s.WindowKeys + Math.Max(1, reserve)) * (s.KeyWidth + s.ValueWidth);
        return bytes * sizeof(float);
    }

    /// <summary>Positions the main model has cached.</summary>
    public int Length => _layers[0].Length;

    public LayerKvCache Layer(int layer) => _layers[layer];

    public LayerKvCache Mtp(int head) => _mtp[head];

    public int MtpHeads => _mtp.Length;

    /// <summary>Bytes held by all layers and heads.</summary>
    public long Bytes
    {
        get
        {
            long bytes = 0; // a loop, not LINQ: the scheduler reads it every step
            foreach (LayerKvCache layer in _layers)
            {
                bytes += layer.Bytes;
            }
            foreach (LayerKvCache head in _mtp)
            {
                bytes += head.Bytes;
            }
            return bytes;
        }
    }

    /// <summary>Removes the last <paramref name="count"/> positions of the main model's layers.</summary>
    public void RemoveLast(int count)
    {
        CheckRemovable(_layers, count, "main model");
        foreach (LayerKvCache layer in _layers)
        {
            layer.RemoveLast(count);
        }
    }

    /// <summary>Cuts every main layer and MTP head that holds more than <paramref name="length"/> positions back to it.</summary>
    public void TruncateTo(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        foreach (LayerKvCache cache in _layers.Concat(_mtp))
        {
            if (cache.Length > length && cache.Length - length > cache.MaxRemovable)
            {
                throw new InvalidOperationException(
                    $"cannot truncate to {length} positions: a cache holds {cache.Length} and can remove at most {cache.MaxRemovable}");
            }
        }
        foreach (LayerKvCache cache in _layers.Concat(_mtp))
        {
            if (cache.Length > length)
            {
                cache.RemoveLast(cache.Length - length);
            }
        }
    }

    private static void CheckRemovable(LayerKvCache[] caches, int count, string what)
    {
        foreach (LayerKvCache cache in caches)
        {
            if (count > cache.MaxRemovable)
            {
                throw new InvalidOperationException(
                    $"cannot remove {count} positions of the {what}: a cache can remove at most {cache.MaxRemovable}");
            }
        }
    }
}
