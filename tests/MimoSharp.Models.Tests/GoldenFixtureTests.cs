using System.Text.Json;
using MimoSharp.Models.Caching;
using MimoSharp.Tensors.Kernels;
using MimoSharp.Tensors.Storage;

namespace MimoSharp.Models.Tests;

/// <summary>
/// The mimo-tiny-random golden case: logits from an independent float64 implementation of the same
/// checkpoint. Tolerance 1e-4 of the largest |logit| (its README: 1e-2 would mean different math).
/// </summary>
public sealed class GoldenFixtureTests
{
    private static int[] Ids => Npy.Read(Path.Combine(TestPaths.TinyRandom, "ids.npy")).ToInt32s();

    [Fact]
    public void MainLogitsMatchReference()
    {
        using var model = MimoModel.Load(TestPaths.TinyRandomModel);
        int[] ids = Ids;
        NpyArray expected = Npy.Read(Path.Combine(TestPaths.TinyRandom, "logits.npy"));
        Assert.Equal([ids.Length, model.VocabSize], expected.Shape);

        var logits = new float[ids.Length * model.VocabSize];
        model.Forward([new SequenceInput(model.CreateCache(), ids)], default, logits);
        AssertClose(expected.Values, logits);
    }

    [Fact]
    public void MtpLogitsMatchReference()
    {
        using var model = MimoModel.Load(TestPaths.TinyRandomModel);
        Assert.Equal(3, model.MtpHeads);
        int[] ids = Ids;
        int t = ids.Length, h = model.HiddenSize, v = model.VocabSize;
        NpyArray expected = Npy.Read(Path.Combine(TestPaths.TinyRandom, "mtp_logits.npy"));
        Assert.Equal([3, t - 3, v], expected.Shape);

        SequenceKvCache cache = model.CreateCache();
        var hidden = new float[t * h];
        model.Forward([new SequenceInput(cache, ids, LogitRows.None)], hidden, default);
        int rows = t - 3;
        for (int k = 0; k < 3; k++)
        {
            // Head k at row r: hidden of position r, embedding of ids[r + k + 1].
            int[] tokens = ids[(k + 1)..(k + 1 + rows)];
            var logits = new float[rows * v];
            model.ForwardMtp(k, [new MtpInput(cache, tokens, hidden.AsMemory(0, rows * h))], logits);
            AssertClose(expected.Values.AsSpan(k * rows * v, rows * v), logits);
        }
    }

    [Fact]
    public void GreedyContinuationMatchesCase()
    {
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestPaths.TinyRandom, "case.json")));
        int[] ids = doc.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        int[] greedy = doc.RootElement.GetProperty("greedy").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        using var model = MimoModel.Load(TestPaths.TinyRandomModel);
        SequenceKvCache cache = model.CreateCache(reserve: 2);
        var logits = new float[model.VocabSize];
        model.Forward([new SequenceInput(cache, ids, LogitRows.Last)], default, logits);
        var produced = new List<int>();
        for (int i = 0; i < greedy.Length; i++)
        {
            int next = VectorMath.ArgMax(logits);
            produced.Add(next);
            model.Forward([new SequenceInput(cache, new[] { next }, LogitRows.Last)], default, logits);
        }
        Assert.Equal(greedy, produced);
    }

    internal static void AssertClose(ReadOnlySpan<double> expected, ReadOnlySpan<float> actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        double largest = 0, worst = 0;
        int worstIndex = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            largest = Math.Max(largest, Math.Abs(expected[i]));
            double diff = Math.Abs(expected[i] - actual[i]);
            if (diff > worst)
            {
                worst = diff;
                worstIndex = i;
            }
        }
        Assert.True(worst <= 1e-4 * largest,
            $"max |diff| {worst:E3} at {worstIndex} (expected {expected[worstIndex]}, got {actual[worstIndex]}) exceeds 1e-4 of the largest |logit| {largest:F4}");
    }
}
