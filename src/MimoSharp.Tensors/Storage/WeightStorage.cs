namespace MimoSharp.Tensors.Storage;

/// <summary>
/// Bytes that weights point into: a memory-mapped checkpoint file or a native allocation.
/// Kept alive by every <see cref="WeightMatrix"/> that points into it.
/// </summary>
public abstract unsafe class WeightStorage : IDisposable
{
    /// <summary>Length in bytes.</summary>
    public abstract long Length { get; }

    /// <summary>Start of the bytes. Valid until <see cref="Dispose()"/>.</summary>
    internal abstract byte* Pointer { get; }

    /// <summary>Whether the bytes are this process's own memory (a read copy or an allocation), not a read-only file mapping.</summary>
    internal virtual bool Writable => false;

    /// <summary>
    /// The FP8 subnormal codes taken out of this storage, by the byte offset of their matrix (see
    /// <see cref="WeightMatrix.SeparateSubnormals"/>): a second matrix over the same bytes (a tied weight) finds them here.
    /// </summary>
    internal Dictionary<long, Fp8Subnormals> SeparatedSubnormals { get; } = [];

    /// <summary>A read-only view of [offset, offset+length); throws if it leaves the storage.</summary>
    public ReadOnlySpan<byte> Slice(long offset, int length)
    {
        CheckRange(offset, length);
        return new ReadOnlySpan<byte>(Pointer + offset, length);
    }

    internal void CheckRange(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset + length > Length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset),
                $"byte range [{offset}, {offset + length}) is outside the storage of {Length} bytes");
        }
    }

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected abstract void Dispose(bool disposing);
}
