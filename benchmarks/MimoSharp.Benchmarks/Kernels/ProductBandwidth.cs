using System.Diagnostics;
using System.Globalization;
using MimoSharp.Tensors;
using MimoSharp.Tensors.Kernels;
using MimoSharp.Tensors.Storage;
using MimoSharp.Tensors.Threading;

namespace MimoSharp.Benchmarks.Kernels;

/// <summary>
/// How close one-token products come to the machine's read bandwidth, by shape and thread count. A decode step is
/// hundreds of products, and the gap between its bandwidth and the probe's is either in the kernels or around them
/// (the fixed cost of splitting a small product over the threads). Each shape gets distinct random matrices, MB in
/// all (well past the last-level cache), in one file read into memory as the model loader holds weights (huge pages
/// where the kernel gives them), run back to back. Passes interleave the shapes, the thread counts and a probe, so
/// all see the same drift (bandwidth swings 2x within minutes here).
/// Usage: dotnet run -c Release --project benchmarks/MimoSharp.Benchmarks -- product-bandwidth [MB=160] [REPS=4] [THREADS=cores] [ISA=Auto]
/// </summary>
internal static class ProductBandwidth
{
    private static readonly (DType DType, int Rows, int Cols, string What)[] Shapes =
    [
        (DType.F8E4M3, 256, 1024, "Model S v_proj"),
        (DType.F8E4M3, 512, 1024, "Model S expert gate/up"),
        (DType.F8E4M3, 3072, 1024, "Model S q_proj"),
        (DType.F8E4M3, 8192, 1024, "large FP8"),
        (DType.I8, 512, 1024, "Q8_0 expert gate/up"),
        (DType.I8, 3072, 1024, "Q8_0 q_proj"),
        (DType.I8, 8192, 1024, "large Q8_0"),
        (DType.BF16, 1024, 2048, "Model S o_proj"),
        (DType.BF16, 32000, 1024, "Model S lm_head"),
    ];

    public static int Run(string[] args)
    {
        long totalBytes = (args.Length > 1 ? long.Parse(args[1], CultureInfo.InvariantCulture) : 160) << 20;
        int reps = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 4;
        int threads = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : Environment.ProcessorCount;
        var mode = new KernelMode(args.Length > 4 ? Enum.Parse<KernelIsa>(args[4], ignoreCase: true) : KernelIsa.Auto);
        using var pool = new WorkerPool(threads);
        using var single = new WorkerPool(1);
        WorkerPool[] pools = threads > 1 ? [single, pool] : [single];
        var random = new Random(11);
        string dir = Path.Combine(Path.GetTempPath(), $"mimo-product-bandwidth-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        var files = new List<LoadedFile>();
        try
        {
            var sets = new WeightMatrix[Shapes.Length][];
            for (int k = 0; k < Shapes.Length; k++)
            {
                (DType dtype, int rows, int cols, _) = Shapes[k];
                long perMatrix = (long)rows * cols * DTypes.SizeOf(dtype);
                int count = (int)Math.Max(2, totalBytes / perMatrix);
                string path = Path.Combine(dir, $"shape{k}.bin");
                WriteRandomCodes(path, dtype, perMatrix, count, random);
                var file = new LoadedFile(path);
                files.Add(file);
                File.Delete(path);
                sets[k] = Enumerable.Range(0, count).Select(i => Matrix(dtype, file, i * perMatrix, rows, cols)).ToArray();
            }
            Console.WriteLine($"{mode.ResolvedIsa}, {totalBytes >> 20} MB of matrices per shape (huge pages: {files[0].HugePages}); GB/s over {reps} passes after a warm-up");
            var seconds = new double[Shapes.Length, pools.Length];
            double probeSum = 0;
            float[] x = Enumerable.Range(0, Shapes.Max(s => s.Cols)).Select(c => (float)Math.Sin(c + 1)).ToArray();
            var y = new float[Shapes.Max(s => s.Rows)];
            for (int rep = 0; rep <= reps; rep++)
            {
                for (int k = 0; k < Shapes.Length; k++)
                {
                    for (int p = 0; p < pools.Length; p++)
                    {
                        WeightMatrix[] set = sets[k];
                        // Wake the pool's workers first: while the other variant ran they went to sleep, and waking a
                        // halted vCPU of this kind of VM takes up to milliseconds (a cold pool's first products run on
                        // the caller alone, which measured a 2-thread q_proj at 1-thread speed).
                        long wake = Stopwatch.GetTimestamp();
                        while (Stopwatch.GetElapsedTime(wake).TotalMilliseconds < 5)
                        {
                            MatMul.Multiply(set[0], x.AsSpan(0, set[0].Cols), y, 1, pools[p], mode);
                        }
                        long start = Stopwatch.GetTimestamp();
                        foreach (WeightMatrix w in set)
                        {
                            MatMul.Multiply(w, x.AsSpan(0, w.Cols), y, 1, pools[p], mode);
                        }
                        if (rep > 0)
                        {
                            seconds[k, p] += Stopwatch.GetElapsedTime(start).TotalSeconds;
                        }
                    }
                }
                if (rep > 0)
                {
                    probeSum += MemoryProbe.ReadBandwidth(pool, 1L << 28, passes: 1);
                }
            }
            double probe = probeSum / reps / 1e9;
            Console.WriteLine($"probe ({threads} threads, mean of {reps}, one per pass): {probe:F1} GB/s");
            for (int k = 0; k < Shapes.Length; k++)
            {
                (DType dtype, int rows, int cols, string what) = Shapes[k];
                double bytes = (double)sets[k].Length * reps * sets[k][0].BytesRead;
                string line = $"{dtype,-7} {rows,6} x {cols,-5} {what,-24}";
                for (int p = 0; p < pools.Length; p++)
                {
                    double rate = bytes / seconds[k, p] / 1e9;
                    line += $"  {pools[p].ThreadCount} thread(s): {rate,5:F1} GB/s ({rate / probe,4:P0}), {seconds[k, p] / (sets[k].Length * reps) * 1e6,7:F1} us";
                }
                Console.WriteLine(line);
            }
            return 0;
        }
        finally
        {
            foreach (LoadedFile file in files)
            {
                file.Dispose();
            }
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// The matrix over codes at <paramref name="offset"/>, every scale 1/64: FP8 in 128 x 128 blocks, Q8_0 per 32. Each
    /// matrix its own scales (Q8_0's are an eighth of the codes' bytes, so they come from memory as in a model).
    /// </summary>
    internal static WeightMatrix Matrix(DType dtype, WeightStorage storage, long offset, int rows, int cols)
    {
        const int block = 128;
        return dtype switch
        {
            DType.F8E4M3 => WeightMatrix.Fp8(storage, offset, rows, cols,
                Enumerable.Repeat(1f / 64, (rows + block - 1) / block * ((cols + block - 1) / block)).ToArray(), block, block),
            DType.I8 => WeightMatrix.Q8(storage, offset, rows, cols,
                Enumerable.Repeat(1f / 64, rows * ((cols + WeightMatrix.GroupSize - 1) / WeightMatrix.GroupSize)).ToArray()),
            _ => WeightMatrix.Dense(storage, offset, dtype, rows, cols),
        };
    }

    /// <summary>count matrices of random finite codes (<see cref="RandomCodes"/>).</summary>
    private static void WriteRandomCodes(string path, DType dtype, long perMatrix, int count, Random random)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write);
        var bytes = new byte[perMatrix];
        for (int m = 0; m < count; m++)
        {
            RandomCodes(dtype, bytes, random);
            stream.Write(bytes);
        }
    }

    /// <summary>Random finite codes: FP8 without NaN or subnormal codes, positive normal BF16 in [0.5, 8), or any I8 codes.</summary>
    internal static void RandomCodes(DType dtype, Span<byte> bytes, Random random)
    {
        random.NextBytes(bytes);
        if (dtype == DType.BF16)
        {
            for (int i = 1; i < bytes.Length; i += 2)
            {
                bytes[i] = (byte)(0x3F + (bytes[i] & 1)); // sign 0, exponent 126..129
            }
        }
        else if (dtype == DType.F8E4M3)
        {
            for (int i = 0; i < bytes.Length; i++)
            {
                int magnitude = bytes[i] & 0x7F;
                magnitude = magnitude == 0x7F ? 0x7E : magnitude < 0x08 ? magnitude | 0x08 : magnitude;
                bytes[i] = (byte)((bytes[i] & 0x80) | magnitude);
            }
        }
    }
}
