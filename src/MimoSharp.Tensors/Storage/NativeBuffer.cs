using System.Runtime.InteropServices;

namespace MimoSharp.Tensors.Storage;

/// <summary>An aligned native allocation holding weights built in memory (tests, random models, quantization).</summary>
public sealed unsafe class NativeBuffer : WeightStorage
{
    private byte* _pointer;
    private readonly long _length;

    public NativeBuffer(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        _length = length;
        _pointer = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(length, 1), 64);
        NativeMemory.Clear(_pointer, (nuint)length);
    }

    /// <summary>Copies <paramref name="bytes"/> into a new buffer.</summary>
    public static NativeBuffer From(ReadOnlySpan<byte> bytes)
    {
        var buffer = new NativeBuffer(bytes.Length);
        bytes.CopyTo(buffer.AsSpan());
        return buffer;
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

    /// <summary>The whole buffer, writable (only for buffers shorter than 2 GiB).</summary>
    public Span<byte> AsSpan() => new(Pointer, checked((int)_length));

    ~NativeBuffer() => Dispose(false);

    protected override void Dispose(bool disposing)
    {
        if (_pointer != null)
        {
            NativeMemory.AlignedFree(_pointer);
            _pointer = null;
        }
    }
}
