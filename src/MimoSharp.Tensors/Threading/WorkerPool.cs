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
/// The caller waits only for the chunks to be done, never for a worker to wake up: on a loaded
/// machine a descheduled worker would otherwise stall every product for a time slice. A late worker
/// finds no chunk left and goes back to waiting.
/// One job at a time: a <see cref="Run"/> that finds the pool busy (another thread's job, or a job
/// calling Run from inside) runs its job on the calling thread alone, so callers never wait on each
/// other and never deadlock.
/// </summary>
public sealed class WorkerPool : IDisposable
{
    private static readonly Lazy<WorkerPool> s_shared = new(() => new WorkerPool(Environment.ProcessorCount));

    /// <summary>A pool with one thread per logical core.</summary>
    public static WorkerPool Shared => s_shared.Value;

    /// <summary>
    /// The state of one run. Two alternate so that a worker still leaving run g never sees run g + 1's
    /// fields half-written; a state is reused only when no worker is inside it.
    /// </summary>
    private sealed class RunState
    {
        public IParallelJob? Job;
        public int Count;
        public int Grain;
        public int Next;
        public int Done;
        public int Entered;
        public ExceptionDispatchInfo? Failure;
    }

    private readonly Thread[] _workers;
    private readonly object _sleepLock = new();
    private readonly RunState[] _states = [new(), new()];
    private RunState? _active;
    private long _generation;
    private int _sleepers;
    private int _busy;
    private volatile bool _disposed;

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

    /// <summary>A grain that gives each thread several chunks (for balance) of at least <paramref name="minimum"/> items.</summary>
    public int GrainFor(int count, int minimum = 1) => Math.Max(minimum, count / (ThreadCount * 4));

    private void RunOnWorkers(IParallelJob job, int count, int grain)
    {
        long generation = Interlocked.Read(ref _generation) + 1;
        RunState state = _states[generation & 1];
        var spin = new SpinWait();
        while (Volatile.Read(ref state.Entered) != 0)
        {
            spin.SpinOnce(sleep1Threshold: -1); // a worker from two runs ago is still on its way out
        }
        state.Job = job;
        state.Count = count;
        state.Grain = grain;
        state.Next = 0;
        state.Done = 0;
        state.Failure = null;
        Volatile.Write(ref _active, state);
        Interlocked.Exchange(ref _generation, generation);
        if (Volatile.Read(ref _sleepers) > 0)
        {
            lock (_sleepLock)
            {
                Monitor.PulseAll(_sleepLock);
            }
        }
        Work(state);
        spin = new SpinWait();
        while (Volatile.Read(ref state.Done) != count)
        {
            spin.SpinOnce(sleep1Threshold: -1);
        }
        // state.Job stays set: a worker that joined just now may still read it (it will find no chunk).
        Volatile.Write(ref _active, null);
        state.Failure?.Throw();
    }

    private static void Work(RunState state)
    {
        IParallelJob job = state.Job!;
        int count = state.Count, grain = state.Grain;
        while (true)
        {
            int start = Interlocked.Add(ref state.Next, grain) - grain;
            if (start >= count)
            {
                return;
            }
            int end = Math.Min(start + grain, count);
            try
            {
                job.Execute(start, end);
            }
            catch (Exception ex)
            {
                Interlocked.CompareExchange(ref state.Failure, ExceptionDispatchInfo.Capture(ex), null);
            }
            finally
            {
                Interlocked.Add(ref state.Done, end - start);
            }
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
                    // Interlocked: a full fence between this store and the read of _generation below. With a plain
                    // increment x86 may let that read pass the store, so that a Run publishing in between reads
                    // _sleepers == 0 and does not pulse, and this worker sleeps through that run.
                    Interlocked.Increment(ref _sleepers);
                    while ((generation = Volatile.Read(ref _generation)) == seen && !_disposed)
                    {
                        Monitor.Wait(_sleepLock);
                    }
                    Interlocked.Decrement(ref _sleepers);
                }
            }
            if (_disposed)
            {
                return;
            }
            seen = generation;
            RunState? state = Volatile.Read(ref _active);
            if (state is null)
            {
                continue;
            }
            Interlocked.Increment(ref state.Entered);
            // Join only if the state is still the published run (its fields are then complete).
            if (Volatile.Read(ref _active) == state)
            {
                Work(state);
            }
            Interlocked.Decrement(ref state.Entered);
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
