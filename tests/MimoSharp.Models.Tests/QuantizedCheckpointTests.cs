using MimoSharp.Tensors.Kernels;
using MimoSharp.Models.Configuration;
using MimoSharp.Models.Creation;
using MimoSharp.Models.Loading;
using MimoSharp.Tensors;

namespace MimoSharp.Models.Tests;

/// <summary>`mimo quantize` output: loadable, close to the FP8 model it came from, and broken files named.</summary>
public sealed class QuantizedCheckpointTests
{
    private static readonly Lazy<(string Fp8, string Q8, string Q4)> s_models = new(() =>
    {
        string fp8 = RandomModels.Write("tiny-quant-source", RandomModels.TinyConfig(), new RandomModelOptions { Seed = 11 });
        string q8 = RandomModels.TempDir("tiny-q8");
        string q4 = RandomModels.TempDir("tiny-q4");
        CheckpointQuantizer.Quantize(fp8, q8, QuantizedFormat.Q8_0);
        CheckpointQuantizer.Quantize(fp8, q4, QuantizedFormat.Q4_0, maxShardBytes: 64 * 1024);
        return (fp8, q8, q4);
    });

    private static float[] Logits(string dir, int[] ids, KernelMode kernels = default)
    {
        using MimoModel model = MimoModel.Load(dir, new ModelLoadOptions { Kernels = kernels });
        var logits = new float[ids.Length * model.VocabSize];
        model.Forward([new SequenceInput(model.CreateCache(), ids)], default, logits);
        return logits;
    }

    /// <summary>Root-mean-square of (a - b) relative to the root-mean-square of a.</summary>
    private static double RelativeRms(float[] a, float[] b)
    {
        double diff = 0, norm = 0;
        for (int i = 0; i < a.Length; i++)
        {
            diff += (a[i] - (double)b[i]) * (a[i] - (double)b[i]);
            norm += (double)a[i] * a[i];
        }
        return Math.Sqrt(diff / norm);
    }

    [Fact]
    public void QuantizedModelsLoadAndStayCloseToTheSourceLogits()
    {
        (string fp8, string q8, string q4) = s_models.Value;
        int[] ids = [1, 7, 42, 99, 3, 250, 17, 8, 120, 64, 5, 33];
        float[] reference = Logits(fp8, ids);
        double q8Error = RelativeRms(reference, Logits(q8, ids));
        double q4Error = RelativeRms(reference, Logits(q4, ids));
        // 8-bit codes lose ~0.3% per weight, 4-bit ~5%; through 6 layers the logits follow.
        // A random 6-layer MoE amplifies weight noise (a flipped expert choice moves whole rows of logits):
        // measured 6% for Q8_0 and 41% for Q4_0 here. The exact check is the twin test below.
        Assert.InRange(q8Error, 1e-4, 0.15);
        Assert.InRange(q4Error, 2 * q8Error, 0.8);
    }

    /// <summary>
    /// Writes every group-quantized matrix of <paramref name="source"/> as F32 holding its dequantized values
    /// (computed by the naive per-row decoder), everything else as it is: the float twin of a quantized model.
    /// </summary>
    private static string DequantizedTwin(string source)
    {
        MimoConfig config = MimoConfig.Load(source);
        string dir = RandomModels.TempDir("dequantized-twin");
        using Checkpoint checkpoint = Checkpoint.Open(source);
        var tensors = new List<TensorToWrite>();
        foreach (TensorSpec spec in CheckpointLayout.Enumerate(config, MimoWeights.CountMtpHeads(checkpoint)))
        {
            TensorEntry entry = checkpoint.Get(spec.Name);
            if (entry.DType is DType.I8 or DType.U8 or DType.F8E4M3)
            {
                WeightMatrix m = checkpoint.ReadMatrix(spec.Name[..^".weight".Length], spec.Shape[0], spec.Shape[1], config.Derived.Fp8BlockSize);
                var values = new float[m.Rows * m.Cols];
                for (int r = 0; r < m.Rows; r++)
                {
                    m.DequantizeRow(r, values.AsSpan(r * m.Cols, m.Cols));
                }
                tensors.Add(new TensorToWrite(spec.Name, DType.F32, [m.Rows, m.Cols], s => s.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()))));
            }
            else
            {
                byte[] bytes = entry.File.Storage.Slice(entry.DataOffset, (int)entry.ByteLength).ToArray();
                tensors.Add(new TensorToWrite(spec.Name, entry.DType, entry.Shape.ToArray(), s => s.Write(bytes)));
            }
        }
        File.WriteAllText(Path.Combine(dir, "config.json"), (config with { QuantizationConfig = null }).Validate().ToJson());
        CheckpointWriter.Write(dir, tensors, null);
        return dir;
    }

    /// <summary>A BF16 model (the trainer's export format) and its `mimo quantize --type fp8` copy.</summary>
    private static readonly Lazy<(string Bf16, string Fp8)> s_fp8Models = new(() =>
    {
        string bf16 = RandomModels.Write("tiny-bf16-source", RandomModels.TinyConfig() with { QuantizationConfig = null }, new RandomModelOptions { Seed = 12 });
        string fp8 = RandomModels.TempDir("tiny-fp8");
        CheckpointQuantizer.Quantize(bf16, fp8, QuantizedFormat.Fp8);
        return (bf16, fp8);
    });

    [Fact]
    public void Fp8OutputHasTheOfficialLayoutAndEveryWeightIsItsNearestCodeTimesTheBlockScale()
    {
        (string bf16, string fp8) = s_fp8Models.Value;
        QuantizationConfig q = MimoConfig.Load(fp8).QuantizationConfig!;
        Assert.Equal(("fp8", "e4m3", "dynamic"), (q.QuantMethod, q.Format, q.ActivationScheme));
        Assert.Equal([128, 128], q.WeightBlockSize!);
        MimoConfig config = MimoConfig.Load(bf16);
        using Checkpoint source = Checkpoint.Open(bf16), output = Checkpoint.Open(fp8);
        int fp8Matrices = 0;
        foreach (TensorSpec spec in CheckpointLayout.Enumerate(config, MimoWeights.CountMtpHeads(source)))
        {
            string prefix = spec.Name.EndsWith(".weight", StringComparison.Ordinal) ? spec.Name[..^".weight".Length] : spec.Name;
            TensorEntry written = output.Get(spec.Name);
            if (spec.Role != TensorRole.QuantizableProjection)
            {
                // o_proj, eh_proj, embedding, LM head, norms, router: as they were, and o_proj / eh_proj listed as unquantized.
                Assert.Equal(source.Get(spec.Name).DType, written.DType);
                Assert.False(output.Contains(prefix + ".weight_scale_inv"), spec.Name);
                Assert.Equal(spec.Role == TensorRole.DenseProjection, q.IgnoredLayers!.Contains(prefix));
                continue;
            }
            Assert.Equal(DType.F8E4M3, written.DType);
            int rows = spec.Shape[0], cols = spec.Shape[1];
            Assert.Equal([(rows + 127) / 128, (cols + 127) / 128], output.Get(prefix + ".weight_scale_inv").Shape.ToArray());
            WeightMatrix w = source.ReadMatrix(prefix, rows, cols, null), wq = output.ReadMatrix(prefix, rows, cols, (128, 128));
            var original = new float[rows * cols];
            var decoded = new float[rows * cols];
            for (int r = 0; r < rows; r++)
            {
                w.DequantizeRow(r, original.AsSpan(r * cols, cols));
                wq.DequantizeRow(r, decoded.AsSpan(r * cols, cols));
            }
            for (int br = 0; br < rows; br += 128)
            {
                for (int bc = 0; bc < cols; bc += 128)
                {
                    // The block's scale maps its largest |w| to 448 (so that weight comes back as itself).
                    double max = 0;
                    for (int r = br; r < Math.Min(br + 128, rows); r++)
                    {
                        for (int c = bc; c < Math.Min(bc + 128, cols); c++)
                        {
                            max = Math.Max(max, Math.Abs(original[r * cols + c]));
                        }
                    }
                    double scale = max / 448;
                    for (int r = br; r < Math.Min(br + 128, rows); r++)
                    {
                        for (int c = bc; c < Math.Min(bc + 128, cols); c++)
                        {
                            // E4M3 keeps 3 mantissa bits: the nearest code is within half a step, 2^-4 of the value's
                            // binade (2^-10 absolute below 2^-6, the subnormals), in units of the block's scale.
                            double v = original[r * cols + c] / scale, error = Math.Abs(decoded[r * cols + c] - original[r * cols + c]) / scale;
                            double halfStep = Math.Abs(v) >= 1.0 / 64 ? Math.Pow(2, Math.Floor(Math.Log2(Math.Abs(v))) - 4) : Math.Pow(2, -10);
                            Assert.True(error <= halfStep * (1 + 1e-5) + 1e-9, $"{spec.Name}[{r}, {c}]: {original[r * cols + c]} came back as {decoded[r * cols + c]} (block max {max})");
                        }
                    }
                }
            }
            fp8Matrices++;
        }
        Assert.True(fp8Matrices > 10, $"only {fp8Matrices} FP8 matrices");
    }

    [Fact]
    public void Fp8ModelMatchesItsDequantizedFloatTwinAndStaysCloseToTheBf16Source()
    {
        (string bf16, string fp8) = s_fp8Models.Value;
        int[] ids = [3, 141, 59, 26, 53, 58, 97, 93, 23, 84];
        float[] reference = Logits(bf16, ids), actual = Logits(fp8, ids);
        Assert.True(RelativeRms(Logits(DequantizedTwin(fp8), ids), actual) < 1e-5, "FP8 kernels against the float twin of the FP8 weights");
        // E4M3 rounds each weight by up to 1/16 of its binade (~2% RMS); through this random 6-layer MoE the logits follow.
        Assert.InRange(RelativeRms(reference, actual), 1e-4, 0.3);
    }

    [Fact]
    public void ANonFiniteWeightIsRefusedByTensorAndRowsInsteadOfBecomingACode()
    {
        (string bf16, _) = s_fp8Models.Value;
        string broken = RandomModels.TempDir("bf16-nan");
        foreach (string file in Directory.GetFiles(bf16))
        {
            File.Copy(file, Path.Combine(broken, Path.GetFileName(file)));
        }
        long offset;
        using (Checkpoint checkpoint = Checkpoint.Open(broken))
        {
            TensorEntry entry = checkpoint.Get("model.layers.1.self_attn.q_proj.weight");
            offset = entry.DataOffset + 2L * (130 * entry.Shape[1] + 5); // row 130, column 5
        }
        using (FileStream stream = File.OpenWrite(Path.Combine(broken, "model.safetensors")))
        {
            stream.Position = offset;
            stream.Write([0xC0, 0x7F]); // BF16 NaN, little-endian
        }
        var ex = Assert.Throws<InvalidDataException>(() => CheckpointQuantizer.Quantize(broken, RandomModels.TempDir("fp8-of-nan"), QuantizedFormat.Fp8));
        Assert.Contains("model.layers.1.self_attn.q_proj.weight", ex.Message);
        Assert.Contains("rows 128..", ex.Message);
        Assert.Contains("NaN", ex.Message);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void QuantizedModelsMatchTheirDequantizedFloatTwin(bool q8)
    {
        (_, string q8Dir, string q4Dir) = s_models.Value;
        string dir = q8 ? q8Dir : q4Dir;
        int[] decode = [3, 141, 59, 26, 53, 58, 97, 93, 23, 84];
        string twin = DequantizedTwin(dir);
        foreach (int[] ids in new[] { decode, decode[..1], decode[..4] })
        {
            // Exact activations: the quantized model computes the float dot products of its dequantized weights.
            float[] expected = Logits(twin, ids), actual = Logits(dir, ids, KernelMode.Exact());
            Assert.True(RelativeRms(expected, actual) < 1e-5, $"{(q8 ? "Q8_0" : "Q4_0")} with {ids.Length} tokens: relative RMS {RelativeRms(expected, actual)}");
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Int8ActivationsStayCloseToTheExactMode(bool q8)
    {
        (_, string q8Dir, string q4Dir) = s_models.Value;
        string dir = q8 ? q8Dir : q4Dir;
        int[] ids = [3, 141, 59, 26, 53, 58];
        float[] exact = Logits(dir, ids, KernelMode.Exact()), fast = Logits(dir, ids);
        double error = RelativeRms(exact, fast);
        // int8 activations add ~0.4% noise per product (half a step of 1/127 of the group's max); this random
        // 6-layer MoE amplifies it (measured ~0.8% on these logits). Not zero: the route really ran.
        Assert.InRange(error, 1e-6, 0.05);
    }

    [Fact]
    public void QuantizedCheckpointsAreSmallerAndDeclareTheirFormat()
    {
        (string fp8, string q8, string q4) = s_models.Value;
        Assert.Equal(QuantizationConfig.Q8Format, MimoConfig.Load(q8).QuantizationConfig!.Format);
        Assert.Equal(QuantizationConfig.Q4Format, MimoConfig.Load(q4).QuantizationConfig!.Format);
        Assert.True(File.Exists(Path.Combine(q4, Checkpoint.IndexFileName)), "the Q4 copy was asked to shard");
        using Checkpoint c8 = Checkpoint.Open(q8);
        Assert.Equal(DType.I8, c8.Get("model.layers.0.self_attn.q_proj.weight").DType);
        Assert.Equal(DType.I8, c8.Get("lm_head.weight").DType);
        Assert.Equal(DType.F32, c8.Get("model.layers.1.mlp.gate.weight").DType); // the router is kept
        Assert.False(c8.Contains("model.layers.0.self_attn.q_proj.weight_scale_inv"));
        using Checkpoint c4 = Checkpoint.Open(q4);
        Assert.Equal(DType.U8, c4.Get("model.layers.0.self_attn.q_proj.weight").DType);
        Assert.True(Checkpoint.FileBytes(q4) < Checkpoint.FileBytes(q8));
        Assert.True(Checkpoint.FileBytes(q8) < Checkpoint.FileBytes(fp8) * 1.5); // BF16 parts shrink, FP8 parts grow by the scales
    }

    [Fact]
    public void SizesEstimatedFromTheConfigAloneMatchTheQuantizedFiles()
    {
        (_, string q8, string q4) = s_models.Value;
        foreach (string dir in new[] { q8, q4 })
        {
            MimoConfig config = MimoConfig.Load(dir);
            using Checkpoint checkpoint = Checkpoint.Open(dir);
            ModelSummary fromFiles = ModelSummary.From(config, checkpoint);
            ModelSummary fromConfig = ModelSummary.From(config, null, MimoWeights.CountMtpHeads(checkpoint));
            Assert.Equal(fromFiles.BytesByDType.OrderBy(p => p.Key), fromConfig.BytesByDType.OrderBy(p => p.Key));
        }
    }

    [Fact]
    public void ReadAndMappedWeightsGiveTheSameLogits()
    {
        (_, string q8, _) = s_models.Value;
        int[] ids = [4, 8, 15, 16, 23, 42];
        float[] read, mapped;
        using (MimoModel model = MimoModel.Load(q8, new ModelLoadOptions { Residency = WeightResidency.Read }))
        {
            read = new float[ids.Length * model.VocabSize];
            model.Forward([new SequenceInput(model.CreateCache(), ids)], default, read);
        }
        using (MimoModel model = MimoModel.Load(q8, new ModelLoadOptions { Residency = WeightResidency.Map }))
        {
            mapped = new float[ids.Length * model.VocabSize];
            model.Forward([new SequenceInput(model.CreateCache(), ids)], default, mapped);
        }
        Assert.Equal(read, mapped);
    }

    private static string EditQ8Header(Func<string, string> edit) => CheckpointLoadingTests.EditHeader(edit, s_models.Value.Q8);

    [Fact]
    public void MissingGroupScalesAreNamed()
    {
        string dir = EditQ8Header(h => h.Replace("\"model.layers.0.self_attn.q_proj.weight_scale\"", "\"model.layers.0.self_attn.q_proj.weight_scalX\""));
        var ex = Assert.Throws<CheckpointException>(() => MimoModel.Load(dir).Dispose());
        Assert.Contains("model.layers.0.self_attn.q_proj.weight_scale", ex.Message);
        Assert.Contains("Q8_0", ex.Message);
    }

    [Fact]
    public void GroupScalesOfTheWrongShapeAreNamed()
    {
        // q_proj is [192, 64]: two groups of 32 per row, scales [192, 2]. Claim [96, 4] (same byte count).
        string dir = EditQ8Header(h => h.Replace("\"model.layers.0.self_attn.q_proj.weight_scale\":{\"dtype\":\"F32\",\"shape\":[192,2]",
            "\"model.layers.0.self_attn.q_proj.weight_scale\":{\"dtype\":\"F32\",\"shape\":[96,4]"));
        var ex = Assert.Throws<CheckpointException>(() => MimoModel.Load(dir).Dispose());
        Assert.Contains("weight_scale", ex.Message);
        Assert.Contains("expected [192, 2]", ex.Message);
    }

    [Fact]
    public void UnknownGroupFormatInTheConfigIsNamed()
    {
        string json = ModelPresets.Get("tiny").ToJson().Replace("\"quant_method\": \"fp8\"", "\"quant_method\": \"mimosharp\"").Replace("\"fmt\": \"e4m3\"", "\"fmt\": \"q3_k\"");
        var ex = Assert.Throws<ModelConfigException>(() => MimoConfig.Parse(json));
        Assert.Contains("q3_k", ex.Message);
        Assert.Contains("q8_0", ex.Message);
    }

    [Fact]
    public void QuantizingOverAnExistingCheckpointIsRefused()
    {
        (string fp8, string q8, _) = s_models.Value;
        long before = Checkpoint.FileBytes(q8);
        var ex = Assert.Throws<ArgumentException>(() => CheckpointQuantizer.Quantize(fp8, q8, QuantizedFormat.Q4_0));
        Assert.Contains("already holds a checkpoint", ex.Message);
        Assert.Equal(before, Checkpoint.FileBytes(q8));
    }

    [Fact]
    public void QuantizingIntoTheSourceDirectoryIsRefused()
    {
        (string fp8, _, _) = s_models.Value;
        var ex = Assert.Throws<ArgumentException>(() => CheckpointQuantizer.Quantize(fp8, fp8 + "/", QuantizedFormat.Q8_0));
        Assert.Contains("must differ", ex.Message);
    }
}
