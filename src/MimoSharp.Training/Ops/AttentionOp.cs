using MimoSharp.Models.Configuration;
using MimoSharp.Models.Layers;
using MimoSharp.Tensors.Threading;

namespace MimoSharp.Training.Ops;

/// <summary>
/// Causal attention over a batch of B sequences of T positions (0..T−1), global or sliding-window,
/// GQA with contiguous groups, q/k head dim ≠ v head dim, scale 1/√headDim, and an optional sink
/// logit per query head that joins the softmax denominator only (spec §2.3.6). The forward saves the
/// probabilities P [B, qHeads, T, T] and the sink's share [B, qHeads, T]; the backward is
/// dP_j = do·v_j, D = Σ P_j dP_j, ds_j = P_j(dP_j − D), dσ = −P_sink·D.
/// Inputs are q [B·T, qHeads·headDim], k [B·T, kvHeads·headDim], v [B·T, kvHeads·vDim] after RoPE
/// and the value scale; output o [B·T, qHeads·vDim].
/// </summary>
public sealed class AttentionOp
{
    private readonly AttentionGeometry _g;
    private readonly int _batch, _seq;
    private readonly float _scale;
    private readonly float[] _cos, _sin; // [T, rotary/2]
    private readonly ForwardJob _forward;
    private readonly BackwardJob _backward;

    public AttentionOp(AttentionGeometry geometry, int batch, int seq)
    {
        _g = geometry;
        _batch = batch;
        _seq = seq;
        _scale = 1f / MathF.Sqrt(geometry.HeadDim);
        int half = geometry.RotaryDims / 2;
        _cos = new float[seq * half];
        _sin = new float[seq * half];
        var rope = new Rope(geometry.RotaryDims, geometry.RopeTheta);
        for (int t = 0; t < seq; t++)
        {
            rope.Angles(t, _cos.AsSpan(t * half, half), _sin.AsSpan(t * half, half));
        }
        _forward = new ForwardJob(this);
        _backward = new BackwardJob(this);
    }

    public AttentionGeometry Geometry => _g;

    /// <summary>Floats of the saved probabilities.</summary>
    public static long ProbabilityLength(AttentionGeometry g, int batch, int seq) => (long)batch * g.QueryHeads * seq * seq;

    /// <summary>Rotates each head of q [rows, qWidth] and k [rows, kWidth] at its row's position (t = row mod T); <paramref name="inverse"/> rotates back (the backward).</summary>
    public void Rope(Span<float> q, Span<float> k, bool inverse)
    {
        int half = _g.RotaryDims / 2;
        int rows = _batch * _seq;
        for (int r = 0; r < rows; r++)
        {
            int t = r % _seq;
            ReadOnlySpan<float> cos = _cos.AsSpan(t * half, half);
            ReadOnlySpan<float> sin = _sin.AsSpan(t * half, half);
            Rotate(q.Slice(r * _g.QueryWidth, _g.QueryWidth), cos, sin, inverse);
            Rotate(k.Slice(r * _g.KeyWidth, _g.KeyWidth), cos, sin, inverse);
        }
    }

    private void Rotate(Span<float> heads, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, bool inverse)
    {
        int half = _g.RotaryDims / 2;
        float sign = inverse ? -1f : 1f;
        for (int offset = 0; offset < heads.Length; offset += _g.HeadDim)
        {
            Span<float> x = heads.Slice(offset, _g.RotaryDims);
            for (int i = 0; i < half; i++)
            {
                float a = x[i], b = x[i + half], s = sign * sin[i];
                x[i] = a * cos[i] - b * s;
                x[i + half] = b * cos[i] + a * s;
            }
        }
    }

    /// <summary>First key a query at position t sees.</summary>
    private int FirstKey(int t) => _g.IsSliding ? Math.Max(0, t - _g.WindowKeys + 1) : 0;

    public void Forward(float[] q, float[] k, float[] v, float[]? sinks, int sinkOffset, float[] o, float[] p, float[] pSink, WorkerPool pool)
    {
        _forward.Set(q, k, v, sinks, sinkOffset, o, p, pSink);
        int items = _batch * _g.QueryHeads;
        pool.Run(_forward, items, 1);
        _forward.Clear();
    }

    /// <summary>dq, dk, dv written; dSinkPartial [B, qHeads] written (the caller sums it over B into the sink gradient).</summary>
    public void Backward(float[] dO, float[] q, float[] k, float[] v, float[] p, float[] pSink, float[] dq, float[] dk, float[] dv, float[] dSinkPartial, WorkerPool pool)
    {
        _backward.Set(dO, q, k, v, p, pSink, dq, dk, dv, dSinkPartial);
        pool.Run(_backward, _batch * _g.KeyValueHeads, 1);
        _backward.Clear();
    }

    private sealed class ForwardJob(AttentionOp op) : IParallelJob
    {
        private float[] _q = [], _k = [], _v = [], _o = [], _p = [], _pSink = [];
        private float[]? _sinks;
        private int _sinkOffset;

        public void Set(float[] q, float[] k, float[] v, float[]? sinks, int sinkOffset, float[] o, float[] p, float[] pSink)
        {
            (_q, _k, _v, _sinks, _sinkOffset, _o, _p, _pSink) = (q, k, v, sinks, sinkOffset, o, p, pSink);
        }

        public void Clear() => (_q, _k, _v, _o, _p, _pSink, _sinks) = ([], [], [], [], [], [], null);

        public void Execute(int start, int end)
        {
            AttentionGeometry g = op._g;
            int T = op._seq, dh = g.HeadDim, dv = g.ValueHeadDim;
            for (int item = start; item < end; item++)
            {
                int b = item / g.QueryHeads, h = item % g.QueryHeads, kv = h / g.GroupSize;
                bool sink = g.HasSinkBias && _sinks is not null;
                float sigma = sink ? _sinks![_sinkOffset + h] : 0f;
                for (int t = 0; t < T; t++)
                {
                    int row = b * T + t;
                    ReadOnlySpan<float> qh = _q.AsSpan(row * g.QueryWidth + h * dh, dh);
                    Span<float> prob = _p.AsSpan(((b * g.QueryHeads + h) * T + t) * T, T);
                    prob.Clear();
                    int first = op.FirstKey(t);
                    float max = sink ? sigma : float.NegativeInfinity;
                    for (int j = first; j <= t; j++)
                    {
                        float s = Gemm.Dot(qh, _k.AsSpan((b * T + j) * g.KeyWidth + kv * dh, dh)) * op._scale;
                        prob[j] = s;
                        max = MathF.Max(max, s);
                    }
                    float sum = 0;
                    for (int j = first; j <= t; j++)
                    {
                        prob[j] = MathF.Exp(prob[j] - max);
                        sum += prob[j];
                    }
                    float sinkMass = sink ? MathF.Exp(sigma - max) : 0f;
                    float inv = 1f / (sum + sinkMass);
                    Span<float> oh = _o.AsSpan(row * g.OutputWidth + h * dv, dv);
                    oh.Clear();
                    for (int j = first; j <= t; j++)
                    {
                        prob[j] *= inv;
                        Gemm.Axpy(prob[j], _v.AsSpan((b * T + j) * g.ValueWidth + kv * dv, dv), oh);
                    }
                    _pSink[(b * g.QueryHeads + h) * T + t] = sinkMass * inv;
                }
            }
        }
    }

    private sealed class BackwardJob(AttentionOp op) : IParallelJob
    {
        private float[] _dO = [], _q = [], _k = [], _v = [], _p = [], _pSink = [], _dq = [], _dk = [], _dv = [], _dSink = [];

        public void Set(float[] dO, float[] q, float[] k, float[] v, float[] p, float[] pSink, float[] dq, float[] dk, float[] dv, float[] dSink)
        {
            (_dO, _q, _k, _v, _p, _pSink, _dq, _dk, _dv, _dSink) = (dO, q, k, v, p, pSink, dq, dk, dv, dSink);
        }

        public void Clear() => (_dO, _q, _k, _v, _p, _pSink, _dq, _dk, _dv, _dSink) = ([], [], [], [], [], [], [], [], [], []);

        /// <summary>One item = one (sequence, KV head): it alone writes that head's dk/dv and its query heads' dq.</summary>
        public void Execute(int start, int end)
        {
            AttentionGeometry g = op._g;
            int T = op._seq, dh = g.HeadDim, dvDim = g.ValueHeadDim;
            Span<float> dP = stackalloc float[T];
            for (int item = start; item < end; item++)
            {
                int b = item / g.KeyValueHeads, kv = item % g.KeyValueHeads;
                for (int t = 0; t < T; t++)
                {
                    int row = b * T + t;
                    _dk.AsSpan(row * g.KeyWidth + kv * dh, dh).Clear();
                    _dv.AsSpan(row * g.ValueWidth + kv * dvDim, dvDim).Clear();
                }
                for (int h = kv * g.GroupSize; h < (kv + 1) * g.GroupSize; h++)
                {
                    float dSink = 0;
                    for (int t = 0; t < T; t++)
                    {
                        int row = b * T + t;
                        ReadOnlySpan<float> doh = _dO.AsSpan(row * g.OutputWidth + h * dvDim, dvDim);
                        ReadOnlySpan<float> qh = _q.AsSpan(row * g.QueryWidth + h * dh, dh);
                        Span<float> dqh = _dq.AsSpan(row * g.QueryWidth + h * dh, dh);
                        dqh.Clear();
                        ReadOnlySpan<float> prob = _p.AsSpan(((b * g.QueryHeads + h) * T + t) * T, T);
                        int first = op.FirstKey(t);
                        float d = 0;
                        for (int j = first; j <= t; j++)
                        {
                            dP[j] = Gemm.Dot(doh, _v.AsSpan((b * T + j) * g.ValueWidth + kv * dvDim, dvDim));
                            d += prob[j] * dP[j];
                        }
                        for (int j = first; j <= t; j++)
                        {
                            int keyRow = b * T + j;
                            float ds = prob[j] * (dP[j] - d) * op._scale;
                            Gemm.Axpy(ds, _k.AsSpan(keyRow * g.KeyWidth + kv * dh, dh), dqh);
                            Gemm.Axpy(ds, qh, _dk.AsSpan(keyRow * g.KeyWidth + kv * dh, dh));
                            Gemm.Axpy(prob[j], doh, _dv.AsSpan(keyRow * g.ValueWidth + kv * dvDim, dvDim));
                        }
                        dSink -= _pSink[(b * g.QueryHeads + h) * T + t] * d;
                    }
                    _dSink[b * g.QueryHeads + h] = dSink;
                }
            }
        }
    }
}
