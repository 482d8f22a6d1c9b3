using MimoSharp.Models.Loading;
using MimoSharp.Tensors.Threading;
using MimoSharp.Training.Ops;

namespace MimoSharp.Training;

/// <summary>
/// Muon for the 2-D hidden matrices (every projection: q/k/v/o, the MLPs and experts, the MTP eh_proj); the
/// embedding, the LM head, the routers, norms and sinks stay with AdamW. Per matrix W [rows, cols] with
/// gradient G (Keller Jordan's Muon, with the update scaling of Moonshot's "Muon is Scalable for LLM Training"):
/// <code>
/// B ← μ·B + G;  U = G + μ·B (Nesterov) or B
/// O = NewtonSchulz5(U)                       (≈ the orthogonal factor of U: its singular values pushed to ~1)
/// W ← W·(1 − lr·wd) − lr · 0.2·√max(rows, cols) · O
/// </code>
/// The 0.2·√max(rows, cols) factor gives the update the RMS of an AdamW update, so one learning rate and one
/// weight decay serve both optimizers. NewtonSchulz5: X = U / (‖U‖_F + 1e-7), transposed when rows &gt; cols, then
/// five times A = X·Xᵀ, X ← a·X + (b·A + c·A·A)·X with (a, b, c) = (3.4445, −4.7750, 2.0315), in fp32.
/// The momentum buffer shares the parameters' layout (zero outside Muon's matrices); the workspaces are
/// allocated once, for the largest matrix, so an update allocates nothing.
/// </summary>
public sealed class Muon
{
    public const float NsA = 3.4445f, NsB = -4.7750f, NsC = 2.0315f;
    public const int NewtonSchulzSteps = 5;

    private readonly Gemm _gemm = new();
    private readonly WorkerPool? _pool;
    // X and the next X [short side, long side]; A = X·Xᵀ and A·A [short side, short side].
    private readonly float[] _x, _next, _a, _aa;

    public float Momentum { get; init; } = 0.95f;
    public bool Nesterov { get; init; } = true;
    public float WeightDecay { get; init; } = 0.1f;

    /// <summary>The matrices Muon updates, in layout order.</summary>
    public IReadOnlyList<ParameterTensor> Tensors { get; }

    /// <summary>Momentum [layout length].</summary>
    public float[] Buffer { get; }

    /// <summary>Whether Muon updates this tensor: a 2-D projection (not the embedding, the LM head, a router or a norm).</summary>
    public static bool Applies(ParameterTensor tensor) =>
        tensor.Shape.Length == 2 && tensor.Role is TensorRole.QuantizableProjection or TensorRole.DenseProjection;

    /// <summary>Bytes of Muon's state for a layout: the momentum buffer and the workspaces.</summary>
    public static long StateBytes(ParameterLayout layout)
    {
        (long large, long small) = WorkspaceSizes(layout);
        return 4L * (layout.Length + 2 * large + 2 * small);
    }

    public Muon(ParameterLayout layout, WorkerPool? pool = null)
    {
        _pool = pool;
        Tensors = layout.Tensors.Where(Applies).ToArray();
        Buffer = new float[layout.Length];
        (long large, long small) = WorkspaceSizes(layout);
        _x = new float[large];
        _next = new float[large];
        _a = new float[small];
        _aa = new float[small];
    }

    private static (long Large, long Small) WorkspaceSizes(ParameterLayout layout)
    {
        long large = 0, small = 0;
        foreach (ParameterTensor t in layout.Tensors.Where(Applies))
        {
            long side = Math.Min(t.Shape[0], t.Shape[1]);
            large = Math.Max(large, (long)t.Length);
            small = Math.Max(small, side * side);
        }
        return (large, small);
    }

    /// <summary>One update of Muon's matrices in <paramref name="parameters"/> from <paramref name="gradients"/> at learning rate <paramref name="lr"/>.</summary>
    public void Update(float[] parameters, float[] gradients, float lr)
    {
        float mu = Momentum, decay = 1f - lr * WeightDecay;
        foreach (ParameterTensor t in Tensors)
        {
            int rows = t.Shape[0], cols = t.Shape[1];
            bool transpose = rows > cols;
            int shortSide = Math.Min(rows, cols), longSide = Math.Max(rows, cols);
            // U into X [short side, long side]: W's layout, or its transpose.
            for (int r = 0; r < rows; r++)
            {
                int row = t.Offset + r * cols;
                for (int c = 0; c < cols; c++)
                {
                    float g = gradients[row + c];
                    float b = Buffer[row + c] = mu * Buffer[row + c] + g;
                    _x[transpose ? c * rows + r : r * cols + c] = Nesterov ? g + mu * b : b;
                }
            }
            float[] o = NewtonSchulz(shortSide, longSide);
            float step = lr * 0.2f * MathF.Sqrt(longSide);
            for (int r = 0; r < rows; r++)
            {
                int row = t.Offset + r * cols;
                for (int c = 0; c < cols; c++)
                {
                    parameters[row + c] = parameters[row + c] * decay - step * o[transpose ? c * rows + r : r * cols + c];
                }
            }
        }
    }

    /// <summary>NewtonSchulz5 of X [m, n] (m ≤ n) held in the workspace; returns the buffer holding the result.</summary>
    private float[] NewtonSchulz(int m, int n)
    {
        float[] x = _x, next = _next;
        int length = m * n;
        double sum = 0;
        for (int i = 0; i < length; i++)
        {
            sum += (double)x[i] * x[i];
        }
        float inverse = (float)(1 / (Math.Sqrt(sum) + 1e-7));
        for (int i = 0; i < length; i++)
        {
            x[i] *= inverse;
        }
        for (int s = 0; s < NewtonSchulzSteps; s++)
        {
            _gemm.Multiply(x, 0, x, 0, _a, 0, m, m, n, accumulate: false, _pool);        // A = X·Xᵀ [m, m]
            _gemm.Multiply(_a, 0, _a, 0, _aa, 0, m, m, m, accumulate: false, _pool);     // A·Aᵀ = A·A (A is symmetric)
            for (int i = 0; i < m * m; i++)
            {
                _aa[i] = NsB * _a[i] + NsC * _aa[i];                                        // B = b·A + c·A·A
            }
            _gemm.MultiplyStrided(_aa, 0, m, 1, x, 0, next, 0, m, n, m, accumulate: false, _pool); // B·X [m, n]
            for (int i = 0; i < length; i++)
            {
                next[i] += NsA * x[i];
            }
            (x, next) = (next, x);
        }
        return x;
    }
}
