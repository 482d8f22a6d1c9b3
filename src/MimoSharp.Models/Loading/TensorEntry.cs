using MimoSharp.Tensors;

namespace MimoSharp.Models.Loading;

/// <summary>One tensor of a safetensors file: where its bytes are and what they hold.</summary>
public sealed record TensorEntry(string Name, DType DType, IReadOnlyList<long> Shape, SafetensorsFile File, long DataOffset, long ByteLength)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);

    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}
