using System.Runtime.InteropServices;

namespace MimoSharp.Tensors.Storage;

/// <summary>
/// A whole file read into private anonymous memory (Linux: advised to use 2 MiB transparent huge pages).
/// The alternative to <see cref="MappedFile"/> when the checkpoint fits in memory: a decode step touches
/// every active weight, and over 4 KiB page-cache pages that costs a TLB walk per 4 KiB (and, under
/// virtual machines that shadow page tables, far more); with huge pages it is one per 2 MiB. This is what
/// llama.cpp's --no-mmap (and its repacked CPU buffers) buy too.
/// </summary>
public sealed unsafe class LoadedFile : WeightStorage
{
    private const int MadvHugePage = 14;
    private const long HugePage = 2 << 20;
    private byte* _pointer;
    private readonly long _length;
    private readonly long _reserved;
    private readonly bool _mapped;

    public string Path { get; }

    /// <summary>True when the memory was advised to use huge pages (Linux).</summary>
    public bool HugePages { get; }

    public LoadedFile(string path, Threading.WorkerPool? pool = null)
    {
        Path = path;
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            throw new FileNotFoundException($"file not found: {path}", path);
        }
        _length = info.Length;
        _reserved = Math.Max(HugePage, (_length + HugePage - 1) / HugePage * HugePage);
        if (OperatingSystem.IsLinux())
        {
            const int protReadWrite = 3, mapPrivateAnonymous = 0x02 | 0x20;
            nint address = Mmap(0, (nuint)_reserved, protReadWrite, mapPrivateAnonymous, -1, 0);
            if (address == -1)
            {
                throw new OutOfMemoryException($"cannot reserve {_reserved} bytes for {path} (mmap errno {Marshal.GetLastPInvokeError()})");
            }
            _pointer = (byte*)address;
            _mapped = true;
            HugePages = Madvise(address, (nuint)_reserved, MadvHugePage) == 0;
        }
        else
        {
            _pointer = (byte*)NativeMemory.AlignedAlloc((nuint)_reserved, 4096);
        }
        try
        {
            Read(path, pool ?? Threading.WorkerPool.Shared);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Reads the file in 8 MiB chunks across the pool (page-cache copies are bound by one core's memcpy otherwise).</summary>
    private void Read(string path, Threading.WorkerPool pool)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        const int chunk = 8 << 20;
        int chunks = (int)((_length + chunk - 1) / chunk);
        var job = new ReadJob(handle, _pointer, _length, chunk);
        pool.Run(job, chunks, 1);
        if (job.Failure is { } failure)
        {
            throw new IOException($"{path}: reading the file into memory failed: {failure.Message}", failure);
        }
    }

    private sealed class ReadJob(Microsoft.Win32.SafeHandles.SafeFileHandle handle, byte* destination, long length, int chunk) : Threading.IParallelJob
    {
        public Exception? Failure;

        public void Execute(int start, int end)
        {
            for (int i = start; i < end; i++)
            {
                long offset = (long)i * chunk;
                int count = (int)Math.Min(chunk, length - offset);
                try
                {
                    int done = 0;
                    while (done < count)
                    {
                        int read = RandomAccess.Read(handle, new Span<byte>(destination + offset + done, count - done), offset + done);
                        if (read <= 0)
                        {
                            throw new EndOfStreamException($"the file ended at byte {offset + done}, expected {length} bytes");
                        }
                        done += read;
                    }
                }
                catch (Exception ex)
                {
                    Interlocked.CompareExchange(ref Failure, ex, null);
                }
            }
        }
    }

    public override long Length => _length;

    internal override bool Writable => true;

    internal override byte* Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_pointer == null, this);
            return _pointer;
        }
    }

    ~LoadedFile() => Dispose(false);

    protected override void Dispose(bool disposing)
    {
        if (_pointer == null)
        {
            return;
        }
        if (_mapped)
        {
            Munmap((nint)_pointer, (nuint)_reserved);
        }
        else
        {
            NativeMemory.AlignedFree(_pointer);
        }
        _pointer = null;
    }

    [DllImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static extern nint Mmap(nint address, nuint length, int protection, int flags, int fd, nint offset);

    [DllImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static extern int Madvise(nint address, nuint length, int advice);

    [DllImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static extern int Munmap(nint address, nuint length);
}
