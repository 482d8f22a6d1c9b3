namespace MimoSharp.Runtime.Sampling;

/// <summary>
/// xoshiro256** (Blackman and Vigna) seeded through splitmix64: a small generator whose sequence depends
/// only on the seed, not on the runtime's <see cref="Random"/> (whose algorithm may change between releases).
/// A value type, so a copy is a snapshot of the state: restoring the copy replays the same numbers.
/// </summary>
public struct Xoshiro256
{
    private ulong _s0, _s1, _s2, _s3;

    public Xoshiro256(ulong seed)
    {
        // splitmix64 spreads any seed (0 included) over the 256-bit state, as the authors recommend;
        // its outputs are never all zero, the one state xoshiro cannot leave.
        ulong x = seed;
        _s0 = SplitMix(ref x);
        _s1 = SplitMix(ref x);
        _s2 = SplitMix(ref x);
        _s3 = SplitMix(ref x);
    }

    /// <summary>True for <c>default(Xoshiro256)</c>, which would return zeros forever.</summary>
    public readonly bool IsDegenerate => (_s0 | _s1 | _s2 | _s3) == 0;

    private static ulong SplitMix(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31);
    }

    public ulong NextUInt64()
    {
        ulong result = ulong.RotateLeft(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = ulong.RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>Uniform in [0, 1): the top 53 bits, so every value is an exact double.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));
}
