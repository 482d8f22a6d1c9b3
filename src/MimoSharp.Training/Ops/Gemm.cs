using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using MimoSharp.Tensors.Threading;

namespace MimoSharp.Training.Ops;

/// <summary>
/// The fp32 matrix products of training. <see cref="Multiply"/>: C[m, n] (+)= Σ_k A[m, k] · B[n, k]
/// (A [M, K], B [N, K], "NT"), a linear layer's forward y = x·Wᵀ, in tiles of 4 rows × 2 columns of
/// dot products. <see cref="MultiplyStrided"/>: C (+)= A·B with A read through strides, the input
/// gradient dx = dy·W and the weight gradient dW += dyᵀ·x without transposing anything. Every
/// element of C is summed by one thread in a fixed order, so results do not depend on the thread count.
/// </summary>
public sealed class Gemm : IParallelJob
{
    private const int TileRows = 4;
    private const int ColumnBlock = 32;

    private float[] _a = [], _b = [], _c = [];
    private int _aOffset, _bOffset, _cOffset, _m, _n, _k;
    private bool _accumulate;
    private int _columnBlocks, _rowBlocks;

    /// <summary>Runs the product on <paramref name="pool"/> (null: on this thread).</summary>
    public void Multiply(float[] a, int aOffset, float[] b, int bOffset, float[] c, int cOffset, int m, int n, int k, bool accumulate, WorkerPool? pool)
    {
        if ((long)aOffset + (long)m * k > a.Length || (long)bOffset + (long)n * k > b.Length || (long)cOffset + (long)m * n > c.Length)
        {
            throw new ArgumentException($"Gemm [{m}x{k}]·[{n}x{k}]ᵀ does not fit its buffers ({a.Length}, {b.Length}, {c.Length})");
        }
        _a = a; _b = b; _c = c;
        _aOffset = aOffset; _bOffset = bOffset; _cOffset = cOffset;
        _m = m; _n = n; _k = k; _accumulate = accumulate;
        _columnBlocks = (n + ColumnBlock - 1) / ColumnBlock;
        _rowBlocks = (m + TileRows - 1) / TileRows;
        int items = _rowBlocks * _columnBlocks;
        if (pool is null)
        {
            Execute(0, items);
        }
        else
        {
            pool.Run(this, items, pool.GrainFor(items));
        }
        _a = _b = _c = [];
    }

    public void Execute(int start, int end)
    {
        for (int item = start; item < end; item++)
        {
            // Column-block-major: a block of B's rows (32 x K) stays in cache while A's rows stream past it.
            int row0 = item % _rowBlocks * TileRows;
            int col0 = item / _rowBlocks * ColumnBlock;
            Tile(row0, Math.Min(row0 + TileRows, _m), col0, Math.Min(col0 + ColumnBlock, _n));
        }
    }

    private void Tile(int row0, int row1, int col0, int col1)
    {
        int k = _k;
        if (row1 - row0 == TileRows)
        {
            int col = col0;
            for (; col + 2 <= col1; col += 2)
            {
                Block4x2(row0, col);
            }
            for (; col < col1; col++)
            {
                for (int r = row0; r < row1; r++)
                {
                    Store(r, col, Dot(_a.AsSpan(_aOffset + r * k, k), _b.AsSpan(_bOffset + col * k, k)));
                }
            }
            return;
        }
        for (int r = row0; r < row1; r++)
        {
            ReadOnlySpan<float> x = _a.AsSpan(_aOffset + r * k, k);
            for (int col = col0; col < col1; col++)
            {
                Store(r, col, Dot(x, _b.AsSpan(_bOffset + col * k, k)));
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Store(int row, int col, float value)
    {
        ref float target = ref _c[_cOffset + row * _n + col];
        target = _accumulate ? target + value : value;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Block4x2(int row0, int col)
    {
        int k = _k;
        ReadOnlySpan<float> a0 = _a.AsSpan(_aOffset + row0 * k, 4 * k);
        ReadOnlySpan<float> b0 = _b.AsSpan(_bOffset + col * k, 2 * k);
        ref float pa = ref MemoryMarshal.GetReference(a0);
        ref float pb = ref MemoryMarshal.GetReference(b0);
        nuint ks = (nuint)k;
        float s00 = 0, s01 = 0, s10 = 0, s11 = 0, s20 = 0, s21 = 0, s30 = 0, s31 = 0;
        int i = 0;
        if (Vector256.IsHardwareAccelerated && k >= 8)
        {
            Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default;
            Vector256<float> c20 = default, c21 = default, c30 = default, c31 = default;
            for (; i + 8 <= k; i += 8)
            {
                nuint o = (nuint)i;
                Vector256<float> w0 = Vector256.LoadUnsafe(ref pb, o);
                Vector256<float> w1 = Vector256.LoadUnsafe(ref pb, o + ks);
                Vector256<float> x = Vector256.LoadUnsafe(ref pa, o);
                c00 = Vector256.FusedMultiplyAdd(x, w0, c00);
                c01 = Vector256.FusedMultiplyAdd(x, w1, c01);
                x = Vector256.LoadUnsafe(ref pa, o + ks);
                c10 = Vector256.FusedMultiplyAdd(x, w0, c10);
                c11 = Vector256.FusedMultiplyAdd(x, w1, c11);
                x = Vector256.LoadUnsafe(ref pa, o + 2 * ks);
                c20 = Vector256.FusedMultiplyAdd(x, w0, c20);
                c21 = Vector256.FusedMultiplyAdd(x, w1, c21);
                x = Vector256.LoadUnsafe(ref pa, o + 3 * ks);
                c30 = Vector256.FusedMultiplyAdd(x, w0, c30);
                c31 = Vector256.FusedMultiplyAdd(x, w1, c31);
            }
            s00 = Vector256.Sum(c00); s01 = Vector256.Sum(c01);
            s10 = Vector256.Sum(c10); s11 = Vector256.Sum(c11);
            s20 = Vector256.Sum(c20); s21 = Vector256.Sum(c21);
            s30 = Vector256.Sum(c30); s31 = Vector256.Sum(c31);
        }
        for (; i < k; i++)
        {
            float w0 = b0[i], w1 = b0[k + i];
            s00 += a0[i] * w0; s01 += a0[i] * w1;
            s10 += a0[k + i] * w0; s11 += a0[k + i] * w1;
            s20 += a0[2 * k + i] * w0; s21 += a0[2 * k + i] * w1;
            s30 += a0[3 * k + i] * w0; s31 += a0[3 * k + i] * w1;
        }
        Store(row0, col, s00); Store(row0, col + 1, s01);
        Store(row0 + 1, col, s10); Store(row0 + 1, col + 1, s11);
        Store(row0 + 2, col, s20); Store(row0 + 2, col + 1, s21);
        Store(row0 + 3, col, s30); Store(row0 + 3, col + 1, s31);
    }

    // ---- C[m, n] (+)= Σ_k A(m, k) · B[k, n] with A(m, k) = a[m·strideM + k·strideK]: "NN" (strideM = K,
    // strideK = 1) for input gradients dx = dy·W, "TN" (strideM = 1, strideK = M) for weight gradients
    // dW += dyᵀ·x. Tiles of 4 rows × 16 columns: eight accumulators, four broadcasts and two loads per k.
    private const int WideColumns = 16;
    private int _strideM, _strideK, _wideBlocks, _kStart, _kEnd;
    private const int KChunkFloats = 64 * 1024;

    /// <summary>C [M, N] (+)= A·B with A strided as above and B [K, N] row-major.</summary>
    public void MultiplyStrided(float[] a, int aOffset, int strideM, int strideK, float[] b, int bOffset, float[] c, int cOffset,
        int m, int n, int k, bool accumulate, WorkerPool? pool)
    {
        long lastA = aOffset + (long)(m - 1) * strideM + (long)(k - 1) * strideK;
        if (m > 0 && k > 0 && (lastA >= a.Length || (long)bOffset + (long)n * k > b.Length) || (long)cOffset + (long)m * n > c.Length)
        {
            throw new ArgumentException($"Gemm A[{m}x{k}]·B[{k}x{n}] does not fit its buffers ({a.Length}, {b.Length}, {c.Length})");
        }
        _a = a; _b = b; _c = c;
        _aOffset = aOffset; _bOffset = bOffset; _cOffset = cOffset;
        _m = m; _n = n; _k = k; _accumulate = accumulate;
        _strideM = strideM; _strideK = strideK;
        _wideBlocks = (n + WideColumns - 1) / WideColumns;
        int items = (m + TileRows - 1) / TileRows * _wideBlocks;
        var job = _stridedJob ??= new StridedJob(this);
        // K in chunks whose rows of B (chunk x N floats) fit in L2, every chunk after the first accumulating:
        // B is then read from cache by every row tile instead of from memory once per row tile.
        int chunk = Math.Max(16, KChunkFloats / Math.Max(1, n));
        for (int k0 = 0; k0 < k || k0 == 0; k0 += chunk)
        {
            _kStart = k0;
            _kEnd = Math.Min(k, k0 + chunk);
            _accumulate = accumulate || k0 > 0;
            if (pool is null)
            {
                job.Execute(0, items);
            }
            else
            {
                pool.Run(job, items, pool.GrainFor(items));
            }
            if (k == 0)
            {
                break;
            }
        }
        _a = _b = _c = [];
    }

    private StridedJob? _stridedJob;

    private sealed class StridedJob(Gemm owner) : IParallelJob
    {
        public void Execute(int start, int end)
        {
            for (int item = start; item < end; item++)
            {
                owner.StridedTile(item / owner._wideBlocks * TileRows, item % owner._wideBlocks * WideColumns);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void StridedTile(int row0, int col0)
    {
        int rows = Math.Min(TileRows, _m - row0);
        int cols = Math.Min(WideColumns, _n - col0);
        int k = _k, n = _n, sm = _strideM, sk = _strideK;
        float[] a = _a, b = _b, c = _c;
        int aBase = _aOffset + row0 * sm;
        if (Vector256.IsHardwareAccelerated && rows == TileRows && cols == WideColumns)
        {
            ref float pb = ref MemoryMarshal.GetReference(b.AsSpan(_bOffset, k * n));
            Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default;
            Vector256<float> c20 = default, c21 = default, c30 = default, c31 = default;
            for (int kk = _kStart; kk < _kEnd; kk++)
            {
                nuint bo = (nuint)(kk * n + col0);
                Vector256<float> b0 = Vector256.LoadUnsafe(ref pb, bo);
                Vector256<float> b1 = Vector256.LoadUnsafe(ref pb, bo + 8);
                int ao = aBase + kk * sk;
                var x = Vector256.Create(a[ao]);
                c00 = Vector256.FusedMultiplyAdd(x, b0, c00);
                c01 = Vector256.FusedMultiplyAdd(x, b1, c01);
                x = Vector256.Create(a[ao + sm]);
                c10 = Vector256.FusedMultiplyAdd(x, b0, c10);
                c11 = Vector256.FusedMultiplyAdd(x, b1, c11);
                x = Vector256.Create(a[ao + 2 * sm]);
                c20 = Vector256.FusedMultiplyAdd(x, b0, c20);
                c21 = Vector256.FusedMultiplyAdd(x, b1, c21);
                x = Vector256.Create(a[ao + 3 * sm]);
                c30 = Vector256.FusedMultiplyAdd(x, b0, c30);
                c31 = Vector256.FusedMultiplyAdd(x, b1, c31);
            }
            StoreRow(row0, col0, c00, c01);
            StoreRow(row0 + 1, col0, c10, c11);
            StoreRow(row0 + 2, col0, c20, c21);
            StoreRow(row0 + 3, col0, c30, c31);
            return;
        }
        Span<float> sums = stackalloc float[TileRows * WideColumns];
        sums.Clear();
        for (int kk = _kStart; kk < _kEnd; kk++)
        {
            int bo = _bOffset + kk * n + col0;
            for (int r = 0; r < rows; r++)
            {
                float x = a[aBase + r * sm + kk * sk];
                Span<float> s = sums.Slice(r * WideColumns, cols);
                for (int j = 0; j < cols; j++)
                {
                    s[j] += x * b[bo + j];
                }
            }
        }
        for (int r = 0; r < rows; r++)
        {
            for (int j = 0; j < cols; j++)
            {
                Store(row0 + r, col0 + j, sums[r * WideColumns + j]);
            }
        }
    }

    private void StoreRow(int row, int col, Vector256<float> low, Vector256<float> high)
    {
        ref float target = ref MemoryMarshal.GetReference(_c.AsSpan(_cOffset + row * _n + col, WideColumns));
        if (_accumulate)
        {
            low += Vector256.LoadUnsafe(ref target);
            high += Vector256.LoadUnsafe(ref target, 8);
        }
        low.StoreUnsafe(ref target);
        high.StoreUnsafe(ref target, 8);
    }

    /// <summary>Σ x[i]·y[i], Vector256 lanes then a scalar tail.</summary>
    public static float Dot(ReadOnlySpan<float> x, ReadOnlySpan<float> y)
    {
        int n = x.Length;
        int i = 0;
        float sum = 0;
        if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            ref float px = ref MemoryMarshal.GetReference(x);
            ref float py = ref MemoryMarshal.GetReference(y);
            if (y.Length < n)
            {
                throw new ArgumentException("Dot: y is shorter than x");
            }
            Vector256<float> acc = default;
            for (; i + 8 <= n; i += 8)
            {
                acc = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref px, (nuint)i), Vector256.LoadUnsafe(ref py, (nuint)i), acc);
            }
            sum = Vector256.Sum(acc);
        }
        for (; i < n; i++)
        {
            sum += x[i] * y[i];
        }
        return sum;
    }

    /// <summary>y += alpha·x.</summary>
    public static void Axpy(float alpha, ReadOnlySpan<float> x, Span<float> y)
    {
        int n = x.Length;
        if (y.Length < n)
        {
            throw new ArgumentException("Axpy: y is shorter than x");
        }
        int i = 0;
        if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            ref float px = ref MemoryMarshal.GetReference(x);
            ref float py = ref MemoryMarshal.GetReference(y);
            var a = Vector256.Create(alpha);
            for (; i + 8 <= n; i += 8)
            {
                Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref px, (nuint)i), a, Vector256.LoadUnsafe(ref py, (nuint)i)).StoreUnsafe(ref py, (nuint)i);
            }
        }
        for (; i < n; i++)
        {
            y[i] += alpha * x[i];
        }
    }
}
