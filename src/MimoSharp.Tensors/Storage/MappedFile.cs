using System.IO.MemoryMappedFiles;

namespace MimoSharp.Tensors.Storage;

/// <summary>
/// A whole file mapped read-only into memory. Weights are read straight from the page cache, so a
/// checkpoint costs resident memory only for the pages the forward pass touches.
/// </summary>
public sealed unsafe class MappedFile : WeightStorage
{
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private byte* _pointer;
    private readonly long _length;

    public string Path { get; }

    public MappedFile(string path)
    {
        Path = path;
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            throw new FileNotFoundException($"file not found: {path}", path);
        }
        _length = info.Length;
        if (_length == 0)
        {
            return; // mapping an empty file is not allowed; an empty storage is.
        }
        _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, mapName: null, capacity: 0, MemoryMappedFileAccess.Read);
        _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* pointer = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        _pointer = pointer + _view.PointerOffset;
    }

    public override long Length => _length;

    /// <summary>
    /// Maps every page into the process now (one read per 4 KiB), so the first forward passes do not
    /// pay a page fault per page of weights. Pages already in the page cache cost no disk I/O.
    /// </summary>
    public void Prefault(Threading.WorkerPool? pool = null)
    {
        if (_length == 0)
        {
            return;
        }
        const int page = 4096;
        long pages = (_length + page - 1) / page;
        (pool ?? Threading.WorkerPool.Shared).Run(new PrefaultJob(Pointer, _length), (int)Math.Min(pages / 256 + 1, int.MaxValue), 1);
    }

    private sealed class PrefaultJob(byte* start, long length) : Threading.IParallelJob
    {
        // Item i covers 256 pages (1 MiB).
        public void Execute(int first, int end)
        {
            long from = (long)first << 20, to = Math.Min((long)end << 20, length);
            int sum = 0;
            for (long offset = from; offset < to; offset += 4096)
            {
                sum += start[offset];
            }
            GC.KeepAlive(sum);
        }
    }

    internal override byte* Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_length > 0 && _pointer == null, this);
            return _pointer;
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (_pointer != null)
        {
            _view!.SafeMemoryMappedViewHandle.ReleasePointer();
            _pointer = null;
        }
        _view?.Dispose();
        _map?.Dispose();
    }
}
