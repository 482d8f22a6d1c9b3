using MimoSharp.Runtime.Generation;
using MimoSharp.Tensors.Kernels;

namespace MimoSharp.Runtime.Sampling;

/// <summary>
/// The sampling chain of <see cref="SamplingOptions"/> over one preallocated candidate buffer; nothing
/// is allocated per token. Tokens at or beyond <c>validVocabSize</c> (embedding padding rows) are never chosen.
/// </summary>
public sealed class Sampler : ITokenSampler
{
    private readonly SamplingOptions _options;
    private readonly int _validVocab;
    private readonly int _promptLength;
    private readonly float[] _work;     // [vocab] logits after penalties, then probabilities
    private readonly int[] _counts;     // [vocab] occurrences in the output
    private readonly bool[] _seen;      // [vocab] present in prompt or output
    private readonly int[] _order;      // candidate ids, sorted by probability when needed
    private readonly float[] _keys;
    private Xoshiro256 _random;

    /// <param name="promptLength">History before this index is prompt: presence and frequency penalties count only what follows.</param>
    public Sampler(SamplingOptions options, int vocabSize, int promptLength = 0, int? validVocabSize = null)
    {
        _options = options.Validate(vocabSize);
        _validVocab = Math.Min(validVocabSize ?? vocabSize, vocabSize);
        _promptLength = promptLength;
        _work = new float[vocabSize];
        _counts = new int[vocabSize];
        _seen = new bool[vocabSize];
        _order = new int[vocabSize];
        _keys = new float[vocabSize];
        Seed = options.Seed ?? (ulong)Environment.TickCount64 ^ (ulong)Environment.ProcessId << 32;
        _random = new Xoshiro256(Seed);
    }

    public ulong Seed { get; }
    public SamplingOptions Options => _options;
    public bool IsGreedy => _options.IsGreedy;

    public double NextUniform() => _random.NextDouble();

    /// <summary>The next token after <paramref name="logits"/>.</summary>
    public int Sample(ReadOnlySpan<float> logits, ReadOnlySpan<int> history)
    {
        Span<float> probs = _work;
        Probabilities(logits, history, probs);
        return Draw(probs);
    }

    public void Probabilities(ReadOnlySpan<float> logits, ReadOnlySpan<int> history, Span<float> probs)
    {
        int vocab = _work.Length;
        if (logits.Length < vocab || probs.Length < vocab)
        {
            throw new ArgumentException($"logits ({logits.Length}) and probs ({probs.Length}) must hold the vocabulary of {vocab}");
        }
        Span<float> work = probs[..vocab];
        logits[..vocab].CopyTo(work);
        work[_validVocab..].Fill(float.NegativeInfinity);
        ApplyPenalties(work, history);
        if (_options.LogitBias is { } bias)
        {
            foreach ((int token, float value) in bias)
            {
                work[token] += value;
            }
        }
        if (_options.IsGreedy)
        {
            int best = VectorMath.ArgMax(work);
            work.Clear();
            work[best] = 1f;
            return;
        }
        float inverseTemperature = 1f / _options.Temperature;
        if (_options.TopK > 0 && _options.TopK < _validVocab)
        {
            KeepTopK(work, _options.TopK);
        }
        Softmax(work, inverseTemperature);
        if (_options.TopP < 1f)
        {
            KeepTopP(work, _options.TopP);
        }
        if (_options.MinP > 0f)
        {
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

    public int Draw(ReadOnlySpan<float> probs)
    {
        double total = 0;
        foreach (float p in probs)
        {
            total += p;
        }
        if (!(total > 0))
        {
            throw new InvalidOperationException("cannot draw from a distribution with no mass");
        }
        double u = _random.NextDouble() * total;
        int last = -1;
        for (int i = 0; i < probs.Length; i++)
        {
            if (probs[i] > 0)
            {
                last = i;
                u -= probs[i];
                if (u < 0)
                {
                    return i;
                }
            }
        }
        return last; // rounding left a sliver of u: the last token with mass
    }

    private void ApplyPenalties(Span<float> work, ReadOnlySpan<int> history)
    {
        bool repetition = _options.RepetitionPenalty != 1f;
        bool additive = _options.PresencePenalty != 0f || _options.FrequencyPenalty != 0f;
        if (!repetition && !additive)
        {
            return;
        }
        // _seen and _counts are all false / zero between calls; the last loop restores that.
        for (int i = 0; i < history.Length; i++)
        {
            int token = history[i];
            _seen[token] = true;
            if (i >= _promptLength)
            {
                _counts[token]++;
            }
        }
        foreach (int token in history)
        {
            if (!_seen[token])
            {
                continue; // already handled (duplicates in history)
            }
            _seen[token] = false;
            if (repetition)
            {
                float l = work[token];
                work[token] = l > 0 ? l / _options.RepetitionPenalty : l * _options.RepetitionPenalty;
            }
            int count = _counts[token];
            if (count > 0)
            {
                work[token] -= _options.PresencePenalty + _options.FrequencyPenalty * count;
            }
            _counts[token] = 0;
        }
    }

    /// <summary>Sets every logit below the k-th largest to -inf (ties at the threshold are kept, as in HF).</summary>
    private void KeepTopK(Span<float> logits, int k)
    {
        // The k-th largest through a min-heap of the k largest seen: O(V log k), no full sort.
        Span<float> heap = _keys.AsSpan(0, k);
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

    /// <summary>In place: softmax(logits · inverseTemperature); -inf logits get probability 0.</summary>
    private static void Softmax(Span<float> values, float inverseTemperature)
    {
        float max = float.NegativeInfinity;
        foreach (float v in values)
        {
            max = MathF.Max(max, v);
        }
        double sum = 0;
        for (int i = 0; i < values.Length; i++)
        {
            float e = float.IsNegativeInfinity(values[i]) ? 0f : MathF.Exp((values[i] - max) * inverseTemperature);
            values[i] = e;
            sum += e;
        }
        float inv = (float)(1.0 / sum);
        for (int i = 0; i < values.Length; i++)
        {
            values[i] *= inv;
        }
    }

    /// <summary>Keeps the smallest most-likely set with cumulative probability ≥ p (at least one token).</summary>
    private void KeepTopP(Span<float> probs, float p)
    {
        // The nucleus lies inside {q ≥ t} once that set holds mass ≥ p: lower t by halves until it
        // does, then sort only those candidates instead of the whole vocabulary.
        float max = probs[VectorMath.ArgMax(probs)];
        float threshold = max;
        while (true)
        {
            double mass = 0;
            foreach (float q in probs)
            {
                if (q >= threshold)
                {
                    mass += q;
                }
            }
            if (mass >= p || threshold == 0f)
            {
                break;
            }
            threshold = threshold < 1e-30f ? 0f : threshold * 0.5f;
        }
        int n = 0;
        for (int i = 0; i < probs.Length; i++)
        {
            if (probs[i] >= threshold && probs[i] > 0)
            {
                _order[n] = i;
                _keys[n] = -probs[i];
                n++;
            }
        }
        Array.Sort(_keys, _order, 0, n);
        double cumulative = 0;
        int keep = 0;
        while (keep < n)
        {
            cumulative += -_keys[keep];
            keep++;
            if (cumulative >= p)
            {
                break;
            }
        }
        // Everything outside the kept prefix goes: the sorted tail and all below the threshold.
        for (int j = keep; j < n; j++)
        {
            probs[_order[j]] = 0f;
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
