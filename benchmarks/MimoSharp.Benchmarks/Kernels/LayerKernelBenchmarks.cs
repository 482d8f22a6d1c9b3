using BenchmarkDotNet.Attributes;
using MimoSharp.Models.Layers;
using MimoSharp.Tensors.Kernels;

namespace MimoSharp.Benchmarks.Kernels;

/// <summary>
/// The non-matmul kernels of one MiMo-V2-Flash layer at decode, at the real model's sizes:
/// attention of one position over a context (64 query heads sharing 4 KV heads on global layers,
/// so a group of 16; q/k dim 192, v dim 128), RMSNorm and SwiGLU over the hidden / expert width,
/// partial RoPE over all query heads.
/// </summary>
[MemoryDiagnoser]
public class LayerKernelBenchmarks
{
    private const int Hidden = 4096, HeadDim = 192, ValueDim = 128, Group = 16, KvHeads = 4, QueryHeads = 64;
    private float[] _keys = null!, _values = null!, _queries = null!, _output = null!;
    private float[] _max = null!, _sum = null!, _acc = null!, _scratch = null!;
    private float[] _gateSource = null!;
    private float[] _x = null!, _weight = null!, _y = null!, _gate = null!, _up = null!, _heads = null!, _cos = null!, _sin = null!;
    private Rope _rope = null!;

    /// <summary>Keys the position sees: a sliding window (128) or a long global context.</summary>
    [Params(128, 4096)]
    public int Context { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(1);
        float[] Random(int n) => Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        _keys = Random(Context * KvHeads * HeadDim);
        _values = Random(Context * KvHeads * ValueDim);
        _queries = Random(Group * HeadDim);
        _output = new float[Group * ValueDim];
        _max = new float[Group];
        _sum = new float[Group];
        _acc = new float[Group * ValueDim];
        _scratch = new float[AttentionKernel.ScratchLength(Group)];
        _x = Random(Hidden);
        _weight = Random(Hidden);
        _y = new float[Hidden];
        _gateSource = Random(2048);
        _gate = new float[2048];
        _up = Random(2048);
        _heads = Random(QueryHeads * HeadDim);
        _rope = new Rope(64, 5_000_000);
        _cos = new float[32];
        _sin = new float[32];
    }

    /// <summary>One KV head's group of 16 query heads over the context (a global layer runs 4 of these per token).</summary>
    [Benchmark]
    public void AttentionGroup()
    {
        AttentionKernel.Begin(Group, ValueDim, default, _max, _sum, _acc);
        AttentionKernel.Accumulate(_queries, Group, HeadDim, _keys, KvHeads * HeadDim, _values, KvHeads * ValueDim, ValueDim,
            Context, 1f / MathF.Sqrt(HeadDim), _max, _sum, _acc, _scratch);
        AttentionKernel.Finish(Group, ValueDim, _sum, _acc, _output);
    }

    [Benchmark]
    public void RmsNorm() => VectorMath.RmsNorm(_x, _weight, 1e-5f, _y);

    /// <summary>SwiGLU over an expert's width, from fresh gate values each call (in place, repeated calls would drift the inputs).</summary>
    [Benchmark]
    public void SwiGlu()
    {
        _gateSource.CopyTo(_gate, 0);
        VectorMath.SwiGlu(_gate, _up);
    }

    [Benchmark]
    public void RopeAllQueryHeads()
    {
        _rope.Angles(Context, _cos, _sin);
        _rope.Apply(_heads, HeadDim, _cos, _sin);
    }
}
