using System.Buffers.Binary;

namespace MimoSharp.Data;

/// <summary>
/// llm.c's token file: a header of 256 little-endian int32 (magic 20240520, version 1, token count),
/// then that many little-endian uint16 token ids. Documents are separated by the &lt;|endoftext|&gt; id.
/// </summary>
public static class TokenBinFile
{
    public const int Magic = 20240520;
    public const int Version = 1;
    public const int HeaderInts = 256;
    public const int HeaderBytes = HeaderInts * sizeof(int);

    /// <summary>Writes <paramref name="ids"/>; every id must fit in uint16.</summary>
    public static void Write(string path, ReadOnlySpan<int> ids)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        var header = new byte[HeaderBytes];
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(0), Magic);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(4), Version);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(8), ids.Length);
        stream.Write(header);
        var buffer = new byte[1 << 16];
        for (int start = 0; start < ids.Length; start += buffer.Length / 2)
        {
            int count = Math.Min(buffer.Length / 2, ids.Length - start);
            for (int i = 0; i < count; i++)
            {
                int id = ids[start + i];
                if ((uint)id > ushort.MaxValue)
                {
                    throw new ArgumentOutOfRangeException(nameof(ids), $"{path}: token id {id} at position {start + i} does not fit in uint16");
                }
                BinaryPrimitives.WriteUInt16LittleEndian(buffer.AsSpan(2 * i), (ushort)id);
            }
            stream.Write(buffer, 0, 2 * count);
        }
    }

    /// <summary>Reads a token file, checking the header and the length against the file size.</summary>
    public static ushort[] Read(string path)
    {
        if (!File.Exists(path))
        {
            throw new InvalidDataException($"{path}: token file not found");
        }
        using var stream = File.OpenRead(path);
        var header = new byte[HeaderBytes];
        if (stream.ReadAtLeast(header, HeaderBytes, throwOnEndOfStream: false) < HeaderBytes)
        {
            throw new InvalidDataException($"{path}: {stream.Length} bytes, shorter than the {HeaderBytes}-byte llm.c header");
        }
        int magic = BinaryPrimitives.ReadInt32LittleEndian(header);
        int version = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(4));
        int count = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(8));
        if (magic != Magic)
        {
            throw new InvalidDataException($"{path}: header magic {magic}, expected {Magic} (an llm.c token file)");
        }
        if (version != Version)
        {
            throw new InvalidDataException($"{path}: header version {version}, expected {Version} (uint16 token ids)");
        }
        long expected = HeaderBytes + 2L * count;
        if (count < 0 || stream.Length != expected)
        {
            throw new InvalidDataException($"{path}: header says {count} tokens ({expected} bytes with the header) but the file has {stream.Length} bytes");
        }
        var bytes = new byte[2L * count];
        stream.ReadExactly(bytes);
        var ids = new ushort[count];
        for (int i = 0; i < count; i++)
        {
            ids[i] = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(2 * i));
        }
        return ids;
    }
}
