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
