using MimoSharp.Models.Configuration;
using MimoSharp.Tensors.Threading;

namespace MimoSharp.Models;

/// <summary>Choices made when a model is loaded.</summary>
public sealed record ModelLoadOptions
{
    public SlidingWindowConvention WindowConvention { get; init; } = SlidingWindowConvention.HuggingFace;
    /// <summary>Threads of the kernels' pool; null uses one per core.</summary>
    public int? Threads { get; init; }
    /// <summary>Map every weight page at load (see <see cref="Tensors.Storage.MappedFile.Prefault"/>), instead of faulting them in during the first tokens; skipped for checkpoints over half the memory.</summary>
    public bool Prefault { get; init; } = true;
}
