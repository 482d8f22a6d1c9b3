using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using MimoSharp.Tensors;

namespace MimoSharp.Models.Creation;

/// <summary>A tensor to write: its header fields and a callback that streams exactly its bytes.</summary>
public sealed record TensorToWrite(string Name, DType DType, long[] Shape, Action<Stream> WriteData)
{
    public long ByteLength => Shape.Aggregate(1L, (a, b) => a * b) * DTypes.SizeOf(DType);
}

/// <summary>Writes safetensors files (header first, then each tensor's bytes streamed in order) and the shard index.</summary>
public static class SafetensorsWriter
{
    public static void Write(string path, IReadOnlyList<TensorToWrite> tensors, IReadOnlyDictionary<string, string>? metadata = null, Action<TensorToWrite>? tensorWritten = null)
    {
        byte[] header = BuildHeader(tensors, metadata);
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        stream.Write(length);
        stream.Write(header);
        foreach (TensorToWrite tensor in tensors)
        {
            long before = stream.Position;
            tensor.WriteData(stream);
            if (stream.Position - before != tensor.ByteLength)
            {
                throw new InvalidOperationException($"tensor {tensor.Name} wrote {stream.Position - before} bytes, expected {tensor.ByteLength}");
            }
            tensorWritten?.Invoke(tensor);
        }
    }

    private static byte[] BuildHeader(IReadOnlyList<TensorToWrite> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteStartObject("__metadata__");
            json.WriteString("format", "pt");
            foreach ((string key, string value) in metadata ?? new Dictionary<string, string>())
            {
                json.WriteString(key, value);
            }
            json.WriteEndObject();
            long offset = 0;
            foreach (TensorToWrite tensor in tensors)
            {
                json.WriteStartObject(tensor.Name);
                json.WriteString("dtype", DTypes.ToSafetensorsName(tensor.DType));
                json.WriteStartArray("shape");
                foreach (long dim in tensor.Shape)
                {
                    json.WriteNumberValue(dim);
                }
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + tensor.ByteLength);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += tensor.ByteLength;
            }
            json.WriteEndObject();
        }
        // Pad with spaces to a multiple of 8 so the data section is aligned.
        int padding = (int)((8 - buffer.Length % 8) % 8);
        buffer.Write(Encoding.ASCII.GetBytes(new string(' ', padding)));
        return buffer.ToArray();
    }

    /// <summary>Writes model.safetensors.index.json for shards.</summary>
    public static void WriteIndex(string path, IReadOnlyDictionary<string, string> weightMap, long totalSize)
    {
        var index = new Dictionary<string, object>
        {
            ["metadata"] = new Dictionary<string, long> { ["total_size"] = totalSize },
            ["weight_map"] = new SortedDictionary<string, string>(weightMap.ToDictionary(p => p.Key, p => p.Value), StringComparer.Ordinal),
        };
        File.WriteAllText(path, JsonSerializer.Serialize(index, new JsonSerializerOptions { WriteIndented = true }));
    }
}
