using System.Buffers.Binary;
using MimoSharp.Models.Configuration;
using MimoSharp.Models.Creation;
using MimoSharp.Models.Loading;
using MimoSharp.Tensors;
using MimoSharp.Tensors.Quantization;
using MimoSharp.Tokenization;

namespace MimoSharp.Training;

/// <summary>
/// Writes a trained model in the official Hugging Face layout (spec §4): config.json, model.safetensors
/// with the real tensor names (BF16 matrices and norms, F32 router, correction bias and sinks, as the
/// release stores them unquantised), tokenizer.json and tokenizer_config.json (with its chat template).
/// Only the active MTP heads are written.
/// </summary>
public static class HfExporter
{
    public static void Write(TrainingModel model, string directory, string? tokenizerDirectory, DType matrixType = DType.BF16)
    {
        if (matrixType is not (DType.BF16 or DType.F32))
        {
            throw new ArgumentException($"export writes BF16 or F32 matrices, not {matrixType}");
        }
        Directory.CreateDirectory(directory);
        MimoTokenizer? tokenizer = null;
        if (tokenizerDirectory is not null && MimoTokenizer.Exists(tokenizerDirectory))
        {
            foreach (string file in new[] { "tokenizer.json", "tokenizer_config.json" })
            {
                string source = Path.Combine(tokenizerDirectory, file);
                if (File.Exists(source))
                {
                    File.Copy(source, Path.Combine(directory, file), overwrite: true);
                }
            }
            tokenizer = MimoTokenizer.Load(directory);
        }
        else if (model.Config.VocabSize >= 256 + ByteLevelTokenizerWriter.ControlTokens.Count)
        {
            ByteLevelTokenizerWriter.Write(directory, model.Config.VocabSize);
            tokenizer = MimoTokenizer.Load(directory);
        }

        int heads = Math.Min(model.ActiveMtpHeads, model.MtpHeads);
        MimoConfig config = model.Config with
        {
            QuantizationConfig = null,
            TorchDtype = matrixType == DType.F32 ? "float32" : "bfloat16",
            EosTokenId = EosIds(tokenizer) ?? model.Config.EosTokenId,
        };
        File.WriteAllText(Path.Combine(directory, "config.json"), config.ToJson());

        var tensors = new List<TensorToWrite>();
        int biasOffset = 0;
        foreach (TensorSpec spec in CheckpointLayout.Enumerate(model.Config, heads))
        {
            long[] shape = spec.Shape.Select(d => (long)d).ToArray();
            if (spec.Role == TensorRole.RouterBias)
            {
                int start = biasOffset;
                biasOffset += spec.Shape[0];
                tensors.Add(new TensorToWrite(spec.Name, DType.F32, shape, s => WriteValues(s, model.RouterBias.AsMemory(start, spec.Shape[0]), DType.F32)));
                continue;
            }
            ParameterTensor t = model.Layout[spec.Name];
            DType dtype = CheckpointLayout.StoredDType(spec.Role, quantized: false) == DType.F32 ? DType.F32 : matrixType;
            tensors.Add(new TensorToWrite(spec.Name, dtype, shape, s => WriteValues(s, model.Parameters.AsMemory(t.Offset, t.Length), dtype)));
        }
        CheckpointWriter.Write(directory, tensors, maxShardBytes: null);
    }

    /// <summary>The parameters as the export stores them (BF16 rounding where it writes BF16), for comparing the engine with the trainer.</summary>
    public static void RoundLikeExport(TrainingModel model)
    {
        foreach (ParameterTensor t in model.Layout.Tensors)
        {
            if (CheckpointLayout.StoredDType(t.Role, quantized: false) == DType.BF16)
            {
                Span<float> w = model.Parameters.AsSpan(t.Offset, t.Length);
                for (int i = 0; i < w.Length; i++)
                {
                    w[i] = BFloat16.ToSingle(BFloat16.FromSingle(w[i]));
                }
            }
        }
    }

    private static System.Text.Json.JsonElement? EosIds(MimoTokenizer? tokenizer)
    {
        if (tokenizer is null)
        {
            return null;
        }
        int[] ids = new[] { "<|im_end|>", "<|endoftext|>" }.Select(tokenizer.TokenToId).Where(i => i is not null).Select(i => i!.Value).ToArray();
        return ids.Length == 0 ? null : System.Text.Json.JsonSerializer.SerializeToElement(ids);
    }

    private static void WriteValues(Stream stream, ReadOnlyMemory<float> values, DType dtype)
    {
        int size = dtype == DType.F32 ? 4 : 2;
        var buffer = new byte[Math.Min(values.Length, 1 << 16) * size];
        ReadOnlySpan<float> span = values.Span;
        for (int start = 0; start < span.Length; start += buffer.Length / size)
        {
            int count = Math.Min(buffer.Length / size, span.Length - start);
            for (int i = 0; i < count; i++)
            {
                if (dtype == DType.F32)
                {
                    BinaryPrimitives.WriteSingleLittleEndian(buffer.AsSpan(4 * i), span[start + i]);
                }
                else
                {
                    BinaryPrimitives.WriteUInt16LittleEndian(buffer.AsSpan(2 * i), BFloat16.FromSingle(span[start + i]));
                }
            }
            stream.Write(buffer, 0, count * size);
        }
    }
}
