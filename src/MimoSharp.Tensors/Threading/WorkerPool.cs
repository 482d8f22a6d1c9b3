using System.Runtime.ExceptionServices;

namespace MimoSharp.Tensors.Threading;

/// <summary>A unit of parallel work over item indices [start, end).</summary>
public interface IParallelJob
{
    void Execute(int start, int end);
}

/// <summary>
/// A persistent pool of worker threads for kernels. <see cref="Run"/> splits [0, count) into chunks
/// that the caller's thread and the workers take from a shared counter; it allocates nothing. Workers
/// spin briefly between jobs (the decode loop issues hundreds of small products per token, and waking
/// a blocked thread costs more than most of them) and then sleep.
/// One job at a time: a <see cref="Run"/> that finds the pool busy (another thread's job, or a job
/// calling Run from inside) runs its job on the calling thread alone, so callers never wait on each
/// other and never deadlock.
/// </summary>
public sealed class WorkerPool : IDisposable
{
    private static readonly Lazy<WorkerPool> s_shared = new(() => new WorkerPool(Environment.ProcessorCount));

    /// <summary>A pool with one thread per logical core.</summary>
    public static WorkerPool Shared => s_shared.Value;

    private readonly Thread[] _workers;
    private readonly object _sleepLock = new();
    private int _busy;
    private IParallelJob? _job;
    private int _count;
    private int _grain;
    private int _next;
    private int _pending;
    private long _generation;
    private int _sleepers;
    private volatile bool _disposed;
    private ExceptionDispatchInfo? _failure;

    /// <summary>Threads working on a job, the caller's included.</summary>
    public int ThreadCount { get; }

    public WorkerPool(int threadCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(threadCount);
        ThreadCount = threadCount;
        _workers = new Thread[threadCount - 1];
        for (int i = 0; i < _workers.Length; i++)
        {
            _workers[i] = new Thread(WorkerLoop) { IsBackground = true, Name = $"mimo-worker-{i + 1}" };
            _workers[i].Start();
        }
    }

    /// <summary>Runs <paramref name="job"/> over [0, <paramref name="count"/>) in chunks of <paramref name="grain"/> items.</summary>
    public void Run(IParallelJob job, int count, int grain)
    {
        if (count <= 0)
        {
            return;
        }
        grain = Math.Max(1, grain);
        if (_workers.Length == 0 || count <= grain)
        {
            job.Execute(0, count);
            return;
        }
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
        {
            job.Execute(0, count);
            return;
        }
        try
        {
            RunOnWorkers(job, count, grain);
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    private void RunOnWorkers(IParallelJob job, int count, int grain)
    {
        _job = job;
        _count = count;
        _grain = grain;
        _next = 0;
        _failure = null;
        Volatile.Write(ref _pending, _workers.Length);
        Interlocked.Increment(ref _generation);
        if (Volatile.Read(ref _sleepers) > 0)
        {
            lock (_sleepLock)
            {
                Monitor.PulseAll(_sleepLock);
            }
        }
        try
        {
            Work(job);
        }
        finally
        {
            var spin = new SpinWait();
            while (Volatile.Read(ref _pending) != 0)
            {
                spin.SpinOnce(sleep1Threshold: -1);
            }
            _job = null;
        }
        _failure?.Throw();
    }

    /// <summary>A grain that gives each thread several chunks (for balance) of at least <paramref name="minimum"/> items.</summary>
    public int GrainFor(int count, int minimum = 1) => Math.Max(minimum, count / (ThreadCount * 4));

    private void Work(IParallelJob job)
    {
        while (true)
        {
            int start = Interlocked.Add(ref _next, _grain) - _grain;
            if (start >= _count)
            {
                return;
            }
            job.Execute(start, Math.Min(start + _grain, _count));
        }
    }

    private void WorkerLoop()
    {
        long seen = 0;
        while (true)
        {
            // Spin for a while (about 50 microseconds) for the next job, then sleep.
            long generation;
            int spins = 0;
            while ((generation = Volatile.Read(ref _generation)) == seen && !_disposed && spins < 2000)
            {
                Thread.SpinWait(20);
                spins++;
            }
            if (generation == seen && !_disposed)
            {
                lock (_sleepLock)
                {
                    _sleepers++;
                    while ((generation = Volatile.Read(ref _generation)) == seen && !_disposed)
                    {
                        Monitor.Wait(_sleepLock);
                    }
                    _sleepers--;
                }
            }
            if (_disposed)
            {
                return;
            }
            seen = generation;
            try
            {
                Work(_job!);
            }
            catch (Exception ex)
            {
                _failure ??= ExceptionDispatchInfo.Capture(ex);
                Volatile.Write(ref _next, int.MaxValue / 2);
            }
            finally
            {
                Interlocked.Decrement(ref _pending);
            }
        }
    }

    public void Dispose()
    {
        _disposed = true;
        lock (_sleepLock)
        {
            Monitor.PulseAll(_sleepLock);
        }
    }
}
