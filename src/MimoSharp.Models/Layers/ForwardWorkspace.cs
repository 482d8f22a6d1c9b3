namespace MimoSharp.Models.Layers;

/// <summary>
/// Activation buffers of a forward pass, sized for the widest layer and grown to the largest batch
/// seen (llama2.c's RunState). Reusing one workspace keeps the decode loop free of allocation.
/// </summary>
public sealed class ForwardWorkspace
{
    private readonly Dictionary<string, float[]> _buffers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int[]> _intBuffers = new(StringComparer.Ordinal);

    /// <summary>A float buffer of at least <paramref name="length"/> elements, named so that callers can hold several at once.</summary>
    public Span<float> Floats(string name, int length)
    {
        if (!_buffers.TryGetValue(name, out float[]? buffer) || buffer.Length < length)
        {
            buffer = new float[Math.Max(length, (buffer?.Length ?? 0) * 2)];
            _buffers[name] = buffer;
        }
        return buffer.AsSpan(0, length);
    }

    /// <summary>The backing array of a named float buffer (for kernels that take arrays).</summary>
    public float[] FloatArray(string name, int length)
    {
        Floats(name, length);
        return _buffers[name];
    }

    public Span<int> Ints(string name, int length)
    {
        if (!_intBuffers.TryGetValue(name, out int[]? buffer) || buffer.Length < length)
        {
            buffer = new int[Math.Max(length, (buffer?.Length ?? 0) * 2)];
            _intBuffers[name] = buffer;
        }
        return buffer.AsSpan(0, length);
    }
}
