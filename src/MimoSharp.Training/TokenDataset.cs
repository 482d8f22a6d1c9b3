using System.Buffers.Binary;

namespace MimoSharp.Training;

/// <summary>
/// Token ids in llm.c's format: a header of 256 little-endian int32 (header[0] = 20240520, header[1] = 1,
/// header[2] = token count) followed by that many uint16 ids. The whole file is read and checked once.
/// </summary>
public sealed class TokenDataset
{
    public const int Magic = 20240520;
    public const int Version = 1;
    public const int HeaderInts = 256;

    public string Path { get; }
    public ushort[] Tokens { get; }
    public int MaxToken { get; }

    private TokenDataset(string path, ushort[] tokens)
    {
        Path = path;
        Tokens = tokens;
        int max = 0;
        foreach (ushort t in tokens)
        {
            max = Math.Max(max, t);
        }
        MaxToken = max;
    }

    public static TokenDataset Open(string path)
    {
        if (!File.Exists(path))
        {
            throw new TrainingException($"{path}: token file not found (a data directory holds train.bin and val.bin in llm.c's format, as `mimo data` writes them)");
        }
        long length = new FileInfo(path).Length;
        if (length < HeaderInts * 4)
        {
            throw new TrainingException($"{path}: {length} bytes, shorter than the {HeaderInts * 4}-byte header of llm.c's token format; the file is truncated or not a token file");
        }
        using var stream = File.OpenRead(path);
        var header = new byte[HeaderInts * 4];
        stream.ReadExactly(header);
        int magic = BinaryPrimitives.ReadInt32LittleEndian(header);
        int version = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(4));
        int count = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(8));
        if (magic != Magic)
        {
            throw new TrainingException($"{path}: header[0] is {magic}, expected the magic {Magic} of llm.c's token format");
        }
        if (version != Version)
        {
            throw new TrainingException($"{path}: header[1] (version) is {version}, expected {Version} (uint16 token ids)");
        }
        long expected = HeaderInts * 4L + 2L * count;
        if (count < 0 || length != expected)
        {
            throw new TrainingException($"{path}: the header says {count} tokens ({expected} bytes in all) but the file has {length} bytes; it is truncated or corrupt");
        }
        var bytes = new byte[2L * count];
        stream.ReadExactly(bytes);
        var tokens = new ushort[count];
        for (int i = 0; i < count; i++)
        {
            tokens[i] = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(2 * i));
        }
        return new TokenDataset(path, tokens);
    }

    /// <summary>Writes <paramref name="tokens"/> in llm.c's format.</summary>
    public static void Write(string path, ReadOnlySpan<int> tokens)
    {
        var bytes = new byte[HeaderInts * 4 + 2 * tokens.Length];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, Magic);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4), Version);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(8), tokens.Length);
        for (int i = 0; i < tokens.Length; i++)
        {
            if ((uint)tokens[i] > ushort.MaxValue)
            {
                throw new ArgumentException($"token id {tokens[i]} at {i} does not fit uint16");
            }
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(HeaderInts * 4 + 2 * i), (ushort)tokens[i]);
        }
        File.WriteAllBytes(path, bytes);
    }

    /// <summary>
    /// Fills <paramref name="batch"/> [B, tokensPerSequence] with consecutive windows starting at
    /// <paramref name="cursor"/> (sequence b starts at cursor + b·stride, stride = T); returns the next
    /// cursor, wrapping to 0 when the next batch would run past the end.
    /// </summary>
    public long FillBatch(long cursor, int batchSize, int stride, int tokensPerSequence, Span<int> batch)
    {
        long need = (long)(batchSize - 1) * stride + tokensPerSequence;
        if (need > Tokens.Length)
        {
            throw new TrainingException($"{Path}: {Tokens.Length} tokens, fewer than the {need} one batch of {batchSize} x {tokensPerSequence} needs; use more data or a smaller batch_size / sequence_length");
        }
        if (cursor + need > Tokens.Length)
        {
            cursor = 0;
        }
        for (int b = 0; b < batchSize; b++)
        {
            for (int t = 0; t < tokensPerSequence; t++)
            {
                batch[b * tokensPerSequence + t] = Tokens[cursor + (long)b * stride + t];
            }
        }
        long next = cursor + (long)batchSize * stride;
        return next + need > Tokens.Length ? 0 : next;
    }

    /// <summary>Windows of <paramref name="tokensPerSequence"/> tokens starting at multiples of <paramref name="stride"/>.</summary>
    public long WindowCount(int stride, int tokensPerSequence) => Tokens.Length < tokensPerSequence ? 0 : (Tokens.Length - tokensPerSequence) / stride + 1;

    /// <summary>
    /// Fills <paramref name="batch"/> [B, tokensPerSequence] with windows number <paramref name="index"/>,
    /// index + 1, ... of a fixed permutation of all windows (window w starts at w · stride): k ↦ (k · a + c)
    /// mod W with a coprime to W, so every window is seen once per pass, in an order that mixes documents
    /// and sources within each batch and from one step to the next (consecutive windows of one document
    /// would be a batch of one document). Returns the next index; deterministic, so a run resumes exactly.
    /// </summary>
    public long FillShuffled(long index, int batchSize, int stride, int tokensPerSequence, Span<int> batch)
    {
        long windows = WindowCount(stride, tokensPerSequence);
        if (windows < batchSize)
        {
            throw new TrainingException($"{Path}: {Tokens.Length} tokens hold {windows} windows of {tokensPerSequence}, fewer than a batch of {batchSize}; use more data or a smaller batch_size / sequence_length");
        }
        long multiplier = Coprime(windows);
        long offset = windows / 3;
        for (int b = 0; b < batchSize; b++)
        {
            long k = (index + b) % windows;
            long window = (long)((UInt128)(ulong)k * (ulong)multiplier % (ulong)windows + (ulong)offset) % windows;
            long start = window * stride;
            for (int t = 0; t < tokensPerSequence; t++)
            {
                batch[b * tokensPerSequence + t] = Tokens[start + t];
            }
        }
        return index + batchSize;
    }

    /// <summary>A multiplier near W / φ (consecutive indices land far apart) with gcd(a, W) = 1.</summary>
    private static long Coprime(long windows)
    {
        long a = Math.Max(1, (long)(windows * 0.6180339887));
        while (a > 1 && Gcd(a, windows) != 1)
        {
            a--;
        }
        return a;
    }

    private static long Gcd(long a, long b)
    {
        while (b != 0)
        {
            (a, b) = (b, a % b);
        }
        return a;
    }
}
