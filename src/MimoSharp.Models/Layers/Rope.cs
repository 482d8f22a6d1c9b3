using MimoSharp.Tensors.Kernels;

namespace MimoSharp.Models.Layers;

/// <summary>
/// Partial NeoX (rotate-half) rotary embedding on the first <see cref="RotaryDims"/> dims of each head
/// (spec §2.3.3): with D rotary dims and i &lt; D/2, φ = p·θ^(−2i/D),
/// x'[i] = x[i]cos φ − x[i+D/2]sin φ, x'[i+D/2] = x[i+D/2]cos φ + x[i]sin φ; the other dims pass through.
/// Angles are computed in float64 so long positions keep their precision.
/// </summary>
public sealed class Rope
{
    private readonly double[] _inverseFrequency; // [D/2]

    public int RotaryDims { get; }

    public Rope(int rotaryDims, double theta)
    {
        RotaryDims = rotaryDims;
        _inverseFrequency = new double[rotaryDims / 2];
        for (int i = 0; i < _inverseFrequency.Length; i++)
        {
            _inverseFrequency[i] = 1.0 / Math.Pow(theta, 2.0 * i / rotaryDims);
        }
    }

    /// <summary>Fills cos/sin [D/2] for a position.</summary>
    public void Angles(int position, Span<float> cos, Span<float> sin)
    {
        for (int i = 0; i < _inverseFrequency.Length; i++)
        {
            double phi = position * _inverseFrequency[i];
            cos[i] = (float)Math.Cos(phi);
            sin[i] = (float)Math.Sin(phi);
        }
    }

    /// <summary>Rotates every head of <paramref name="heads"/> [count, headDim] in place.</summary>
    public void Apply(Span<float> heads, int headDim, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, KernelIsa isa = KernelIsa.Auto)
    {
        int half = RotaryDims / 2;
        for (int offset = 0; offset < heads.Length; offset += headDim)
        {
            VectorMath.RotateHalf(heads.Slice(offset, RotaryDims), cos[..half], sin[..half], isa);
        }
    }
}
