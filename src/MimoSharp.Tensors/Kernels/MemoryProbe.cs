using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using MimoSharp.Tensors.Threading;

namespace MimoSharp.Tensors.Kernels;

/// <summary>
/// The machine's read bandwidth as the kernels see it: every thread of a pool sums its share of a
/// buffer much larger than the caches (the roofline a decode step, which reads each weight once, is
/// measured against).
/// </summary>
public static unsafe class MemoryProbe
{
    /// <summary>Best of <paramref name="passes"/> timed reads of a <paramref name="bytes"/>-byte buffer, in bytes per second.</summary>
    public static double ReadBandwidth(WorkerPool pool, long bytes = 1L << 30, int passes = 3)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bytes, 1L << 20);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(passes);
        byte* buffer = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 4096);
        try
        {
            for (long offset = 0; offset < bytes; offset += int.MaxValue)
            {
                new Span<byte>(buffer + offset, (int)Math.Min(int.MaxValue, bytes - offset)).Fill(1);
            }
            var job = new SumJob { Buffer = buffer, Bytes = bytes & ~63L };
            const int chunk = 1 << 20;
            int chunks = (int)(job.Bytes / chunk);
            double best = 0;
            for (int pass = 0; pass < passes; pass++)
            {
                var clock = Stopwatch.StartNew();
                pool.Run(job, chunks, Math.Max(1, chunks / (pool.ThreadCount * 8)));
                best = Math.Max(best, (double)chunks * chunk / clock.Elapsed.TotalSeconds);
            }
            return best;
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
        }
    }

    private sealed class SumJob : IParallelJob
    {
        public byte* Buffer;
        public long Bytes;
        public int Sink;

        public void Execute(int start, int end)
        {
            var a = Vector512<int>.Zero;
            var b = Vector512<int>.Zero;
            for (long offset = (long)start << 20, stop = (long)end << 20; offset < stop; offset += 128)
            {
                a += Vector512.Load((int*)(Buffer + offset));
                b += Vector512.Load((int*)(Buffer + offset + 64));
            }
            Interlocked.Add(ref Sink, Vector512.Sum(a + b)); // keeps the reads alive
        }
    }
}
