using System.Runtime.InteropServices;
using MimoSharp.Models.Configuration;
using MimoSharp.Models.Loading;
using MimoSharp.Tensors;
using MimoSharp.Tensors.Quantization;

namespace MimoSharp.Models.Creation;

/// <summary>The format `mimo quantize` writes a checkpoint's weights in.</summary>
public enum QuantizedFormat
{
    /// <summary>8-bit codes, one float scale per 32 weights of a row (1.125 bytes per weight).</summary>
    Q8_0,
    /// <summary>4-bit codes, one float scale per 32 weights of a row (0.625 bytes per weight).</summary>
    Q4_0,
    /// <summary>
    /// FP8 E4M3 with one float scale per 128 × 128 block ("weight_scale_inv"), the official checkpoint's format
    /// (1 byte per weight): q/k/v and MLP projections only; o_proj, eh_proj, the embedding and the LM head stay
    /// as they are (BF16), as in MiMo-V2-Flash.
    /// </summary>
    Fp8,
}

/// <summary>What <see cref="CheckpointQuantizer.Quantize"/> wrote.</summary>
public sealed record QuantizeReport(int QuantizedTensors, int CopiedTensors, long InputBytes, long OutputBytes);

/// <summary>
/// Rewrites a checkpoint in Q8_0, Q4_0 or FP8 (`mimo quantize`). Q8_0 / Q4_0: every projection, the embedding
/// and the LM head are dequantized from whatever they are stored in (FP8 with block scales, BF16, ...) and
/// requantized in groups of 32 along the row; norms, the router and biases are copied as they are. The output
/// is a checkpoint in the same layout ("X.weight" I8 or packed U8, plus "X.weight_scale" F32 [rows, ceil(cols/32)])
/// whose config.json says quant_method "mimosharp". FP8: the official layout and config (see
/// <see cref="QuantizedFormat.Fp8"/>; "X.weight" F8_E4M3 plus "X.weight_scale_inv" F32 [ceil(rows/128), ceil(cols/128)],
/// quant_method "fp8", the unquantized modules in ignored_layers; an FP8 source keeps its block size). Tokenizer and template files are copied alongside.
/// </summary>
public static class CheckpointQuantizer
{
    private const int RowsPerChunk = 256;
    /// <summary>Rows and columns of one FP8 scale block when the source has none, as in MiMo-V2-Flash and DeepSeek-V3.</summary>
    private const int Fp8Block = 128;

    private static int BlockCount(int size, int block) => (size + block - 1) / block;

    public static QuantizeReport Quantize(string inputDirectory, string outputDirectory, QuantizedFormat format, long? maxShardBytes = null)
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
        // FP8 output keeps an FP8 source's block size.
        (int Rows, int Cols) fp8Block = block ?? (Fp8Block, Fp8Block);

        var tensors = new List<TensorToWrite>();
        int quantized = 0, copied = 0;
        var written = new HashSet<string>();
        var ignored = new List<string>();
        foreach (TensorSpec spec in CheckpointLayout.Enumerate(config, mtpHeads))
        {
            if (!checkpoint.Contains(spec.Name))
            {
                continue; // e.g. an optional bias absent from this checkpoint: the loader decides whether that is an error
            }
            if (format == QuantizedFormat.Fp8 && spec.Role == TensorRole.DenseProjection)
            {
                ignored.Add(spec.Name[..^".weight".Length]);
            }
            // FP8: the projections the official checkpoint holds in FP8; Q8_0 / Q4_0: every projection, the embedding and the LM head.
            bool quantize = spec.Shape.Length == 2 && (format == QuantizedFormat.Fp8 ? spec.Role == TensorRole.QuantizableProjection : IsQuantized(spec.Role));
            if (quantize)
            {
                string prefix = spec.Name[..^".weight".Length];
                WeightMatrix source = checkpoint.ReadMatrix(prefix, spec.Shape[0], spec.Shape[1], block);
                int rows = source.Rows, cols = source.Cols;
                if (format == QuantizedFormat.Fp8)
                {
                    int scaleRows = BlockCount(rows, fp8Block.Rows), scaleCols = BlockCount(cols, fp8Block.Cols);
                    var scales = new float[(long)scaleRows * scaleCols];
                    tensors.Add(new TensorToWrite(spec.Name, DType.F8E4M3, [rows, cols], s => WriteFp8(s, source, spec.Name, fp8Block, scales)));
                    tensors.Add(new TensorToWrite(prefix + ".weight_scale_inv", DType.F32, [scaleRows, scaleCols], s => s.Write(MemoryMarshal.AsBytes(scales.AsSpan()))));
                }
                else
                {
                    int groups = GroupQuantizer.GroupsPerRow(cols);
                    var scales = new float[(long)rows * groups];
                    // Q4_0 codes are stored as U8 [rows, packed row bytes].
                    tensors.Add(new TensorToWrite(spec.Name, format == QuantizedFormat.Q8_0 ? DType.I8 : DType.U8,
                        [rows, WeightMatrix.StrideOf(CodeType(format), cols)], s => WriteQuantized(s, source, format, scales)));
                    tensors.Add(new TensorToWrite(prefix + ".weight_scale", DType.F32, [rows, groups], s => s.Write(MemoryMarshal.AsBytes(scales.AsSpan()))));
                }
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
        QuantizationConfig quantConfig = format == QuantizedFormat.Fp8
            ? new QuantizationConfig
            {
                QuantMethod = "fp8",
                Format = "e4m3",
                ActivationScheme = "dynamic",
                WeightBlockSize = [fp8Block.Rows, fp8Block.Cols],
                IgnoredLayers = ignored,
            }
            : new QuantizationConfig
            {
                QuantMethod = QuantizationConfig.GroupMethod,
                Format = format == QuantizedFormat.Q8_0 ? QuantizationConfig.Q8Format : QuantizationConfig.Q4Format,
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
    private static DType CodeType(QuantizedFormat format) => format == QuantizedFormat.Q8_0 ? DType.I8 : DType.Q4;

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

    /// <summary>
    /// One block-row at a time: its rows dequantized (in parallel), then each block's scale and codes.
    /// A weight that is not finite is refused by name.
    /// </summary>
    private static void WriteFp8(Stream stream, WeightMatrix source, string name, (int Rows, int Cols) block, float[] scales)
    {
        int cols = source.Cols, scaleCols = BlockCount(cols, block.Cols);
        var values = new float[(long)block.Rows * cols];
        var codes = new byte[(long)block.Rows * cols];
        for (int r0 = 0, blockRow = 0; r0 < source.Rows; r0 += block.Rows, blockRow++)
        {
            int n = Math.Min(block.Rows, source.Rows - r0);
            Parallel.For(0, n, i => source.DequantizeRow(r0 + i, values.AsSpan(i * cols, cols)));
            try
            {
                Fp8BlockQuantizer.QuantizeBlockRow(values, n, cols, block.Cols, codes, scales.AsSpan(blockRow * scaleCols, scaleCols));
            }
            catch (ArgumentException e)
            {
                throw new InvalidDataException($"{name}: rows {r0}..{r0 + n - 1}: {e.Message}");
            }
            stream.Write(codes, 0, n * cols);
        }
    }

    /// <summary>Dequantizes and requantizes chunks of rows in parallel, writing each chunk's codes in row order.</summary>
    private static void WriteQuantized(Stream stream, WeightMatrix source, QuantizedFormat format, float[] scales)
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
                if (format == QuantizedFormat.Q8_0)
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
