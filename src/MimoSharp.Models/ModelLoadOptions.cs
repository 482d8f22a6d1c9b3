using MimoSharp.Models.Configuration;
using MimoSharp.Tensors.Kernels;
using MimoSharp.Tensors.Threading;

namespace MimoSharp.Models;

/// <summary>Choices made when a model is loaded.</summary>
public sealed record ModelLoadOptions
{
    public SlidingWindowConvention WindowConvention { get; init; } = SlidingWindowConvention.HuggingFace;
    /// <summary>Threads of the kernels' pool; null uses one per core.</summary>
    public int? Threads { get; init; }
    /// <summary>How the weights are held: read into memory, or mapped from the files; Auto reads them when the checkpoint fits in half the memory.</summary>
    public WeightResidency Residency { get; init; } = WeightResidency.Auto;
    /// <summary>Map every weight page at load (see <see cref="Tensors.Storage.MappedFile.Prefault"/>), instead of faulting them in during the first tokens; skipped for checkpoints over half the memory.</summary>
    public bool Prefault { get; init; } = true;
    /// <summary>The kernels' path and activation mode for this model (default: the widest path, int8 activations for Q8_0 / Q4_0).</summary>
    public KernelMode Kernels { get; init; }
}

/// <summary>Where a model's weights live while it runs.</summary>
public enum WeightResidency
{
    /// <summary>Read into memory when the checkpoint fits in half the available memory; mapped otherwise.</summary>
    Auto,
    /// <summary>Read into private (huge-page) memory: fastest decode; costs the checkpoint's size in resident memory and a read at load.</summary>
    Read,
    /// <summary>Memory-mapped from the files: pages come from the page cache on demand, so checkpoints larger than memory still run.</summary>
    Map,
}
