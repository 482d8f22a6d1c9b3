using MimoSharp.Runtime.Generation;
using MimoSharp.Tensors.Kernels;

namespace MimoSharp.Runtime.Sampling;

/// <summary>
/// The sampling chain of <see cref="SamplingOptions"/> (penalties, logit bias, temperature, top-k, top-p,
/// min-p, seeded draw; the order is documented there) over one preallocated candidate buffer: nothing is
/// allocated per token. Tokens at or beyond <see cref="ValidVocabSize"/> (embedding padding rows) are never chosen.
/// <para>
/// The sampler is stateless apart from its random generator: the penalties are computed from the history
/// passed with each call, so speculative verification can ask for the distribution at several positions,
/// each with its own history, in any order.
/// </para>
/// </summary>
public sealed class Sampler : ITokenSampler
{
    private readonly SamplingOptions _options;
    private readonly int _vocab;
    private readonly int _validVocab;
    private readonly int _promptLength;
    private readonly float[] _work;        // [vocab] logits after penalties, then probabilities (Sample only)
    private readonly int[] _outputCounts;  // [vocab] occurrences in the output; all zero between calls
    private readonly bool[] _seen;         // [vocab] present in prompt or output; all false between calls
    private readonly float[] _topKHeap;    // [top_k] min-heap of the k largest logits
    private readonly ulong[] _topPKeys;    // [vocab] top-p candidates: (descending probability, ascending id) packed for one primitive sort
    private readonly int[] _biasTokens;    // logit_bias flattened: a dictionary enumerator would allocate per token
    private readonly float[] _biasValues;
    private Xoshiro256 _random;

    /// <param name="options">Validated here; an invalid option throws <see cref="ArgumentException"/> naming it.</param>
    /// <param name="vocabSize">Length of a logits row.</param>
    /// <param name="promptLength">History before this index is prompt: presence and frequency penalties count only what follows.</param>
    /// <param name="validVocabSize">Tokens at or beyond it (padding rows of the embedding) are never chosen; defaults to, and is capped at, <paramref name="vocabSize"/>.</param>
    public Sampler(SamplingOptions options, int vocabSize, int promptLength = 0, int? validVocabSize = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vocabSize);
        ArgumentOutOfRangeException.ThrowIfNegative(promptLength);
        // A tokenizer may know more ids than the model has logits for; those can never be sampled anyway.
        int validVocab = Math.Min(validVocabSize ?? vocabSize, vocabSize);
        if (validVocab <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(validVocabSize), validVocab, "validVocabSize must be at least 1");
        }
        // Bias tokens must name real tokens, not padding rows (where the bias could only be ignored).
        _options = options.Validate(validVocab);
        _vocab = vocabSize;
        _validVocab = validVocab;
        _promptLength = promptLength;
        _work = new float[vocabSize];
        _outputCounts = new int[vocabSize];
        _seen = new bool[vocabSize];
        _topKHeap = new float[options.TopK > 0 && options.TopK < validVocab ? options.TopK : 0];
        _topPKeys = new ulong[options.TopP < 1f ? vocabSize : 0];
        _biasTokens = options.LogitBias?.Keys.ToArray() ?? [];
        _biasValues = _biasTokens.Select(t => options.LogitBias![t]).ToArray();
        Reseed(options.Seed ?? unchecked((ulong)Random.Shared.NextInt64(long.MinValue, long.MaxValue)));
    }

    /// <summary>The seed of the generator (the options' seed, the last <see cref="Reseed"/>, or a random one): it reproduces the run.</summary>
    public ulong Seed { get; private set; }

    public SamplingOptions Options => _options;
    public int VocabSize => _vocab;
    public int ValidVocabSize => _validVocab;
    public int PromptLength => _promptLength;

    /// <summary>Temperature 0: the argmax is taken and the random generator is never used.</summary>
    public bool IsGreedy => _options.IsGreedy;

    /// <summary>The generator's state. A copy is a snapshot: setting it back replays the same draws.</summary>
    public Xoshiro256 RandomState
    {
        get => _random;
        set => _random = value.IsDegenerate
            ? throw new ArgumentException("an all-zero xoshiro256 state only ever yields zeros; take the state from a seeded generator", nameof(value))
            : value;
    }

    /// <summary>Restarts the generator as if the sampler had been built with <paramref name="seed"/>.</summary>
    public void Reseed(ulong seed)
    {
        Seed = seed;
        _random = new Xoshiro256(seed);
    }

    /// <summary>A uniform number in [0, 1) from the sampler's generator (speculative acceptance tests).</summary>
    public double NextUniform() => _random.NextDouble();

    /// <summary>
    /// The next token after <paramref name="logits"/> [≥ vocab], given <paramref name="history"/> (prompt then
    /// generated ids, for the penalties). Greedy takes the first argmax without using the generator.
    /// </summary>
    public int Sample(ReadOnlySpan<float> logits, ReadOnlySpan<int> history)
    {
        CheckLogits(logits);
        Span<float> work = _work;
        PrepareLogits(logits, history, work);
        if (_options.IsGreedy)
        {
            return CheckedArgMax(work);
        }
        ToFilteredDistribution(work);
        return SampleFrom(work);
    }

    /// <summary>
    /// probs[..vocab] = the distribution <see cref="Sample"/> draws from: every stage applied, filtered tokens
    /// (and padding rows) exactly zero, the rest summing to 1. Greedy gives the one-hot of the argmax.
    /// <paramref name="probs"/> may not overlap <paramref name="logits"/>.
    /// </summary>
    public void ComputeProbabilities(ReadOnlySpan<float> logits, ReadOnlySpan<int> history, Span<float> probs)
    {
        CheckLogits(logits);
        if (probs.Length < _vocab)
        {
            throw new ArgumentException($"probs holds {probs.Length} values, fewer than the vocabulary of {_vocab}", nameof(probs));
        }
        Span<float> work = probs[.._vocab];
        PrepareLogits(logits, history, work);
        if (_options.IsGreedy)
        {
            int best = CheckedArgMax(work);
            work.Clear();
            work[best] = 1f;
            return;
        }
        ToFilteredDistribution(work);
    }

    /// <summary>
    /// A token drawn from <paramref name="probs"/> (non-negative weights, need not be normalised; e.g. a
    /// speculative residual) with the sampler's generator; ids at or beyond <see cref="ValidVocabSize"/> are never drawn.
    /// A greedy sampler returns the first argmax instead, without using the generator.
    /// </summary>
    public int SampleFrom(ReadOnlySpan<float> probs)
    {
        if (probs.Length < _validVocab)
        {
            throw new ArgumentException($"probs holds {probs.Length} values, fewer than the {_validVocab} valid tokens", nameof(probs));
        }
        ReadOnlySpan<float> valid = probs[.._validVocab];
        if (_options.IsGreedy)
        {
            int best = VectorMath.ArgMax(valid);
            return valid[best] > 0 ? best : throw new InvalidOperationException("cannot choose from a distribution with no mass");
        }
        double total = 0;
        foreach (float p in valid)
        {
            if (p > 0)
            {
                total += p;
            }
        }
        if (!(total > 0 && double.IsFinite(total)))
        {
            throw new InvalidOperationException($"cannot draw from a distribution with total mass {total}");
        }
        // Inverse CDF: the first token whose cumulative weight passes u·total.
        double u = _random.NextDouble() * total;
        int last = -1;
        for (int i = 0; i < valid.Length; i++)
        {
            float p = valid[i];
            if (p > 0)
            {
                last = i;
                u -= p;
                if (u < 0)
                {
                    return i;
                }
            }
        }
        return last; // rounding left a sliver of u: the last token with mass
    }

    void ITokenSampler.Probabilities(ReadOnlySpan<float> logits, ReadOnlySpan<int> history, Span<float> probs) =>
        ComputeProbabilities(logits, history, probs);

    int ITokenSampler.Draw(ReadOnlySpan<float> probs) => SampleFrom(probs);

    private void CheckLogits(ReadOnlySpan<float> logits)
    {
        if (logits.Length < _vocab)
        {
            throw new ArgumentException($"logits holds {logits.Length} values, fewer than the vocabulary of {_vocab}", nameof(logits));
        }
    }

    /// <summary>work = logits with padding rows at -inf, then repetition, presence and frequency penalties, then logit bias.</summary>
    private void PrepareLogits(ReadOnlySpan<float> logits, ReadOnlySpan<int> history, Span<float> work)
    {
        logits[.._vocab].CopyTo(work);
        work[_validVocab..].Fill(float.NegativeInfinity);
        ApplyPenalties(work, history);
        for (int i = 0; i < _biasTokens.Length; i++)
        {
            work[_biasTokens[i]] += _biasValues[i];
        }
    }

    /// <summary>In place, penalised logits → the final distribution: temperature, top-k, softmax, top-p, min-p, renormalisation.</summary>
    private void ToFilteredDistribution(Span<float> work)
    {
        if (_topKHeap.Length > 0)
        {
            KeepTopK(work);
        }
        Softmax(work, 1f / _options.Temperature);
        if (_topPKeys.Length > 0)
        {
            KeepTopP(work, _options.TopP);
        }
        if (_options.MinP > 0f)
        {
            // Filtering by top-p and renormalising both keep p_max and the ratios, so the order of the two is immaterial here.
            float threshold = _options.MinP * work[VectorMath.ArgMax(work)];
            for (int i = 0; i < work.Length; i++)
            {
                if (work[i] < threshold)
                {
                    work[i] = 0f;
                }
            }
        }
        Normalize(work);
    }

    private int CheckedArgMax(ReadOnlySpan<float> work)
    {
        int best = VectorMath.ArgMax(work);
        return work[best] > float.NegativeInfinity ? best : throw NoTokenLeft();
    }

    private static InvalidOperationException NoTokenLeft() =>
        new("no token is left to sample: the logits are NaN, or padding and logit_bias exclude every token");

    private void ApplyPenalties(Span<float> work, ReadOnlySpan<int> history)
    {
        bool repetition = _options.RepetitionPenalty != 1f;
        bool additive = _options.PresencePenalty != 0f || _options.FrequencyPenalty != 0f;
        if (!repetition && !additive)
        {
            return;
        }
        // Checked before any mark is set, so a bad id cannot leave _seen / _outputCounts dirty.
        foreach (int token in history)
        {
            if ((uint)token >= (uint)_vocab)
            {
                throw new ArgumentOutOfRangeException(nameof(history), token, $"history holds token {token}, outside the vocabulary [0, {_vocab})");
            }
        }
        for (int i = 0; i < history.Length; i++)
        {
            int token = history[i];
            _seen[token] = true;
            if (i >= _promptLength)
            {
                _outputCounts[token]++;
            }
        }
        // Each distinct token is penalised once (the first time it is met) and its marks cleared,
        // which restores the all-false / all-zero invariant without a pass over the vocabulary.
        foreach (int token in history)
        {
            if (!_seen[token])
            {
                continue;
            }
            _seen[token] = false;
            if (repetition)
            {
                float l = work[token];
                work[token] = l > 0 ? l / _options.RepetitionPenalty : l * _options.RepetitionPenalty;
            }
            int count = _outputCounts[token];
            if (count > 0)
            {
                work[token] -= _options.PresencePenalty + _options.FrequencyPenalty * count;
            }
            _outputCounts[token] = 0;
        }
    }

    /// <summary>Sets every logit below the k-th largest to -inf (ties with it are kept, as in HF and vLLM).</summary>
    private void KeepTopK(Span<float> logits)
    {
        // The k-th largest through a min-heap of the k largest seen: O(V log k), no sort of the vocabulary.
        Span<float> heap = _topKHeap;
        int k = heap.Length;
        int size = 0;
        foreach (float v in logits)
        {
            if (size < k)
            {
                heap[size] = v;
                SiftUp(heap, size++);
            }
            else if (v > heap[0])
            {
                heap[0] = v;
                SiftDown(heap, 0, size);
            }
        }
        float threshold = heap[0];
        for (int i = 0; i < logits.Length; i++)
        {
            if (logits[i] < threshold)
            {
                logits[i] = float.NegativeInfinity;
            }
        }
    }

    private static void SiftUp(Span<float> heap, int i)
    {
        while (i > 0)
        {
            int parent = (i - 1) / 2;
            if (heap[parent] <= heap[i])
            {
                return;
            }
            (heap[parent], heap[i]) = (heap[i], heap[parent]);
            i = parent;
        }
    }

    private static void SiftDown(Span<float> heap, int i, int size)
    {
        while (true)
        {
            int smallest = i, left = 2 * i + 1, right = left + 1;
            if (left < size && heap[left] < heap[smallest])
            {
                smallest = left;
            }
            if (right < size && heap[right] < heap[smallest])
            {
                smallest = right;
            }
            if (smallest == i)
            {
                return;
            }
            (heap[smallest], heap[i]) = (heap[i], heap[smallest]);
            i = smallest;
        }
    }

    /// <summary>In place: softmax(logits · inverseTemperature); -inf logits get probability exactly 0.</summary>
    private static void Softmax(Span<float> values, float inverseTemperature)
    {
        float max = float.NegativeInfinity;
        foreach (float v in values)
        {
            max = MathF.Max(max, v); // NaN propagates, and is caught by the sum below
        }
        double sum = 0;
        for (int i = 0; i < values.Length; i++)
        {
            // Scaling the difference (not the logit) keeps the exponent ≤ 0 for any temperature: no overflow.
            float e = float.IsNegativeInfinity(values[i]) ? 0f : MathF.Exp((values[i] - max) * inverseTemperature);
            values[i] = e;
            sum += e;
        }
        if (!(sum > 0 && double.IsFinite(sum)))
        {
            throw NoTokenLeft();
        }
        float inv = (float)(1.0 / sum);
        for (int i = 0; i < values.Length; i++)
        {
            values[i] *= inv;
        }
    }

    /// <summary>Keeps the smallest most-likely set with cumulative probability ≥ p (at least one token; equal probabilities by lower id).</summary>
    private void KeepTopP(Span<float> probs, float p)
    {
        // The nucleus lies inside {q ≥ t} once that set holds mass ≥ p. One pass sums the mass per binary
        // exponent; the highest power of two whose set {q ≥ 2^e} reaches p is t, and only those candidates
        // (at most twice as unlikely as the least likely token of the nucleus) are sorted, not the vocabulary.
        Span<double> massByExponent = stackalloc double[256];
        massByExponent.Clear();
        foreach (float q in probs)
        {
            massByExponent[(int)(BitConverter.SingleToUInt32Bits(q) >> 23) & 0xFF] += q;
        }
        int exponent = 255;
        double mass = 0;
        for (; exponent > 0; exponent--)
        {
            mass += massByExponent[exponent];
            if (mass >= p)
            {
                break;
            }
        }
        // Biased exponent 0 (subnormals and zero) means every token with any probability is a candidate.
        float threshold = exponent == 0 ? 0f : BitConverter.UInt32BitsToSingle((uint)exponent << 23);
        // For non-negative floats the bit pattern grows with the value, so ~bits in the high half and the
        // id in the low half sort (ascending, as plain integers) by descending probability, then ascending id.
        Span<ulong> keys = _topPKeys;
        int n = 0;
        for (int i = 0; i < probs.Length; i++)
        {
            float q = probs[i];
            if (q >= threshold && q > 0)
            {
                keys[n++] = (ulong)~BitConverter.SingleToUInt32Bits(q) << 32 | (uint)i;
            }
        }
        keys = keys[..n];
        keys.Sort();
        double cumulative = 0;
        int keep = 0;
        while (keep < n)
        {
            cumulative += probs[(int)(uint)keys[keep]];
            keep++;
            if (cumulative >= p)
            {
                break;
            }
        }
        // Everything outside the kept prefix goes: the sorted tail and all below the threshold.
        for (int j = keep; j < n; j++)
        {
            probs[(int)(uint)keys[j]] = 0f;
        }
        for (int i = 0; i < probs.Length; i++)
        {
            if (probs[i] < threshold)
            {
                probs[i] = 0f;
            }
        }
    }

    private static void Normalize(Span<float> probs)
    {
        double sum = 0;
        foreach (float v in probs)
        {
            sum += v;
        }
        float inv = (float)(1.0 / sum);
        for (int i = 0; i < probs.Length; i++)
        {
            probs[i] *= inv;
        }
    }
}
