using MimoSharp.Models.Caching;
using MimoSharp.Models.Configuration;

namespace MimoSharp.Models.Tests;

/// <summary>Decoding through the cache must give the logits of recomputing the whole sequence.</summary>
public sealed class CacheConsistencyTests
{
    private const float Tolerance = 2e-4f;

    private static int[] Sequence(int length, int vocab, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => random.Next(vocab)).ToArray();
    }

    private static float[] FullLogits(MimoModel model, int[] ids)
    {
        var logits = new float[ids.Length * model.VocabSize];
        model.Forward([new SequenceInput(model.CreateCache(), ids)], default, logits);
        return logits;
    }

    private static void AssertRowsClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        float largest = 0, worst = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            largest = MathF.Max(largest, MathF.Abs(expected[i]));
            worst = MathF.Max(worst, MathF.Abs(expected[i] - actual[i]));
        }
        Assert.True(worst <= Tolerance * MathF.Max(largest, 1f), $"{what}: max |diff| {worst} vs largest {largest}");
    }

    [Theory]
    [InlineData(1)]   // ring of window + 1: every step wraps
    [InlineData(3)]
    [InlineData(64)]  // ring never wraps in 40 tokens
    public void TokenByTokenDecodeEqualsFullRecompute(int reserve)
    {
        using var model = MimoModel.Load(RandomModels.Write("tiny-w8", RandomModels.TinyConfig(window: 8)));
        int[] ids = Sequence(40, model.VocabSize, seed: 7);
        float[] full = FullLogits(model, ids);
        SequenceKvCache cache = model.CreateCache(reserve: reserve, initialCapacity: 2);
        var logits = new float[model.VocabSize];
        for (int t = 0; t < ids.Length; t++)
        {
            model.Forward([new SequenceInput(cache, ids[t..(t + 1)])], default, logits);
            AssertRowsClose(full.AsSpan(t * model.VocabSize, model.VocabSize), logits, $"position {t}");
        }
        Assert.True(cache.Layer(1).IsRing);
        Assert.Equal(8 + reserve, cache.Layer(1).SlotCount);
    }

    [Theory]
    [InlineData(1, 5)]
    [InlineData(2, 13)]
    [InlineData(16, 7)]
    public void ChunkedPrefillEqualsFullRecompute(int reserve, int chunk)
    {
        using var model = MimoModel.Load(RandomModels.Write("tiny-w8", RandomModels.TinyConfig(window: 8)));
        int[] ids = Sequence(45, model.VocabSize, seed: 11);
        float[] full = FullLogits(model, ids);
        SequenceKvCache cache = model.CreateCache(reserve: reserve);
        for (int start = 0; start < ids.Length; start += chunk)
        {
            int[] part = ids[start..Math.Min(start + chunk, ids.Length)];
            var logits = new float[part.Length * model.VocabSize];
            model.Forward([new SequenceInput(cache, part)], default, logits);
            AssertRowsClose(full.AsSpan(start * model.VocabSize, logits.Length), logits, $"chunk at {start}");
        }
    }

    [Fact]
    public void RemovingPositionsThenDecodingEqualsRecomputeOfTheNewSequence()
    {
        using var model = MimoModel.Load(RandomModels.Write("tiny-w8", RandomModels.TinyConfig(window: 8)));
        int[] ids = Sequence(30, model.VocabSize, seed: 3);
        int[] replacement = Sequence(6, model.VocabSize, seed: 4);
        SequenceKvCache cache = model.CreateCache(reserve: 4);
        model.Forward([new SequenceInput(cache, ids, LogitRows.None)], default, default);
        cache.RemoveLast(4); // the ring holds window 8 + reserve 4: removing 4 keeps the window before them
        Assert.Equal(26, cache.Length);
        var logits = new float[replacement.Length * model.VocabSize];
        model.Forward([new SequenceInput(cache, replacement)], default, logits);

        int[] expectedIds = [.. ids[..26], .. replacement];
        float[] full = FullLogits(model, expectedIds);
        AssertRowsClose(full.AsSpan(26 * model.VocabSize), logits, "after removal");
    }

    [Fact]
    public void RemovingMoreThanTheRingCanRestoreFailsClearly()
    {
        using var model = MimoModel.Load(RandomModels.Write("tiny-w8", RandomModels.TinyConfig(window: 8)));
        SequenceKvCache cache = model.CreateCache(reserve: 2);
        model.Forward([new SequenceInput(cache, Sequence(30, model.VocabSize, 5), LogitRows.None)], default, default);
        // The ring holds 8 + 2 = 10 positions (20..29): a query at 27 needs 20..26, so 3 can go, 4 cannot.
        var ex = Assert.Throws<InvalidOperationException>(() => cache.RemoveLast(4));
        Assert.Contains("at most 3", ex.Message);
        Assert.Equal(30, cache.Length);
    }

    [Theory]
    [InlineData(1)]  // the one-row MoE path
    [InlineData(5)]  // the few-rows path (whole experts per thread)
    [InlineData(8)]
    public void ChunksThroughTheSmallBatchMoePathsEqualOneLargeForward(int chunk)
    {
        // 48 rows at once take the general MoE path (per-expert products split over threads).
        using var model = MimoModel.Load(RandomModels.Write("tiny-w8", RandomModels.TinyConfig(window: 8)));
        int v = model.VocabSize;
        int[] ids = Sequence(48, v, 41);
        float[] full = FullLogits(model, ids);
        SequenceKvCache cache = model.CreateCache(reserve: chunk);
        var logits = new float[chunk * v];
        for (int t = 0; t < ids.Length; t += chunk)
        {
            int n = Math.Min(chunk, ids.Length - t);
            model.Forward([new SequenceInput(cache, ids[t..(t + n)])], default, logits.AsSpan(0, n * v));
            AssertRowsClose(full.AsSpan(t * v, n * v), logits.AsSpan(0, n * v), $"rows {t}..{t + n - 1}");
        }
    }

    [Fact]
    public void BatchOfSequencesAtDifferentPositionsEqualsSeparateRuns()
    {
        using var model = MimoModel.Load(RandomModels.Write("tiny-w8", RandomModels.TinyConfig(window: 8)));
        int v = model.VocabSize;
        int[][] prompts = [Sequence(20, v, 21), Sequence(3, v, 22), Sequence(12, v, 23)];
        int[][] next = [Sequence(1, v, 31), Sequence(5, v, 32), Sequence(2, v, 33)];

        SequenceKvCache[] caches = prompts.Select(_ => model.CreateCache(reserve: 2)).ToArray();
        for (int s = 0; s < prompts.Length; s++)
        {
            model.Forward([new SequenceInput(caches[s], prompts[s], LogitRows.None)], default, default);
        }
        SequenceInput[] batch = Enumerable.Range(0, 3).Select(s => new SequenceInput(caches[s], next[s])).ToArray();
        var batched = new float[MimoModel.CountLogitRows(batch) * v];
        model.Forward(batch, default, batched);

        int offset = 0;
        for (int s = 0; s < prompts.Length; s++)
        {
            float[] full = FullLogits(model, [.. prompts[s], .. next[s]]);
            int rows = next[s].Length;
            AssertRowsClose(full.AsSpan(prompts[s].Length * v, rows * v), batched.AsSpan(offset, rows * v), $"sequence {s}");
            offset += rows * v;
        }
    }

    [Fact]
    public void SlidingLayersWithAWindowLongerThanTheSequenceEqualGlobalLayers()
    {
        // Same geometry, theta and sinks for both kinds, so only the mask can differ.
        MimoConfig baseConfig = RandomModels.TinyConfig(window: 64);
        MimoConfig sliding = baseConfig with
        {
            HybridLayerPattern = Enumerable.Repeat(1, baseConfig.NumHiddenLayers).ToArray(),
            NumKeyValueHeads = baseConfig.SwaNumKeyValueHeads,
            RopeTheta = baseConfig.SwaRopeTheta,
            AddFullAttentionSinkBias = true,
        };
        string slidingDir = RandomModels.Write("tiny-all-sliding", sliding);
        string globalDir = RandomModels.TempDir("tiny-all-global");
        foreach (string file in Directory.GetFiles(slidingDir, "*.safetensors"))
        {
            File.Copy(file, Path.Combine(globalDir, Path.GetFileName(file)));
        }
        MimoConfig global = sliding with { HybridLayerPattern = Enumerable.Repeat(0, baseConfig.NumHiddenLayers).ToArray() };
        File.WriteAllText(Path.Combine(globalDir, "config.json"), global.ToJson());

        using var slidingModel = MimoModel.Load(slidingDir);
        using var globalModel = MimoModel.Load(globalDir);
        int[] ids = Sequence(40, slidingModel.VocabSize, seed: 9);
        float[] a = FullLogits(slidingModel, ids);
        float[] b = FullLogits(globalModel, ids);
        AssertRowsClose(a, b, "sliding vs global");

        // And a window shorter than the sequence does change the result (the mask is really applied).
        MimoConfig shortWindow = sliding with { SlidingWindow = 8, SlidingWindowSize = 8 };
        string shortDir = RandomModels.TempDir("tiny-short-window");
        foreach (string file in Directory.GetFiles(slidingDir, "*.safetensors"))
        {
            File.Copy(file, Path.Combine(shortDir, Path.GetFileName(file)));
        }
        File.WriteAllText(Path.Combine(shortDir, "config.json"), shortWindow.ToJson());
        using var shortModel = MimoModel.Load(shortDir);
        float[] c = FullLogits(shortModel, ids);
        float[] lastA = a[^slidingModel.VocabSize..], lastC = c[^slidingModel.VocabSize..];
        Assert.True(lastA.Zip(lastC).Max(p => MathF.Abs(p.First - p.Second)) > 1e-3f);
    }

    [Fact]
    public void SGLangConventionSeesOneMoreKey()
    {
        // SGLang's window w behaves as the HF convention with w + 1.
        MimoConfig config = RandomModels.TinyConfig(window: 8);
        string dir = RandomModels.Write("tiny-w8", config);
        string wider = RandomModels.TempDir("tiny-w9");
        foreach (string file in Directory.GetFiles(dir, "*.safetensors"))
        {
            File.Copy(file, Path.Combine(wider, Path.GetFileName(file)));
        }
        File.WriteAllText(Path.Combine(wider, "config.json"), (config with { SlidingWindow = 9, SlidingWindowSize = 9 }).ToJson());
        using var sglang = MimoModel.Load(dir, new ModelLoadOptions { WindowConvention = SlidingWindowConvention.SGLang });
        using var hf9 = MimoModel.Load(wider);
        using var hf8 = MimoModel.Load(dir);
        int[] ids = Sequence(30, sglang.VocabSize, seed: 12);
        float[] a = FullLogits(sglang, ids);
        AssertRowsClose(FullLogits(hf9, ids), a, "SGLang w=8 vs HF w=9");
        float[] c = FullLogits(hf8, ids);
        Assert.True(a.Zip(c).Max(p => MathF.Abs(p.First - p.Second)) > 1e-3f);
    }

    [Fact]
    public void MtpHeadDecodedIncrementallyEqualsOneCall()
    {
        using var model = MimoModel.Load(RandomModels.Write("tiny-w8", RandomModels.TinyConfig(window: 8)));
        int v = model.VocabSize, h = model.HiddenSize;
        int[] ids = Sequence(30, v, seed: 13);
        SequenceKvCache cache = model.CreateCache(reserve: 1);
        var hidden = new float[ids.Length * h];
        model.Forward([new SequenceInput(cache, ids, LogitRows.None)], hidden, default);
        int rows = ids.Length - 1;
        var once = new float[rows * v];
        model.ForwardMtp(0, [new MtpInput(cache, ids[1..], hidden.AsMemory(0, rows * h))], once);

        SequenceKvCache cache2 = model.CreateCache(reserve: 1);
        model.Forward([new SequenceInput(cache2, ids, LogitRows.None)], default, default);
        var step = new float[v];
        for (int t = 0; t < rows; t++)
        {
            model.ForwardMtp(0, [new MtpInput(cache2, ids[(t + 1)..(t + 2)], hidden.AsMemory(t * h, h))], step);
            AssertRowsClose(once.AsSpan(t * v, v), step, $"MTP row {t}");
        }
    }
}

/// <summary>Ring bookkeeping that the prefix cache's checkpoints rely on.</summary>
public sealed class RingCheckpointTests
{
    [Fact]
    public void RemovedPositionsCountAsHavingOverwrittenTheOldestSlots()
    {
        var ring = new LayerKvCache(keyWidth: 1, valueWidth: 1, windowKeys: 4, reserve: 2, initialCapacity: 0); // 6 slots
        for (int p = 0; p < 10; p++)
        {
            ring.Extend(1);
            ring.Key(p)[0] = p;
            ring.Value(p)[0] = -p;
        }
        ring.RemoveLast(3); // positions 7..9 were written into the slots of 1..3
        Assert.Equal(7, ring.Length);
        Assert.Equal(4, ring.FirstHeld);
        LayerKvCache snapshot = ring.Snapshot();
        Assert.True(LayerKvCache.CanRestoreAt(snapshot, 7));
        Assert.False(LayerKvCache.CanRestoreAt(snapshot, 6)); // a query at 6 would need position 3
        Assert.False(LayerKvCache.CanRestoreAt(snapshot, 8)); // beyond what the snapshot holds

        var restored = new LayerKvCache(1, 1, 4, 2, 0);
        restored.RestoreFrom(snapshot, 7);
        Assert.Equal(7, restored.Length);
        Assert.Equal(4, restored.FirstHeld);
        for (int p = 4; p < 7; p++)
        {
            Assert.Equal(p, restored.Key(p)[0]);
            Assert.Equal(-p, restored.Value(p)[0]);
        }
        Assert.Throws<InvalidOperationException>(() => restored.RestoreFrom(snapshot, 5));
        ring.Key(4)[0] = 99; // the snapshot is a copy
        Assert.Equal(4, snapshot.Key(4)[0]);
    }
}
