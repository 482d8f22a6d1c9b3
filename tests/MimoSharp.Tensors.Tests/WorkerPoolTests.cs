using MimoSharp.Tensors.Threading;

namespace MimoSharp.Tensors.Tests;

public sealed class WorkerPoolTests
{
    private sealed class CountingJob(int count, int failAt = -1) : IParallelJob
    {
        public readonly int[] Hits = new int[count];

        public void Execute(int start, int end)
        {
            for (int i = start; i < end; i++)
            {
                if (i == failAt)
                {
                    throw new InvalidOperationException($"item {i} failed");
                }
                Interlocked.Increment(ref Hits[i]);
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    public void EveryIndexRunsExactlyOnce(int threads)
    {
        using var pool = new WorkerPool(threads);
        foreach (int count in new[] { 0, 1, 2, 3, 17, 100, 1000 })
        {
            foreach (int grain in new[] { 1, 3, 64, 5000 })
            {
                for (int repeat = 0; repeat < 20; repeat++)
                {
                    var job = new CountingJob(count);
                    pool.Run(job, count, grain);
                    Assert.All(job.Hits, h => Assert.Equal(1, h));
                }
            }
        }
    }

    [Fact]
    public void AnExceptionReachesTheCallerAndThePoolKeepsWorking()
    {
        using var pool = new WorkerPool(3);
        var ex = Assert.Throws<InvalidOperationException>(() => pool.Run(new CountingJob(500, failAt: 250), 500, 1));
        Assert.Contains("item 250", ex.Message);
        var job = new CountingJob(500);
        pool.Run(job, 500, 7);
        Assert.All(job.Hits, h => Assert.Equal(1, h));
    }

    [Fact]
    public void ConcurrentCallersAllComplete()
    {
        using var pool = new WorkerPool(3);
        var jobs = Enumerable.Range(0, 8).Select(_ => new CountingJob(2000)).ToArray();
        Parallel.ForEach(jobs, job =>
        {
            for (int r = 0; r < 50; r++)
            {
                Array.Clear(job.Hits);
                pool.Run(job, 2000, 16);
                Assert.All(job.Hits, h => Assert.Equal(1, h));
            }
        });
    }

    /// <summary>Two items; the first to start waits (up to 2 s) for another thread to start the other one.</summary>
    private sealed class RendezvousJob : IParallelJob
    {
        private int _started;
        public readonly int[] Threads = new int[2];

        public void Execute(int start, int end)
        {
            for (int i = start; i < end; i++)
            {
                Threads[i] = Environment.CurrentManagedThreadId;
                if (Interlocked.Increment(ref _started) == 1)
                {
                    SpinWait.SpinUntil(() => Volatile.Read(ref _started) > 1, TimeSpan.FromSeconds(2));
                }
            }
        }
    }

    [Fact]
    public void AWorkerThatWentToSleepJoinsTheNextRun()
    {
        // Between runs the worker spins briefly, then sleeps; a run must wake it (a missed wake-up leaves the
        // caller to do every chunk alone, which here shows as one thread doing both items after a 2 s wait).
        using var pool = new WorkerPool(2);
        for (int run = 0; run < 20; run++)
        {
            Thread.Sleep(5);
            var job = new RendezvousJob();
            pool.Run(job, 2, 1);
            Assert.NotEqual(job.Threads[0], job.Threads[1]);
        }
    }
}
