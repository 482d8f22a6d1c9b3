using System.Runtime.InteropServices;
using MimoSharp.Models.Configuration;
using MimoSharp.Models.Loading;
using MimoSharp.Tensors;
using MimoSharp.Tensors.Quantization;

namespace MimoSharp.Models.Creation;

/// <summary>The integer group format a checkpoint is quantized to.</summary>
public enum GroupFormat
{
    /// <summary>8-bit codes, one float scale per 32 weights of a row (1.125 bytes per weight).</summary>
    Q8_0,
    /// <summary>4-bit codes, one float scale per 32 weights of a row (0.625 bytes per weight).</summary>
    Q4_0,
}

/// <summary>What <see cref="CheckpointQuantizer.Quantize"/> wrote.</summary>
public sealed record QuantizeReport(int QuantizedTensors, int CopiedTensors, long InputBytes, long OutputBytes);

/// <summary>
/// Rewrites a checkpoint in Q8_0 or Q4_0 (`mimo quantize`): every projection, the embedding and the LM head
/// are dequantized from whatever they are stored in (FP8 with block scales, BF16, ...) and requantized in
/// groups of 32 along the row; norms, the router and biases are copied as they are. The output is a
/// checkpoint in the same layout ("X.weight" I8 or packed U8, plus "X.weight_scale" F32 [rows, ceil(cols/32)])
/// whose config.json says quant_method "mimosharp"; tokenizer and template files are copied alongside.
/// </summary>
public static class CheckpointQuantizer
{
    private const int RowsPerChunk = 256;

    public static QuantizeReport Quantize(string inputDirectory, string outputDirectory, GroupFormat format, long? maxShardBytes = null)
    {
        if (Path.GetFullPath(inputDirectory).TrimEnd('/') == Path.GetFullPath(outputDirectory).TrimEnd('/'))
        {
            throw new ArgumentException($"the output directory must differ from the input ({inputDirectory}): the input's weights are read while the output is written");
        }
        if (Checkpoint.HasWeights(outputDirectory) || (Directory.Exists(outputDirectory) && Directory.EnumerateFiles(outputDirectory, "*.safetensors").Any()))
        {
            throw new ArgumentException($"{outputDirectory} already holds a checkpoint; quantize into an empty or new directory (nothing was overwritten)");
        }
        MimoConfig config = MimoConfig.Load(inputDirectory);
        using Checkpoint checkpoint = Checkpoint.Open(inputDirectory);
        int mtpHeads = MimoWeights.CountMtpHeads(checkpoint);
        var block = config.Derived.Fp8BlockSize;

        var tensors = new List<TensorToWrite>();
        int quantized = 0, copied = 0;
        var written = new HashSet<string>();
        foreach (TensorSpec spec in CheckpointLayout.Enumerate(config, mtpHeads))
        {
            if (!checkpoint.Contains(spec.Name))
            {
                continue; // e.g. an optional bias absent from this checkpoint: the loader decides whether that is an error
            }
            if (IsQuantized(spec.Role) && spec.Shape.Length == 2)
            {
                string prefix = spec.Name[..^".weight".Length];
                WeightMatrix source = checkpoint.ReadMatrix(prefix, spec.Shape[0], spec.Shape[1], block);
                int rows = source.Rows, cols = source.Cols, groups = GroupQuantizer.GroupsPerRow(cols);
                var scales = new float[(long)rows * groups];
                // Q4_0 codes are stored as U8 [rows, packed row bytes].
                tensors.Add(new TensorToWrite(spec.Name, format == GroupFormat.Q8_0 ? DType.I8 : DType.U8,
                    [rows, WeightMatrix.StrideOf(CodeType(format), cols)], s => WriteQuantized(s, source, format, scales)));
                tensors.Add(new TensorToWrite(prefix + ".weight_scale", DType.F32, [rows, groups], s => s.Write(MemoryMarshal.AsBytes(scales.AsSpan()))));
                written.Add(spec.Name);
                written.Add(prefix + ".weight_scale_inv");
                written.Add(prefix + ".weight_scale");
                quantized++;
            }
            else
            {
                tensors.Add(Copy(checkpoint.Get(spec.Name)));
                written.Add(spec.Name);
                copied++;
            }
        }
        // Tensors the layout does not name (extra buffers some exports carry) are kept as they are.
        foreach (TensorEntry entry in checkpoint.Tensors.Values.OrderBy(e => e.Name, StringComparer.Ordinal))
        {
            if (!written.Contains(entry.Name))
            {
                tensors.Add(Copy(entry));
                copied++;
            }
        }

        Directory.CreateDirectory(outputDirectory);
        var quantConfig = new QuantizationConfig
        {
            QuantMethod = QuantizationConfig.GroupMethod,
            Format = format == GroupFormat.Q8_0 ? QuantizationConfig.Q8Format : QuantizationConfig.Q4Format,
            GroupSize = WeightMatrix.GroupSize,
        };
        File.WriteAllText(Path.Combine(outputDirectory, "config.json"), (config with { QuantizationConfig = quantConfig }).Validate().ToJson());
        CheckpointWriter.Write(outputDirectory, tensors, maxShardBytes);
        foreach (string file in Directory.EnumerateFiles(inputDirectory))
        {
            string name = Path.GetFileName(file);
            if (name != "config.json" && !name.EndsWith(".safetensors", StringComparison.Ordinal) && name != Checkpoint.IndexFileName)
            {
                File.Copy(file, Path.Combine(outputDirectory, name), overwrite: true);
            }
        }
        long inputBytes = checkpoint.Files.Sum(f => new FileInfo(f.Path).Length);
        long outputBytes = Checkpoint.FileBytes(outputDirectory);
        return new QuantizeReport(quantized, copied, inputBytes, outputBytes);
    }

    /// <summary>Whether `mimo quantize` quantizes tensors of this role (projections, embedding, LM head; not norms, router, biases).</summary>
    public static bool IsQuantized(TensorRole role) =>
        role is TensorRole.QuantizableProjection or TensorRole.DenseProjection or TensorRole.LmHead or TensorRole.Embedding;

    /// <summary>The weight-matrix element type of the format's codes.</summary>
    private static DType CodeType(GroupFormat format) => format == GroupFormat.Q8_0 ? DType.I8 : DType.Q4;

    private static TensorToWrite Copy(TensorEntry entry) =>
        new(entry.Name, entry.DType, entry.Shape.ToArray(), s =>
        {
            for (long done = 0; done < entry.ByteLength;)
            {
                int chunk = (int)Math.Min(1 << 24, entry.ByteLength - done);
                s.Write(entry.File.Storage.Slice(entry.DataOffset + done, chunk));
                done += chunk;
            }
        });

    /// <summary>Dequantizes and requantizes chunks of rows in parallel, writing each chunk's codes in row order.</summary>
    private static void WriteQuantized(Stream stream, WeightMatrix source, GroupFormat format, float[] scales)
    {
        int cols = source.Cols, groups = GroupQuantizer.GroupsPerRow(cols);
        int stride = (int)WeightMatrix.StrideOf(CodeType(format), cols);
        var codes = new byte[(long)RowsPerChunk * stride];
        for (int first = 0; first < source.Rows; first += RowsPerChunk)
        {
            int count = Math.Min(RowsPerChunk, source.Rows - first);
            Parallel.For(0, count, () => new float[cols], (i, _, row) =>
            {
                int r = first + i;
                source.DequantizeRow(r, row);
                Span<byte> rowCodes = codes.AsSpan(i * stride, stride);
                Span<float> rowScales = scales.AsSpan(r * groups, groups);
                if (format == GroupFormat.Q8_0)
                {
                    GroupQuantizer.QuantizeQ8Row(row, MemoryMarshal.Cast<byte, sbyte>(rowCodes), rowScales);
                }
                else
                {
                    GroupQuantizer.QuantizeQ4Row(row, rowCodes, rowScales);
                }
                return row;
            }, _ => { });
            stream.Write(codes, 0, count * stride);
        }
    }
}
