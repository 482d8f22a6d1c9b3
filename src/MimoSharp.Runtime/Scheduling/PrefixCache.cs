using MimoSharp.Models;
using MimoSharp.Models.Caching;
using MimoSharp.Models.Configuration;
using MimoSharp.Runtime.Speculative;

namespace MimoSharp.Runtime.Scheduling;

/// <summary>
/// KV of earlier requests, so that the next turn of a conversation recomputes only its new tokens.
/// What a cut at position c needs differs by layer kind:
/// - global layers: every position before c. They are kept in pages of <see cref="PageTokens"/>
///   positions keyed by a chain of token hashes (a page's key covers its tokens and every token before
///   it), so turns of one conversation share the pages of their common prefix;
/// - sliding layers and MTP heads: only the last window positions before c. Their rings (window +
///   reserve positions) are kept whole as a <see cref="Checkpoint"/> at each turn boundary (after the
///   prompt's first decode step, and at the end of the answer); a cut can fall anywhere the ring still
///   holds a full window before it. A cut with no checkpoint covering it is a miss: a sliding layer's
///   window cannot be rebuilt from the global pages, which is what sglang #26577 / #32459 and
///   vllm #42784 got wrong.
/// - MTP head k's row t was fed token x_{t+k+1} and the main model's hidden state h_t: a restored head
///   row must have seen the new prompt's token there, and the first draft after the restore needs the
///   hidden states of the rows the head has not seen; the cut is therefore at most c - D and at most
///   what the heads hold, so every row the heads lack is recomputed by the main model after the cut.
/// Checkpoints are evicted least recently used first under the byte budget; a page lives while a
/// checkpoint uses it. Only the scheduler's loop thread calls it (<see cref="Bytes"/> excepted).
/// </summary>
internal sealed class PrefixCache
{
    public const int PageTokens = 16;

    private readonly int[] _globalLayers;
    private readonly int[] _slidingLayers;
    private readonly long _budget;
    private readonly Dictionary<ulong, Page> _pages = [];
    private readonly LinkedList<Checkpoint> _lru = new(); // most recently used first
    private long _bytes;

    public PrefixCache(MimoModel model, long budgetBytes)
    {
        IReadOnlyList<LayerKind> kinds = model.Derived.LayerKinds;
        _globalLayers = Enumerable.Range(0, kinds.Count).Where(i => !model.Derived.Attention(i).IsSliding).ToArray();
        _slidingLayers = Enumerable.Range(0, kinds.Count).Where(i => model.Derived.Attention(i).IsSliding).ToArray();
        _budget = budgetBytes;
    }

    /// <summary>Bytes held (pages, ring snapshots, token lists).</summary>
    public long Bytes => Interlocked.Read(ref _bytes);

    public int Checkpoints => _lru.Count;

    /// <summary>Keeps the KV of <paramref name="session"/>'s committed stream (between steps) as a checkpoint.</summary>
    public void Store(DecodingSession session)
    {
        SequenceKvCache cache = session.Cache;
        int length = cache.Length;
        if (length == 0 || session.Tokens.Count < length)
        {
            return;
        }
        // The stream's tokens up to and including the one after the cached positions (the MTP heads' rows read it).
        int[] tokens = new int[Math.Min(session.Tokens.Count, length + 1)];
        for (int i = 0; i < tokens.Length; i++)
        {
            tokens[i] = session.Tokens[i];
        }
        foreach (Checkpoint existing in _lru)
        {
            if (existing.Length == length && existing.Tokens.AsSpan().SequenceEqual(tokens))
            {
                Touch(existing);
                return;
            }
        }

        var pages = new Page[(length + PageTokens - 1) / PageTokens];
        Page? previous = null;
        ulong hash = 0x9E3779B97F4A7C15;
        for (int j = 0; j < pages.Length; j++)
        {
            int first = j * PageTokens, count = Math.Min(PageTokens, length - first);
            ReadOnlySpan<int> pageTokens = tokens.AsSpan(first, count);
            hash = ChainHash(hash, pageTokens);
            if (!_pages.TryGetValue(hash, out Page? page) || page.Previous != previous || !page.Tokens.AsSpan().SequenceEqual(pageTokens))
            {
                page = new Page(hash, previous, pageTokens.ToArray(), _globalLayers.Length);
                for (int g = 0; g < _globalLayers.Length; g++)
                {
                    LayerKvCache layer = cache.Layer(_globalLayers[g]);
                    page.Keys[g] = layer.KeysFrom(first, count).ToArray();
                    page.Values[g] = layer.ValuesFrom(first, count).ToArray();
                    page.Bytes += ((long)page.Keys[g].Length + page.Values[g].Length) * sizeof(float);
                }
                page.Bytes += count * sizeof(int);
                _pages.TryAdd(hash, page); // a hash collision keeps the first page; this one is private to the checkpoint
                Interlocked.Add(ref _bytes, page.Bytes);
            }
            page.References++;
            pages[j] = page;
            previous = page;
        }

        var checkpoint = new Checkpoint(tokens, length, pages,
            _slidingLayers.Select(i => cache.Layer(i).Snapshot()).ToArray(),
            Enumerable.Range(0, session.DraftTokens).Select(k => cache.Mtp(k).Snapshot()).ToArray(),
            Enumerable.Range(0, session.DraftTokens).Select(session.ValidHeadRows).ToArray());
        checkpoint.Bytes = (long)tokens.Length * sizeof(int)
            + checkpoint.Sliding.Sum(r => r.Bytes) + checkpoint.Heads.Sum(r => r.Bytes);
        Interlocked.Add(ref _bytes, checkpoint.Bytes);
        checkpoint.Node = _lru.AddFirst(checkpoint);
        while (Bytes > _budget && _lru.Last is { } oldest)
        {
            Evict(oldest.Value);
        }
    }

    /// <summary>
    /// Fills the empty <paramref name="target"/> with the longest cached prefix of <paramref name="prompt"/>
    /// usable by a sequence drafting <paramref name="drafts"/> tokens, and returns its length (0: a miss).
    /// </summary>
    public int TryRestore(ReadOnlySpan<int> prompt, int drafts, SequenceKvCache target)
    {
        if (target.Length != 0)
        {
            throw new InvalidOperationException($"a prefix is restored into an empty cache; this one holds {target.Length} positions");
        }
        Checkpoint? best = null;
        int bestCut = 0;
        foreach (Checkpoint checkpoint in _lru)
        {
            int cut = UsableCut(checkpoint, prompt, drafts);
            if (cut > bestCut)
            {
                best = checkpoint;
                bestCut = cut;
            }
        }
        if (best is null)
        {
            return 0;
        }
        for (int g = 0; g < _globalLayers.Length; g++)
        {
            LayerKvCache layer = target.Layer(_globalLayers[g]);
            for (int j = 0, position = 0; position < bestCut; j++)
            {
                Page page = best.Pages[j];
                int count = Math.Min(page.Tokens.Length, bestCut - position);
                layer.AppendComputed(page.Keys[g], page.Values[g], count);
                position += count;
            }
        }
        for (int s = 0; s < _slidingLayers.Length; s++)
        {
            target.Layer(_slidingLayers[s]).RestoreFrom(best.Sliding[s], bestCut);
        }
        for (int k = 0; k < drafts; k++)
        {
            target.Mtp(k).RestoreFrom(best.Heads[k], bestCut);
        }
        Touch(best);
        return bestCut;
    }

    /// <summary>The longest cut of <paramref name="checkpoint"/> that <paramref name="prompt"/> can reuse (0 if none).</summary>
    private static int UsableCut(Checkpoint checkpoint, ReadOnlySpan<int> prompt, int drafts)
    {
        int common = prompt.CommonPrefixLength(checkpoint.Tokens);
        // At least the prompt's last token runs (its logits choose the first token).
        int cut = Math.Min(Math.Min(common, checkpoint.Length), prompt.Length - 1);
        if (drafts > 0)
        {
            if (checkpoint.Heads.Length < drafts)
            {
                return 0;
            }
            cut = Math.Min(cut, common - drafts); // head k's rows before the cut read tokens up to cut + k < common
            for (int k = 0; k < drafts; k++)
            {
                cut = Math.Min(cut, checkpoint.HeadRows[k]);
            }
        }
        if (cut <= 0)
        {
            return 0;
        }
        foreach (LayerKvCache ring in checkpoint.Sliding)
        {
            if (!LayerKvCache.CanRestoreAt(ring, cut))
            {
                return 0;
            }
        }
        for (int k = 0; k < drafts; k++)
        {
            if (!LayerKvCache.CanRestoreAt(checkpoint.Heads[k], cut))
            {
                return 0;
            }
        }
        return cut;
    }

    private void Touch(Checkpoint checkpoint)
    {
        _lru.Remove(checkpoint.Node!);
        _lru.AddFirst(checkpoint.Node!);
    }

    private void Evict(Checkpoint checkpoint)
    {
        _lru.Remove(checkpoint.Node!);
        Interlocked.Add(ref _bytes, -checkpoint.Bytes);
        foreach (Page page in checkpoint.Pages)
        {
            if (--page.References == 0)
            {
                if (_pages.TryGetValue(page.Hash, out Page? held) && held == page)
                {
                    _pages.Remove(page.Hash);
                }
                Interlocked.Add(ref _bytes, -page.Bytes);
            }
        }
    }

    /// <summary>FNV-1a style 64-bit mix of a page's tokens into the hash of everything before it.</summary>
    private static ulong ChainHash(ulong previous, ReadOnlySpan<int> tokens)
    {
        ulong hash = previous ^ (ulong)tokens.Length;
        foreach (int token in tokens)
        {
            hash = (hash ^ (uint)token) * 0x100000001B3UL;
            hash ^= hash >> 29;
        }
        return hash;
    }

    private sealed class Page(ulong hash, Page? previous, int[] tokens, int globalLayers)
    {
        public ulong Hash { get; } = hash;
        /// <summary>The page before it in the chain (identity, so a hash collision cannot join two chains).</summary>
        public Page? Previous { get; } = previous;
        public int[] Tokens { get; } = tokens;
        /// <summary>Per global layer: keys [tokens, KeyWidth] and values [tokens, ValueWidth].</summary>
        public float[][] Keys { get; } = new float[globalLayers][];
        public float[][] Values { get; } = new float[globalLayers][];
        public long Bytes { get; set; }
        public int References { get; set; }
    }

    /// <summary>A turn boundary: the stream's tokens, its global pages, and the rings of its sliding layers and MTP heads.</summary>
    private sealed class Checkpoint(int[] tokens, int length, Page[] pages, LayerKvCache[] sliding, LayerKvCache[] heads, int[] headRows)
    {
        public int[] Tokens { get; } = tokens;
        /// <summary>Positions the main model had cached.</summary>
        public int Length { get; } = length;
        public Page[] Pages { get; } = pages;
        public LayerKvCache[] Sliding { get; } = sliding;
        public LayerKvCache[] Heads { get; } = heads;
        /// <summary>Per head: rows fed the committed stream (the rest took drafts).</summary>
        public int[] HeadRows { get; } = headRows;
        public long Bytes { get; set; }
        public LinkedListNode<Checkpoint>? Node { get; set; }
    }
}
