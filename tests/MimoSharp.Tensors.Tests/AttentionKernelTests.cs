using MimoSharp.Tensors.Kernels;

namespace MimoSharp.Tensors.Tests;

/// <summary>Blocked online-softmax attention against a float64 softmax over the same keys, sink included.</summary>
public sealed class AttentionKernelTests
{
    /// <summary>out[h] = Σ_j softmax_j(q_h·k_j·scale, with the sink in the denominator) v_j, in float64.</summary>
    private static double[] Naive(float[] q, int heads, int headDim, float[] keys, float[] values, int valueDim, int kvStrideK, int kvStrideV,
        int kOffset, int vOffset, int count, float scale, float[]? sinks)
    {
        var output = new double[heads * valueDim];
        for (int h = 0; h < heads; h++)
        {
            var scores = new double[count];
            for (int j = 0; j < count; j++)
            {
                double dot = 0;
                for (int d = 0; d < headDim; d++)
                {
                    dot += (double)q[h * headDim + d] * keys[kOffset + j * kvStrideK + d];
                }
                scores[j] = dot * scale;
            }
            double max = sinks is null ? double.NegativeInfinity : sinks[h];
            foreach (double s in scores)
            {
                max = Math.Max(max, s);
            }
            double denominator = sinks is null ? 0 : Math.Exp(sinks[h] - max);
            foreach (double s in scores)
            {
                denominator += Math.Exp(s - max);
            }
            for (int j = 0; j < count; j++)
            {
                double p = Math.Exp(scores[j] - max) / denominator;
                for (int d = 0; d < valueDim; d++)
                {
                    output[h * valueDim + d] += p * values[vOffset + j * kvStrideV + d];
                }
            }
        }
        return output;
    }

    public static TheoryData<int, int, int, int, bool> Cases()
    {
        var data = new TheoryData<int, int, int, int, bool>();
        foreach ((int heads, int headDim, int valueDim) in new[] { (1, 192, 128), (4, 192, 128), (8, 192, 128), (6, 64, 64), (3, 64, 32), (8, 7, 5), (2, 33, 17) })
        {
            foreach (int count in new[] { 0, 1, 31, 32, 33, 100 })
            {
                data.Add(heads, headDim, valueDim, count, count % 2 == 0);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesFloat64SoftmaxOverPiecesWithoutReadingOutsideThem(int heads, int headDim, int valueDim, int count, bool withSink)
    {
        foreach (KernelIsa isa in KernelIsas.Supported)
        {
            CheckAgainstTwin(heads, headDim, valueDim, count, withSink, isa);
        }
    }

    private static void CheckAgainstTwin(int heads, int headDim, int valueDim, int count, bool withSink, KernelIsa isa)
    {
        var random = new Random(heads * 1000 + headDim * 10 + count);
        const int kvHeads = 2, kvHead = 1; // this group's KV head is the second of two in each cache row
        int keyStride = kvHeads * headDim, valueStride = kvHeads * valueDim;
        const int before = 3, after = 2; // cache rows outside the visible range: poisoned
        int rows = before + count + after;
        var keys = new float[rows * keyStride];
        var values = new float[rows * valueStride];
        Array.Fill(keys, float.NaN);
        Array.Fill(values, float.NaN);
        for (int j = before; j < before + count; j++)
        {
            for (int d = 0; d < keyStride; d++)
            {
                keys[j * keyStride + d] = (float)(random.NextDouble() * 2 - 1);
            }
            for (int d = 0; d < valueStride; d++)
            {
                values[j * valueStride + d] = (float)(random.NextDouble() * 2 - 1);
            }
        }
        float[] q = Enumerable.Range(0, heads * headDim).Select(_ => (float)(random.NextDouble() * 6 - 3)).ToArray();
        float[]? sinks = withSink ? Enumerable.Range(0, heads).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray() : null;
        float scale = 1f / MathF.Sqrt(headDim);

        var max = new float[heads];
        var sum = new float[heads];
        var acc = new float[heads * valueDim];
        var scratch = new float[AttentionKernel.ScratchLength(heads)];
        var output = new float[heads * valueDim];
        AttentionKernel.Begin(heads, valueDim, sinks, max, sum, acc);
        // Feed the visible rows in three uneven pieces, as a wrapped ring (or chunked prefill) would.
        int[] cuts = [0, count / 3, count / 3 + (count + 1) / 2, count];
        for (int piece = 0; piece < 3; piece++)
        {
            int first = before + cuts[piece], n = cuts[piece + 1] - cuts[piece];
            if (n == 0)
            {
                continue;
            }
            AttentionKernel.Accumulate(q, heads, headDim,
                keys.AsSpan(first * keyStride + kvHead * headDim, (n - 1) * keyStride + headDim), keyStride,
                values.AsSpan(first * valueStride + kvHead * valueDim, (n - 1) * valueStride + valueDim), valueStride, valueDim,
                n, scale, max, sum, acc, scratch, isa);
        }
        AttentionKernel.Finish(heads, valueDim, sum, acc, output);

        double[] expected = Naive(q, heads, headDim, keys, values, valueDim, keyStride, valueStride,
            before * keyStride + kvHead * headDim, before * valueStride + kvHead * valueDim, count, scale, sinks);
        for (int i = 0; i < output.Length; i++)
        {
            Assert.True(Math.Abs(output[i] - expected[i]) <= 2e-6 + 2e-5 * Math.Abs(expected[i]),
                $"{isa}: heads {heads} dims {headDim}/{valueDim} keys {count} sink {withSink} at {i}: expected {expected[i]}, got {output[i]}");
        }
    }

    [Fact]
    public void ASinkAloneGivesZeroAndNoKeysNoSinkGivesZero()
    {
        var max = new float[2];
        var sum = new float[2];
        var acc = new float[6];
        var output = new float[6];
        AttentionKernel.Begin(2, 3, [5f, -5f], max, sum, acc);
        AttentionKernel.Finish(2, 3, sum, acc, output);
        Assert.All(output, v => Assert.Equal(0f, v));
        AttentionKernel.Begin(2, 3, default, max, sum, acc);
        AttentionKernel.Finish(2, 3, sum, acc, output);
        Assert.All(output, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void ShortSpansAreRejected()
    {
        var state = new float[8];
        var ex = Assert.Throws<ArgumentException>(() => AttentionKernel.Accumulate(new float[4], 1, 4, new float[7], 4, new float[8], 4, 4, 2, 1f, state, state, state, new float[64]));
        Assert.Contains("too short", ex.Message);
    }
}
