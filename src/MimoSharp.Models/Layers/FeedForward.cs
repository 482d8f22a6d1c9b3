using MimoSharp.Tensors.Kernels;
using MimoSharp.Tensors.Threading;

namespace MimoSharp.Models.Layers;

/// <summary>Dense SwiGLU (spec §2.5): y = W_down · (silu(W_gate·x) ⊙ W_up·x).</summary>
public sealed class DenseFeedForward(MlpWeights weights, WorkerPool pool, KernelMode kernels = default)
{
    public long BytesRead => weights.BytesRead;

    /// <summary>output [rows, H] from input [rows, H].</summary>
    public void Forward(ReadOnlySpan<float> input, Span<float> output, int rows, ForwardWorkspace ws)
        => Apply(weights, input, output, rows, ws, pool, kernels);

    internal static void Apply(MlpWeights w, ReadOnlySpan<float> input, Span<float> output, int rows, ForwardWorkspace ws, WorkerPool pool, KernelMode kernels)
    {
        Span<float> gate = ws.Floats("mlp.gate", rows * w.Width);
        Span<float> up = ws.Floats("mlp.up", rows * w.Width);
        MatMul.Multiply(w.Gate, input, gate, rows, pool, kernels);
        MatMul.Multiply(w.Up, input, up, rows, pool, kernels);
        VectorMath.SwiGlu(gate, up, kernels.Isa);
        MatMul.Multiply(w.Down, gate, output, rows, pool, kernels);
    }
}
