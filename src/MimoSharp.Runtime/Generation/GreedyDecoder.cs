using System.Diagnostics;
using MimoSharp.Models;
using MimoSharp.Models.Caching;
using MimoSharp.Tensors.Kernels;

namespace MimoSharp.Runtime.Generation;

/// <summary>Ids and timings of one greedy run.</summary>
public sealed record GreedyResult(int[] Ids, int PromptTokens, TimeSpan PrefillTime, TimeSpan DecodeTime)
{
    public double PrefillTokensPerSecond => PromptTokens / Math.Max(PrefillTime.TotalSeconds, 1e-9);
    /// <summary>Decode steps per second (the first generated token comes from the prefill).</summary>
    public double DecodeTokensPerSecond => Math.Max(Ids.Length - 1, 0) / Math.Max(DecodeTime.TotalSeconds, 1e-9);
}

/// <summary>
/// Greedy continuation of a prompt: one prefill forward, then one forward per generated token over
/// the cache. The decode loop reuses its buffers and allocates nothing per token.
/// </summary>
public sealed class GreedyDecoder(MimoModel model)
{
    public GreedyResult Generate(ReadOnlySpan<int> prompt, int maxTokens, IReadOnlySet<int>? stopIds = null)
    {
        if (prompt.IsEmpty)
        {
            throw new ArgumentException("the prompt holds no tokens; at least one is needed");
        }
        ArgumentOutOfRangeException.ThrowIfNegative(maxTokens);
        int limit = model.Config.MaxPositionEmbeddings;
        if (limit > 0 && prompt.Length + maxTokens > limit)
        {
            throw new ArgumentException($"prompt of {prompt.Length} tokens plus {maxTokens} new tokens exceeds the context of {limit} (max_position_embeddings)");
        }
        var output = new int[maxTokens];
        if (maxTokens == 0)
        {
            return new GreedyResult(output, prompt.Length, TimeSpan.Zero, TimeSpan.Zero);
        }
        SequenceKvCache cache = model.CreateCache(initialCapacity: prompt.Length + maxTokens);
        var logits = new float[model.VocabSize];
        var next = new int[1];

        long start = Stopwatch.GetTimestamp();
        model.Forward([new SequenceInput(cache, prompt.ToArray(), LogitRows.Last)], default, logits);
        TimeSpan prefill = Stopwatch.GetElapsedTime(start);

        start = Stopwatch.GetTimestamp();
        int produced = 0;
        while (true)
        {
            int token = VectorMath.ArgMax(logits);
            output[produced++] = token;
            if (produced == maxTokens || (stopIds?.Contains(token) ?? false))
            {
                break;
            }
            next[0] = token;
            model.Forward([new SequenceInput(cache, next, LogitRows.Last)], default, logits);
        }
        TimeSpan decode = Stopwatch.GetElapsedTime(start);
        return new GreedyResult(output[..produced], prompt.Length, prefill, decode);
    }
}
