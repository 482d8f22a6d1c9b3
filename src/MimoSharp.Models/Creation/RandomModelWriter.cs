using System.Buffers.Binary;
using MimoSharp.Models.Configuration;
using MimoSharp.Models.Loading;
using MimoSharp.Tensors;
using MimoSharp.Tensors.Quantization;

namespace MimoSharp.Models.Creation;

/// <summary>Options of a random checkpoint.</summary>
public sealed record RandomModelOptions
{
    public int MtpHeads { get; init; } = 3;
    public ulong Seed { get; init; } = 1;
    /// <summary>Start a new shard when one would pass this many bytes; null writes a single model.safetensors.</summary>
    public long? MaxShardBytes { get; init; }
    /// <summary>Write config.json only (to size a machine for a geometry without writing its weights).</summary>
    public bool ConfigOnly { get; init; }
    /// <summary>Called after each tensor with the bytes of tensor data written so far.</summary>
    public Action<long>? Progress { get; init; }
}

/// <summary>
/// Writes a randomly initialised model in the official layout: config.json plus safetensors with
/// the real tensor names, FP8 E4M3 + F32 block scales where the real checkpoint is FP8 (when the
/// config has a quantization_config), BF16 elsewhere, F32 router and biases. Tensors are generated
/// and streamed one block-row at a time, so any size can be written with little memory. Each
/// tensor's values depend only on the seed and its name.
/// </summary>
public static class RandomModelWriter
{
    public static void Write(string directory, MimoConfig config, RandomModelOptions options)
    {
        System.IO.Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "config.json"), config.ToJson());
        if (options.ConfigOnly)
        {
            return;
        }
        bool quantized = config.Derived.Fp8BlockSize is not null;
        (int blockRows, int blockCols) = config.Derived.Fp8BlockSize ?? (128, 128);

        // Each FP8 weight is followed by its scales, whose values the weight's generator fills in.
        var tensors = new List<TensorToWrite>();
        foreach (TensorSpec spec in CheckpointLayout.Enumerate(config, options.MtpHeads))
        {
            DType dtype = CheckpointLayout.StoredDType(spec.Role, quantized);
            ulong seed = options.Seed ^ Fnv1a(spec.Name);
            long[] shape = spec.Shape.Select(d => (long)d).ToArray();
            if (dtype == DType.F8E4M3)
            {
                int rows = spec.Shape[0], cols = spec.Shape[1];
                float std = 1f / MathF.Sqrt(cols);
                int scaleRows = (rows + blockRows - 1) / blockRows, scaleCols = (cols + blockCols - 1) / blockCols;
                var scales = new float[scaleRows * scaleCols];
                tensors.Add(new TensorToWrite(spec.Name, dtype, shape, s => WriteFp8(s, rows, cols, blockRows, blockCols, std, seed, scales)));
                tensors.Add(new TensorToWrite(spec.Name + "_scale_inv", DType.F32, [scaleRows, scaleCols], s => WriteFloats(s, scales)));
            }
            else
            {
                (float mean, float std) = Init(spec);
                tensors.Add(new TensorToWrite(spec.Name, dtype, shape, s => WriteDense(s, spec.Elements, dtype, mean, std, seed)));
            }
        }

        CheckpointWriter.Write(directory, tensors, options.MaxShardBytes, options.Progress);
    }

    private static (float Mean, float Std) Init(TensorSpec spec) => spec.Role switch
    {
        TensorRole.Norm => (1f, 0.1f),
        TensorRole.Embedding => (0f, 1f),
        TensorRole.SinkBias => (0f, 1f),
        TensorRole.RouterBias => (0f, 0.05f),
        _ => (0f, 1f / MathF.Sqrt(spec.Shape[^1])),
    };

    private static void WriteDense(Stream stream, long count, DType dtype, float mean, float std, ulong seed)
    {
        var random = new Gaussian(seed);
        var buffer = new byte[1 << 16];
        int size = DTypes.SizeOf(dtype);
        int used = 0;
        for (long i = 0; i < count; i++)
        {
            float value = mean + std * random.Next();
            if (dtype == DType.F32)
            {
                BinaryPrimitives.WriteSingleLittleEndian(buffer.AsSpan(used), value);
            }
            else
            {
                BinaryPrimitives.WriteUInt16LittleEndian(buffer.AsSpan(used), BFloat16.FromSingle(value));
            }
            used += size;
            if (used == buffer.Length)
            {
                stream.Write(buffer);
                used = 0;
            }
        }
        stream.Write(buffer, 0, used);
    }

    /// <summary>Generates one block-row at a time; each block's scale maps its largest |w| to 448.</summary>
    private static void WriteFp8(Stream stream, int rows, int cols, int blockRows, int blockCols, float std, ulong seed, float[] scales)
    {
        var random = new Gaussian(seed);
        int scaleCols = (cols + blockCols - 1) / blockCols;
        var values = new float[blockRows * cols];
        var codes = new byte[blockRows * cols];
        for (int r0 = 0, sr = 0; r0 < rows; r0 += blockRows, sr++)
        {
            int n = Math.Min(blockRows, rows - r0);
            for (int i = 0; i < n * cols; i++)
            {
                values[i] = std * random.Next();
            }
            Fp8BlockQuantizer.QuantizeBlockRow(values, n, cols, blockCols, codes, scales.AsSpan(sr * scaleCols, scaleCols));
            stream.Write(codes, 0, n * cols);
        }
    }

    private static void WriteFloats(Stream stream, float[] values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        }
        stream.Write(bytes);
    }

    private static ulong Fnv1a(string text)
    {
        ulong hash = 14695981039346656037;
        foreach (char c in text)
        {
            hash = (hash ^ c) * 1099511628211;
        }
        return hash;
    }

    /// <summary>Standard normal samples from a seeded xorshift64* generator (Box-Muller), independent of System.Random.</summary>
    private struct Gaussian(ulong seed)
    {
        private ulong _state = seed == 0 ? 0x9E3779B97F4A7C15 : seed;
        private float _spare = float.NaN;

        public float Next()
        {
            if (!float.IsNaN(_spare))
            {
                float s = _spare;
                _spare = float.NaN;
                return s;
            }
            double u1 = (NextUInt64() >> 11) * (1.0 / (1UL << 53)) + 1e-300;
            double u2 = (NextUInt64() >> 11) * (1.0 / (1UL << 53));
            double radius = Math.Sqrt(-2 * Math.Log(u1));
            _spare = (float)(radius * Math.Sin(2 * Math.PI * u2));
            return (float)(radius * Math.Cos(2 * Math.PI * u2));
        }

        private ulong NextUInt64()
        {
            _state ^= _state >> 12;
            _state ^= _state << 25;
            _state ^= _state >> 27;
            return _state * 2685821657736338717UL;
        }
    }
}
