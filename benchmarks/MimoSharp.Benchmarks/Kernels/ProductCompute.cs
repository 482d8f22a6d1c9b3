using System.Diagnostics;
using System.Globalization;
using MimoSharp.Tensors;
using MimoSharp.Tensors.Kernels;
using MimoSharp.Tensors.Storage;
using MimoSharp.Tensors.Threading;

namespace MimoSharp.Benchmarks.Kernels;

/// <summary>
/// How fast the multi-token products multiply-add when memory is not the limit: one matrix small enough to stay in
/// L2, run over and over on one thread, for n = 1..8 tokens (batched decode gives each MoE expert one to three
/// tokens; MTP verify rows are 2-4). Reports G multiply-adds per second, to set against the core's FMA peak
/// (lanes x FMA ports x clock), so the kernels' compute efficiency shows apart from the machine's bandwidth.
/// Usage: dotnet run -c Release --project benchmarks/MimoSharp.Benchmarks -- product-compute [MILLISECONDS=300] [ISA=Auto] [TOKENS=1..8, a comma list] [SHAPES=all, a comma list of indices]
/// </summary>
internal static class ProductCompute
{
    private static readonly (DType DType, int Rows, int Cols, string What)[] Shapes =
    [
        (DType.F8E4M3, 512, 1024, "Model S expert gate/up"),
        (DType.F8E4M3, 1024, 512, "Model S expert down"),
        (DType.BF16, 256, 2048, "o_proj slice"),
        (DType.I8, 512, 1024, "Q8_0 expert gate/up"),
    ];

    public static int Run(string[] args)
    {
        int milliseconds = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 300;
        var mode = new KernelMode(args.Length > 2 ? Enum.Parse<KernelIsa>(args[2], ignoreCase: true) : KernelIsa.Auto);
        int[] tokenCounts = args.Length > 3 ? args[3].Split(',').Select(t => int.Parse(t, CultureInfo.InvariantCulture)).ToArray() : [1, 2, 3, 4, 5, 6, 7, 8];
        int[] shapes = args.Length > 4 ? args[4].Split(',').Select(t => int.Parse(t, CultureInfo.InvariantCulture)).ToArray() : Enumerable.Range(0, Shapes.Length).ToArray();
        if (tokenCounts.Any(n => n is < 1 or > 8) || shapes.Any(k => k < 0 || k >= Shapes.Length))
        {
            throw new ArgumentException($"product-compute: tokens must be 1..8 and shapes 0..{Shapes.Length - 1}");
        }
        using var single = new WorkerPool(1);
        var random = new Random(5);
        Console.WriteLine($"{mode.ResolvedIsa}, one thread, matrix in cache; G multiply-adds per second by tokens n");
        foreach (int shape in shapes)
        {
            (DType dtype, int rows, int cols, string what) = Shapes[shape];
            WeightMatrix w = RandomMatrix(dtype, rows, cols, random);
            float[] x = Enumerable.Range(0, 8 * cols).Select(i => (float)Math.Sin(i + 1)).ToArray();
            var y = new float[8 * rows];
            string line = $"{dtype,-7} {rows,5} x {cols,-5} {what,-24}";
            foreach (int n in tokenCounts)
            {
                for (int i = 0; i < 20; i++)
                {
                    MatMul.Multiply(w, x, y, n, single, mode);
                }
                long calls = 0;
                long start = Stopwatch.GetTimestamp();
                while (Stopwatch.GetElapsedTime(start).TotalMilliseconds < milliseconds)
                {
                    for (int i = 0; i < 16; i++)
                    {
                        MatMul.Multiply(w, x, y, n, single, mode);
                    }
                    calls += 16;
                }
                double rate = (double)calls * n * rows * cols / Stopwatch.GetElapsedTime(start).TotalSeconds / 1e9;
                line += $" {n}:{rate,5:F1}";
            }
            Console.WriteLine(line);
        }
        return 0;
    }

    private static WeightMatrix RandomMatrix(DType dtype, int rows, int cols, Random random)
    {
        var bytes = new byte[(long)rows * cols * DTypes.SizeOf(dtype)];
        ProductBandwidth.RandomCodes(dtype, bytes, random);
        // The storage lives as long as the process: a benchmark.
        return ProductBandwidth.Matrix(dtype, NativeBuffer.From(bytes), 0, rows, cols);
    }
}
