using System.Numerics;
using System.Runtime.InteropServices;
using MimoSharp.Tensors;

namespace MimoSharp.Models.Loading;

/// <summary>
/// What one tensor holds that no forward pass should read: NaN and infinite values (F32/F16/BF16/F64),
/// E4M3 NaN codes (0x7F, 0xFF; E4M3 has no infinity), and block or group scales that are not finite,
/// not positive (FP8 "weight_scale_inv") or negative (Q8_0/Q4_0 "weight_scale", where 0 marks an
/// all-zero group), or implausibly large.
/// </summary>
public sealed record TensorScan(string File, string Name, string DType, string Shape, long Elements, long NaN, long Infinity, long NaNCodes, long BadScales)
{
    /// <summary>A scale above this would turn E4M3's largest code (448) or Q8_0's (127) into weights of 1e8 and more.</summary>
    public const float MaxPlausibleScale = 1e6f;

    public bool IsClean => NaN == 0 && Infinity == 0 && NaNCodes == 0 && BadScales == 0;

    /// <summary>"3 NaN, 1 NaN code" or "clean".</summary>
    public string Problems
    {
        get
        {
            var parts = new List<string>();
            if (NaN > 0) parts.Add($"{NaN} NaN");
            if (Infinity > 0) parts.Add($"{Infinity} Inf");
            if (NaNCodes > 0) parts.Add($"{NaNCodes} E4M3 NaN codes (0x7F/0xFF)");
            if (BadScales > 0) parts.Add($"{BadScales} bad scales (not finite, {(Name.EndsWith("_scale_inv", StringComparison.Ordinal) ? "not positive" : "negative")}, or above {MaxPlausibleScale:0e0})");
            return parts.Count == 0 ? "clean" : string.Join(", ", parts);
        }
    }
}

/// <summary>Scans every tensor of a checkpoint (see <see cref="TensorScan"/>); tensors run in parallel, each with vector loops.</summary>
public static class TensorScanner
{
    private const int Chunk = 1 << 30;

    public static IReadOnlyList<TensorScan> Scan(Checkpoint checkpoint, int? parallelism = null)
    {
        TensorEntry[] entries = checkpoint.Tensors.Values.OrderBy(e => e.File.Path, StringComparer.Ordinal).ThenBy(e => e.DataOffset).ToArray();
        var results = new TensorScan[entries.Length];
        Parallel.For(0, entries.Length, new ParallelOptions { MaxDegreeOfParallelism = parallelism ?? Environment.ProcessorCount },
            i => results[i] = Scan(entries[i]));
        return results;
    }

    /// <summary>The load option --check-tensors: throws naming the first bad tensors (at most 5) and what each holds.</summary>
    public static void ThrowIfCorrupt(Checkpoint checkpoint)
    {
        TensorScan[] bad = Scan(checkpoint).Where(s => !s.IsClean).ToArray();
        if (bad.Length > 0)
        {
            string list = string.Join("; ", bad.Take(5).Select(s => $"{s.File}: tensor \"{s.Name}\" ({s.DType} {s.Shape}) holds {s.Problems}"));
            throw new CheckpointException($"{bad.Length} tensor{(bad.Length == 1 ? "" : "s")} of {checkpoint.Directory} hold values no weight may have: {list}{(bad.Length > 5 ? "; ..." : "")}; expected finite weights and finite positive scales");
        }
    }

    public static TensorScan Scan(TensorEntry entry)
    {
        long nan = 0, inf = 0, nanCodes = 0, badScales = 0;
        bool isScale = entry.Name.EndsWith(".weight_scale_inv", StringComparison.Ordinal) || entry.Name.EndsWith(".weight_scale", StringComparison.Ordinal);
        bool zeroIsBad = entry.Name.EndsWith("_scale_inv", StringComparison.Ordinal);
        for (long done = 0; done < entry.ByteLength; done += Chunk)
        {
            int size = (int)Math.Min(Chunk, entry.ByteLength - done);
            ReadOnlySpan<byte> bytes = entry.File.Storage.Slice(entry.DataOffset + done, size);
            switch (entry.DType)
            {
                case DType.F32:
                    CountFloat32(MemoryMarshal.Cast<byte, uint>(bytes), ref nan, ref inf);
                    if (isScale)
                    {
                        badScales += CountBadScales(MemoryMarshal.Cast<byte, float>(bytes), zeroIsBad);
                    }
                    break;
                case DType.BF16:
                    Count16(MemoryMarshal.Cast<byte, ushort>(bytes), 0x7F80, 0x007F, ref nan, ref inf);
                    break;
                case DType.F16:
                    Count16(MemoryMarshal.Cast<byte, ushort>(bytes), 0x7C00, 0x03FF, ref nan, ref inf);
                    break;
                case DType.F64:
                    foreach (double v in MemoryMarshal.Cast<byte, double>(bytes))
                    {
                        nan += double.IsNaN(v) ? 1 : 0;
                        inf += double.IsInfinity(v) ? 1 : 0;
                    }
                    break;
                case DType.F8E4M3:
                    nanCodes += CountE4M3NaNCodes(bytes);
                    break;
            }
        }
        return new TensorScan(entry.File.Path, entry.Name, DTypes.ToSafetensorsName(entry.DType), entry.ShapeText, entry.ElementCount, nan, inf, nanCodes, badScales);
    }

    /// <summary>Codes whose low 7 bits are all set: E4M3's only NaNs (the scalar decoder's NaN, never ±480).</summary>
    internal static long CountE4M3NaNCodes(ReadOnlySpan<byte> codes)
    {
        long count = 0;
        var mask = new Vector<byte>(0x7F);
        ReadOnlySpan<Vector<byte>> vectors = MemoryMarshal.Cast<byte, Vector<byte>>(codes);
        foreach (Vector<byte> v in vectors)
        {
            if (Vector.EqualsAny(v & mask, mask))
            {
                for (int k = 0; k < Vector<byte>.Count; k++)
                {
                    count += (v[k] & 0x7F) == 0x7F ? 1 : 0;
                }
            }
        }
        for (int i = vectors.Length * Vector<byte>.Count; i < codes.Length; i++)
        {
            count += (codes[i] & 0x7F) == 0x7F ? 1 : 0;
        }
        return count;
    }

    private static void CountFloat32(ReadOnlySpan<uint> bits, ref long nan, ref long inf)
    {
        var exponent = new Vector<uint>(0x7F800000);
        ReadOnlySpan<Vector<uint>> vectors = MemoryMarshal.Cast<uint, Vector<uint>>(bits);
        int start = vectors.Length * Vector<uint>.Count;
        for (int v = 0; v < vectors.Length; v++)
        {
            if (Vector.EqualsAny(vectors[v] & exponent, exponent))
            {
                CountFloat32Scalar(bits.Slice(v * Vector<uint>.Count, Vector<uint>.Count), ref nan, ref inf);
            }
        }
        CountFloat32Scalar(bits[start..], ref nan, ref inf);
    }

    private static void CountFloat32Scalar(ReadOnlySpan<uint> bits, ref long nan, ref long inf)
    {
        foreach (uint b in bits)
        {
            if ((b & 0x7F800000) == 0x7F800000)
            {
                if ((b & 0x007FFFFF) != 0) nan++; else inf++;
            }
        }
    }

    private static void Count16(ReadOnlySpan<ushort> bits, ushort exponentMask, ushort mantissaMask, ref long nan, ref long inf)
    {
        var exponent = new Vector<ushort>(exponentMask);
        ReadOnlySpan<Vector<ushort>> vectors = MemoryMarshal.Cast<ushort, Vector<ushort>>(bits);
        int start = vectors.Length * Vector<ushort>.Count;
        for (int v = 0; v < vectors.Length; v++)
        {
            if (Vector.EqualsAny(vectors[v] & exponent, exponent))
            {
                Count16Scalar(bits.Slice(v * Vector<ushort>.Count, Vector<ushort>.Count), exponentMask, mantissaMask, ref nan, ref inf);
            }
        }
        Count16Scalar(bits[start..], exponentMask, mantissaMask, ref nan, ref inf);
    }

    private static void Count16Scalar(ReadOnlySpan<ushort> bits, ushort exponentMask, ushort mantissaMask, ref long nan, ref long inf)
    {
        foreach (ushort b in bits)
        {
            if ((b & exponentMask) == exponentMask)
            {
                if ((b & mantissaMask) != 0) nan++; else inf++;
            }
        }
    }

    private static long CountBadScales(ReadOnlySpan<float> scales, bool zeroIsBad)
    {
        long bad = 0;
        foreach (float s in scales)
        {
            bool ok = float.IsFinite(s) && (zeroIsBad ? s > 0 : s >= 0) && s <= TensorScan.MaxPlausibleScale;
            bad += ok ? 0 : 1;
        }
        return bad;
    }
}
