using System.Text.Json;
using MimoSharp.Tensors;
using MimoSharp.Tensors.Quantization;
using MimoSharp.Tensors.Storage;

namespace MimoSharp.Models.Loading;

/// <summary>
/// The tensors of a checkpoint directory: a single model.safetensors, or shards listed by
/// model.safetensors.index.json (its weight_map names the file of every tensor). All files are
/// memory-mapped; nothing is copied until a layer asks for it.
/// </summary>
public sealed class Checkpoint : IDisposable
{
    public const string IndexFileName = "model.safetensors.index.json";
    public const string SingleFileName = "model.safetensors";
    /// <summary>Index files larger than this are refused (the real one is 5 MB).</summary>
    public const long MaxIndexBytes = 256L << 20;

    private readonly List<SafetensorsFile> _files;
    private readonly Dictionary<string, TensorEntry> _tensors;

    public string Directory { get; }
    public IReadOnlyList<SafetensorsFile> Files => _files;
    public IReadOnlyDictionary<string, TensorEntry> Tensors => _tensors;

    private Checkpoint(string directory, List<SafetensorsFile> files, Dictionary<string, TensorEntry> tensors)
    {
        Directory = directory;
        _files = files;
        _tensors = tensors;
    }

    /// <summary>True when <paramref name="directory"/> holds safetensors weights (not just a config).</summary>
    public static bool HasWeights(string directory) =>
        File.Exists(System.IO.Path.Combine(directory, IndexFileName)) || File.Exists(System.IO.Path.Combine(directory, SingleFileName));

    /// <summary>Bytes of the safetensors files of <paramref name="directory"/> (0 when it has none).</summary>
    public static long FileBytes(string directory) =>
        System.IO.Directory.Exists(directory)
            ? System.IO.Directory.EnumerateFiles(directory, "*.safetensors").Sum(f => new FileInfo(f).Length)
            : 0;

    /// <param name="directory">The model directory.</param>
    /// <param name="readIntoMemory">Read the safetensors files into private memory instead of mapping them (see <see cref="LoadedFile"/>).</param>
    public static Checkpoint Open(string directory, bool readIntoMemory = false)
    {
        if (!System.IO.Directory.Exists(directory))
        {
            throw new CheckpointException($"{directory}: model directory not found");
        }
        string indexPath = System.IO.Path.Combine(directory, IndexFileName);
        string singlePath = System.IO.Path.Combine(directory, SingleFileName);
        var files = new List<SafetensorsFile>();
        try
        {
            var tensors = new Dictionary<string, TensorEntry>(StringComparer.Ordinal);
            if (File.Exists(indexPath))
            {
                Dictionary<string, string> weightMap = ReadIndex(indexPath);
                var byFile = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
                foreach ((string tensor, string fileName) in weightMap)
                {
                    if (!byFile.TryGetValue(fileName, out SafetensorsFile? file))
                    {
                        string path = System.IO.Path.Combine(directory, fileName);
                        if (fileName.Contains('/') || fileName.Contains('\\') || !File.Exists(path))
                        {
                            throw new CheckpointException($"{indexPath}: tensor \"{tensor}\" is mapped to \"{fileName}\", which is not a file in {directory}");
                        }
                        file = SafetensorsFile.Open(path, readIntoMemory);
                        byFile.Add(fileName, file);
                        files.Add(file);
                    }
                    if (!file.Tensors.TryGetValue(tensor, out TensorEntry? entry))
                    {
                        throw new CheckpointException($"{file.Path}: tensor \"{tensor}\" is listed for this file in {IndexFileName} but the file does not hold it");
                    }
                    tensors.Add(tensor, entry);
                }
                foreach (SafetensorsFile file in files)
                {
                    foreach (string name in file.Tensors.Keys)
                    {
                        if (!weightMap.ContainsKey(name))
                        {
                            throw new CheckpointException($"{file.Path}: tensor \"{name}\" is not listed in {indexPath}");
                        }
                    }
                }
            }
            else if (File.Exists(singlePath))
            {
                SafetensorsFile file = SafetensorsFile.Open(singlePath, readIntoMemory);
                files.Add(file);
                foreach ((string name, TensorEntry entry) in file.Tensors)
                {
                    tensors.Add(name, entry);
                }
            }
            else
            {
                throw new CheckpointException($"{directory}: no {SingleFileName} or {IndexFileName}; expected Hugging Face safetensors weights");
            }
            return new Checkpoint(directory, files, tensors);
        }
        catch
        {
            foreach (SafetensorsFile file in files)
            {
                file.Dispose();
            }
            throw;
        }
    }

    private static Dictionary<string, string> ReadIndex(string indexPath)
    {
        string text = InputFile.ReadText(indexPath, $"a {IndexFileName} file", MaxIndexBytes, message => new CheckpointException(message));
        try
        {
            using JsonDocument document = JsonDocument.Parse(text, new JsonDocumentOptions { AllowDuplicateProperties = false });
            if (document.RootElement.ValueKind != JsonValueKind.Object
                || !document.RootElement.TryGetProperty("weight_map", out JsonElement map) || map.ValueKind != JsonValueKind.Object)
            {
                throw new CheckpointException($"{indexPath}: expected an object with a \"weight_map\" object of tensor name to file name");
            }
            var result = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (JsonProperty property in map.EnumerateObject())
            {
                if (property.Value.ValueKind != JsonValueKind.String)
                {
                    throw new CheckpointException($"{indexPath}: weight_map entry \"{property.Name}\" must be a file name string, got {property.Value.ValueKind}");
                }
                result[property.Name] = property.Value.GetString()!;
            }
            return result;
        }
        catch (JsonException ex)
        {
            throw new CheckpointException($"{indexPath}: invalid JSON: {InputFile.DescribeJsonError(ex, text: text)}", ex);
        }
    }

    public bool Contains(string name) => _tensors.ContainsKey(name);

    public TensorEntry Get(string name) =>
        _tensors.TryGetValue(name, out TensorEntry? entry)
            ? entry
            : throw new CheckpointException($"{Directory}: tensor \"{name}\" is missing from the checkpoint");

    /// <summary>A tensor of any float dtype converted to float32, checked to have <paramref name="shape"/>.</summary>
    public float[] ReadFloats(string name, params long[] shape)
    {
        TensorEntry entry = Get(name);
        CheckShape(entry, shape);
        return ToFloats(entry);
    }

    internal static float[] ToFloats(TensorEntry entry)
    {
        var result = new float[entry.ElementCount];
        ReadOnlySpan<byte> bytes = entry.File.Storage.Slice(entry.DataOffset, checked((int)entry.ByteLength));
        switch (entry.DType)
        {
            case DType.F32:
                System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).CopyTo(result);
                break;
            case DType.BF16:
                for (int i = 0; i < result.Length; i++)
                {
                    result[i] = BFloat16.ToSingle(System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(bytes[(2 * i)..]));
                }
                break;
            case DType.F16:
                for (int i = 0; i < result.Length; i++)
                {
                    result[i] = (float)System.Buffers.Binary.BinaryPrimitives.ReadHalfLittleEndian(bytes[(2 * i)..]);
                }
                break;
            case DType.F64:
                for (int i = 0; i < result.Length; i++)
                {
                    result[i] = (float)System.Buffers.Binary.BinaryPrimitives.ReadDoubleLittleEndian(bytes[(8 * i)..]);
                }
                break;
            default:
                throw new CheckpointException($"{entry.File.Path}: tensor \"{entry.Name}\" is {DTypes.ToSafetensorsName(entry.DType)}; expected a float dtype (F32, BF16, F16)");
        }
        foreach (float value in result)
        {
            if (!float.IsFinite(value))
            {
                throw new CheckpointException($"{entry.File.Path}: tensor \"{entry.Name}\" holds a non-finite value ({value}); the checkpoint is corrupt");
            }
        }
        return result;
    }

    internal static void CheckShape(TensorEntry entry, IReadOnlyList<long> expected)
    {
        if (!entry.Shape.SequenceEqual(expected))
        {
            throw new CheckpointException(
                $"{entry.File.Path}: tensor \"{entry.Name}\" has shape {entry.ShapeText}, expected {SafetensorsFile.FormatShape(expected)} from config.json");
        }
    }

    /// <summary>
    /// The matrix "<paramref name="prefix"/>.weight" [rows, cols]. An F8_E4M3 weight needs the F32 sibling
    /// "<paramref name="prefix"/>.weight_scale_inv" (a multiplier, despite its name). Block size: the scale grid
    /// is [ceil(rows/b), ceil(cols/b)] for the config's block b; failing that, a grid that divides the matrix
    /// evenly gives the block (spec §4.3: MiMo's k_proj has been seen with 96-row blocks); anything else fails.
    /// </summary>
    public WeightMatrix ReadMatrix(string prefix, int rows, int cols, (int Rows, int Cols)? configBlock)
    {
        TensorEntry entry = Get(prefix + ".weight");
        if (entry.DType is DType.I8 or DType.U8)
        {
            return ReadGroupQuantized(entry, prefix, rows, cols);
        }
        CheckShape(entry, [rows, cols]);
        switch (entry.DType)
        {
            case DType.F32:
            case DType.BF16:
            case DType.F16:
                return WeightMatrix.Dense(entry.File.Storage, entry.DataOffset, entry.DType, rows, cols);
            case DType.F8E4M3:
                {
                    string scaleName = prefix + ".weight_scale_inv";
                    if (!_tensors.TryGetValue(scaleName, out TensorEntry? scaleEntry))
                    {
                        throw new CheckpointException($"{entry.File.Path}: tensor \"{entry.Name}\" is F8_E4M3 but its block scales \"{scaleName}\" are missing");
                    }
                    if (scaleEntry.Shape.Count != 2)
                    {
                        throw new CheckpointException($"{scaleEntry.File.Path}: tensor \"{scaleName}\" has shape {scaleEntry.ShapeText}; expected a 2-D scale grid for weight [{rows}, {cols}]");
                    }
                    int blockRows = BlockSize(rows, scaleEntry.Shape[0], configBlock?.Rows, scaleEntry, "rows");
                    int blockCols = BlockSize(cols, scaleEntry.Shape[1], configBlock?.Cols, scaleEntry, "columns");
                    float[] scales = ToFloats(scaleEntry);
                    return WeightMatrix.Fp8(entry.File.Storage, entry.DataOffset, rows, cols, scales, blockRows, blockCols);
                }
            default:
                throw new CheckpointException($"{entry.File.Path}: tensor \"{entry.Name}\" is {DTypes.ToSafetensorsName(entry.DType)}; expected F32, BF16, F16, F8_E4M3, I8 (Q8_0) or U8 (Q4_0)");
        }
    }

    /// <summary>
    /// The group formats of `mimo quantize`: I8 [rows, cols] is Q8_0, U8 [rows, ceil(cols/32) · 16] is Q4_0
    /// (two codes per byte); either needs the F32 sibling "<paramref name="prefix"/>.weight_scale" [rows, ceil(cols/32)].
    /// </summary>
    private WeightMatrix ReadGroupQuantized(TensorEntry entry, string prefix, int rows, int cols)
    {
        bool q4 = entry.DType == DType.U8;
        int groups = GroupQuantizer.GroupsPerRow(cols);
        CheckShape(entry, q4 ? [rows, groups * (WeightMatrix.GroupSize / 2)] : [rows, cols]);
        string scaleName = prefix + ".weight_scale";
        if (!_tensors.TryGetValue(scaleName, out TensorEntry? scaleEntry))
        {
            throw new CheckpointException(
                $"{entry.File.Path}: tensor \"{entry.Name}\" is {DTypes.ToSafetensorsName(entry.DType)} ({(q4 ? "Q4_0" : "Q8_0")}) but its group scales \"{scaleName}\" are missing");
        }
        CheckShape(scaleEntry, [rows, groups]);
        if (scaleEntry.DType != DType.F32)
        {
            throw new CheckpointException($"{scaleEntry.File.Path}: tensor \"{scaleName}\" is {DTypes.ToSafetensorsName(scaleEntry.DType)}; group scales must be F32");
        }
        // The scales are used where they lie (no copy); check them once.
        ReadOnlySpan<byte> scaleBytes = scaleEntry.File.Storage.Slice(scaleEntry.DataOffset, checked((int)scaleEntry.ByteLength));
        for (int i = 0; i < rows * groups; i++)
        {
            float scale = System.Buffers.Binary.BinaryPrimitives.ReadSingleLittleEndian(scaleBytes[(4 * i)..]);
            if (!float.IsFinite(scale))
            {
                throw new CheckpointException($"{scaleEntry.File.Path}: tensor \"{scaleName}\" holds {scale} at [{i / groups}, {i % groups}]; scales must be finite");
            }
        }
        return WeightMatrix.Grouped(q4 ? DType.Q4 : DType.I8, entry.File.Storage, entry.DataOffset, rows, cols, scaleEntry.File.Storage, scaleEntry.DataOffset);
    }

    private static int BlockSize(int length, long scaleCount, int? configBlock, TensorEntry scaleEntry, string axis)
    {
        if (configBlock is int b && scaleCount == (length + b - 1) / b)
        {
            return b;
        }
        if (scaleCount > 0 && length % scaleCount == 0)
        {
            return (int)(length / scaleCount);
        }
        string expected = configBlock is int cb ? $"{(length + cb - 1) / cb} (block {cb} of weight_block_size)" : "a count that divides the weight evenly";
        throw new CheckpointException(
            $"{scaleEntry.File.Path}: tensor \"{scaleEntry.Name}\" has shape {scaleEntry.ShapeText}: {scaleCount} scale {axis} cannot cover {length} weight {axis}; expected {expected}");
    }

    public void Dispose()
    {
        foreach (SafetensorsFile file in _files)
        {
            file.Dispose();
        }
    }
}
