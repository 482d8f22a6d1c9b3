using MimoSharp.Runtime.Generation;

namespace MimoSharp.Runtime.Tests.Speculative;

/// <summary>Greedy choice (no randomness).</summary>
internal sealed class GreedyTestSampler : ITokenSampler
{
    public bool IsGreedy => true;
    public void Probabilities(ReadOnlySpan<float> logits, ReadOnlySpan<int> history, Span<float> probs)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
        {
            if (logits[i] > logits[best])
            {
                best = i;
            }
        }
        probs.Clear();
        probs[best] = 1f;
    }

    public int Draw(ReadOnlySpan<float> probs) => throw new InvalidOperationException("greedy");
    public double NextUniform() => throw new InvalidOperationException("greedy");
}

/// <summary>softmax(logits / T) with a seeded generator: an independent stand-in for the real sampler.</summary>
internal sealed class TemperatureTestSampler(double temperature, int seed) : ITokenSampler
{
    private readonly Random _random = new(seed);

    public bool IsGreedy => false;

    public static double[] Softmax(ReadOnlySpan<float> logits, double temperature)
    {
        double max = double.NegativeInfinity;
        foreach (float l in logits)
        {
            max = Math.Max(max, l);
        }
        var p = new double[logits.Length];
        double sum = 0;
        for (int i = 0; i < p.Length; i++)
        {
            p[i] = Math.Exp((logits[i] - max) / temperature);
            sum += p[i];
        }
        for (int i = 0; i < p.Length; i++)
        {
            p[i] /= sum;
        }
        return p;
    }

    public void Probabilities(ReadOnlySpan<float> logits, ReadOnlySpan<int> history, Span<float> probs)
    {
        double[] p = Softmax(logits, temperature);
        for (int i = 0; i < p.Length; i++)
        {
            probs[i] = (float)p[i];
        }
    }

    public int Draw(ReadOnlySpan<float> probs)
    {
        double total = 0;
        foreach (float p in probs)
        {
            total += p;
        }
        double u = _random.NextDouble() * total;
        for (int i = 0; i < probs.Length; i++)
        {
            u -= probs[i];
            if (u < 0)
            {
                return i;
            }
        }
        for (int i = probs.Length - 1; i >= 0; i--)
        {
            if (probs[i] > 0)
            {
                return i;
            }
        }
        throw new InvalidOperationException("empty distribution");
    }

    public double NextUniform() => _random.NextDouble();
}
