using System.Buffers.Binary;
using System.Text.Json;
using MimoSharp.Tensors;
using MimoSharp.Tensors.Storage;

namespace MimoSharp.Models.Loading;

/// <summary>
/// One .safetensors file, memory-mapped or read into memory (<see cref="LoadedFile"/>): u64 little-endian header length N, N bytes of JSON
/// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the data.
/// The header is checked completely on open: every tensor's byte range must match its dtype and
/// shape and lie inside the file, and no two tensors may overlap.
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    /// <summary>Headers larger than this are refused as corrupt (the format's own reference limit is 100 MB).</summary>
    private const long MaxHeaderBytes = 100L * 1024 * 1024;

    private static readonly JsonDocumentOptions HeaderOptions = new() { AllowDuplicateProperties = false, MaxDepth = 16 };

    private readonly Dictionary<string, TensorEntry> _tensors = new(StringComparer.Ordinal);

    public string Path { get; }
    public WeightStorage Storage { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    public IReadOnlyDictionary<string, TensorEntry> Tensors => _tensors;

    private SafetensorsFile(string path, WeightStorage storage, IReadOnlyDictionary<string, string> metadata)
    {
        Path = path;
        Storage = storage;
        Metadata = metadata;
    }

    /// <param name="path">The file.</param>
    /// <param name="readIntoMemory">Read the file into private memory instead of mapping it.</param>
    public static SafetensorsFile Open(string path, bool readIntoMemory = false)
    {
        if (!File.Exists(path))
        {
            throw new CheckpointException($"{path}: safetensors file not found");
        }
        // Before mapping: a FIFO or device is refused here instead of blocking or mapping nothing.
        InputFile.Check(path, "a safetensors file", long.MaxValue, message => new CheckpointException(message));
        WeightStorage storage = readIntoMemory ? new LoadedFile(path) : new MappedFile(path);
        try
        {
            return Parse(path, storage);
        }
        catch
        {
            storage.Dispose();
            throw;
        }
    }

    private static SafetensorsFile Parse(string path, WeightStorage storage)
    {
        CheckpointException Fail(string message) => new($"{path}: {message}");
        if (storage.Length < 8)
        {
            throw Fail($"file is {storage.Length} bytes, too short for the 8-byte header length; the file is truncated or not safetensors");
        }
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(storage.Slice(0, 8));
        if (headerLength > MaxHeaderBytes || (long)headerLength > storage.Length - 8)
        {
            throw Fail($"header length {headerLength} does not fit in the file of {storage.Length} bytes; the file is truncated or not safetensors");
        }
        long dataStart = 8 + (long)headerLength;
        long dataLength = storage.Length - dataStart;
        JsonDocument document;
        string headerText = InputFile.DecodeUtf8(storage.Slice(8, (int)headerLength), $"{path}: header (bytes 8..{dataStart})", message => new CheckpointException(message));
        try
        {
            document = JsonDocument.Parse(headerText, HeaderOptions);
        }
        catch (JsonException ex)
        {
            throw Fail($"header is not valid JSON: {InputFile.DescribeJsonError(ex, text: headerText)}");
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw Fail("header is not a JSON object");
            }
            var metadata = new Dictionary<string, string>();
            var file = new SafetensorsFile(path, storage, metadata);
            var ranges = new List<(long Begin, long End, string Name)>();
            foreach (JsonProperty property in document.RootElement.EnumerateObject())
            {
                if (property.Name == "__metadata__")
                {
                    if (property.Value.ValueKind == JsonValueKind.Object)
                    {
                        foreach (JsonProperty m in property.Value.EnumerateObject())
                        {
                            metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                        }
                    }
                    continue;
                }
                TensorEntry entry = ParseEntry(file, property, dataStart, dataLength);
                if (!file._tensors.TryAdd(entry.Name, entry))
                {
                    throw Fail($"tensor \"{entry.Name}\" appears twice in the header");
                }
                ranges.Add((entry.DataOffset - dataStart, entry.DataOffset - dataStart + entry.ByteLength, entry.Name));
            }
            ranges.Sort((x, y) => x.Begin.CompareTo(y.Begin));
            for (int i = 1; i < ranges.Count; i++)
            {
                if (ranges[i].Begin < ranges[i - 1].End)
                {
                    throw Fail($"tensors \"{ranges[i - 1].Name}\" and \"{ranges[i].Name}\" overlap in the data section");
                }
            }
            return file;
        }
    }

    private static TensorEntry ParseEntry(SafetensorsFile file, JsonProperty property, long dataStart, long dataLength)
    {
        string name = property.Name;
        CheckpointException Fail(string message) => new($"{file.Path}: tensor \"{name}\": {message}");
        JsonElement value = property.Value;
        if (value.ValueKind != JsonValueKind.Object
            || !value.TryGetProperty("dtype", out JsonElement dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String
            || !value.TryGetProperty("shape", out JsonElement shapeElement) || shapeElement.ValueKind != JsonValueKind.Array
            || !value.TryGetProperty("data_offsets", out JsonElement offsetsElement) || offsetsElement.ValueKind != JsonValueKind.Array)
        {
            throw Fail("header entry must be an object with \"dtype\" (string), \"shape\" (array) and \"data_offsets\" (array)");
        }
        string dtypeName = dtypeElement.GetString()!;
        if (!DTypes.TryParseSafetensorsName(dtypeName, out DType dtype))
        {
            throw Fail($"unsupported dtype \"{dtypeName}\"; expected one of F32, BF16, F16, F8_E4M3, I64, I32, U8, I8, F64, BOOL");
        }
        var shape = new List<long>();
        foreach (JsonElement dim in shapeElement.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt64(out long d) || d < 0)
            {
                throw Fail($"shape {shapeElement.GetRawText()} must hold non-negative integers");
            }
            shape.Add(d);
        }
        long begin = 0, end = 0;
        if (offsetsElement.GetArrayLength() != 2
            || offsetsElement[0].ValueKind != JsonValueKind.Number || offsetsElement[1].ValueKind != JsonValueKind.Number
            || !offsetsElement[0].TryGetInt64(out begin) || !offsetsElement[1].TryGetInt64(out end))
        {
            throw Fail($"data_offsets {offsetsElement.GetRawText()} must be two integers [begin, end]");
        }
        // Checked: a shape whose byte count wraps (to 0, say) must not pass as a small tensor.
        long expectedBytes = 1;
        try
        {
            foreach (long d in shape)
            {
                expectedBytes = checked(expectedBytes * d);
            }
            expectedBytes = checked(expectedBytes * DTypes.SizeOf(dtype));
        }
        catch (OverflowException)
        {
            throw Fail($"{dtypeName} {FormatShape(shape)} needs more than {long.MaxValue} bytes; the shape is corrupt");
        }
        if (begin < 0 || end < begin)
        {
            throw Fail($"data_offsets [{begin}, {end}] are not an increasing range");
        }
        if (end - begin != expectedBytes)
        {
            throw Fail($"data_offsets [{begin}, {end}] hold {end - begin} bytes but {dtypeName} {FormatShape(shape)} needs {expectedBytes}");
        }
        if (end > dataLength)
        {
            throw Fail($"data ends at byte {end} of the data section, which has only {dataLength} bytes; the file is truncated");
        }
        return new TensorEntry(name, dtype, shape, file, dataStart + begin, expectedBytes);
    }

    internal static string FormatShape(IEnumerable<long> shape) => "[" + string.Join(", ", shape) + "]";

    public void Dispose() => Storage.Dispose();
}
