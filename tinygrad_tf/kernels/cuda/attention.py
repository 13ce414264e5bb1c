"""Causal attention softmax(q k^T * scale, causal) -> dropout -> @ v, without keeping
any T x T matrix between forward and backward.

Forward: S = q k^T (cuBLAS GEMMs), then one kernel per row turns S in place into the
dropped-out weights and writes the row's log-sum-exp; then S @ v. Only q, k, v and the
log-sum-exps (one number per row) are kept. q, k, v and the gradient are used where they
lie (gemm.py reads the model's (B, H, T, d) head views of (B, T, H*d) arrays in place), and
each output is laid out in memory like its input, so the model's transposes between
(B, T, H, d) and (B, H, T, d) cost no copies either way. Backward recomputes S = q k^T, and from the
log-sum-exps the weights P = exp(S * scale - lse) and the dropout mask (a hash of the
seed), then dV = Pd^T g, dPd = g v^T, dS = P * (dP - rowsum(dP * P)) * scale (one kernel),
dQ = dS k, dK = dS^T q. That is the flash-attention trade (one more GEMM for no saved
T x T weights) done with cuBLAS GEMMs and two row kernels. The mask is causal with the
top-left alignment of torch's is_causal: query i sees keys 0..i.

Causal products skip the upper-right quarter: the first half of the queries sees only the
first half of the keys, so each product is two GEMMs over 3/4 of the full one's work, or
one GEMM over its three blocks when they are equal (the halves below). On an H100 the seed
model's attention GEMMs took 3.96 ms a step against 4.4. The row kernels read only the
causal part of each row and write only the part that those products read.
"""
import numpy as np

from ...backend import cupy
from ...function import Function
from ...ops import attention
from . import gemm
from ._cuda import launch_rows, on_gpu, products_in, raw_kernel, scalar, stored_on_gpu
from .random import keep_scale, shift

_SOURCE = r"""
// rows = batch * Tq rows of n = Tk scores; row r is query (r % tq) and sees keys 0..(r % tq).
__device__ __forceinline__ int tg_last_key(long long row, int tq, int n) {
    int last = (int)(row % tq);
    return last < n ? last : n - 1;
}
// How much of the row later products read: queries below h only keys below kh (the halves).
__device__ __forceinline__ int tg_width(long long row, int tq, int n, int h, int kh) {
    return (int)(row % tq) < h ? kh : n;
}

extern "C" __global__ void attn_fwd(T* S, T* LSE, long long rows, int n, int tq, int h, int kh, T scale,
                                    T p, T keep, unsigned long long seed, const unsigned long long* shift,
                                    int dropout) {
    seed += *shift;  // random.py: nonzero in a replayed CUDA graph
    long long row = tg_warp_row();
    int lane = tg_lane();
    if (row >= rows) return;
    int last = tg_last_key(row, tq, n);
    T* s = S + row * n;
    T m = s[0] * scale;
    for (int j = lane; j <= last; j += 32) { T v = s[j] * scale; m = v > m ? v : m; }
    m = tg_warp_max(m);
    T sum = 0;
    for (int j = lane; j <= last; j += 32) sum += exp(s[j] * scale - m);
    sum = tg_warp_sum(sum);
    if (lane == 0) LSE[row] = m + log(sum);
    for (int j = lane, width = tg_width(row, tq, n, h, kh); j < width; j += 32) {
        T v = j <= last ? exp(s[j] * scale - m) / sum : (T)0;
        if (dropout) v = tg_uniform<T>(seed, (unsigned long long)(row * n + j)) >= p ? v * keep : (T)0;
        s[j] = v;
    }
}

// S (scores) -> P in place, and Pd = dropout(P) when dropout is on.
extern "C" __global__ void attn_recompute(T* S, T* PD, const T* LSE, long long rows, int n, int tq, int h, int kh,
                                          T scale, T p, T keep, unsigned long long seed,
                                          const unsigned long long* shift, int dropout) {
    seed += *shift;  // random.py: nonzero in a replayed CUDA graph
    long long row = tg_warp_row();
    int lane = tg_lane();
    if (row >= rows) return;
    int last = tg_last_key(row, tq, n);
    T* s = S + row * n;
    T lse = LSE[row];
    for (int j = lane, width = tg_width(row, tq, n, h, kh); j < width; j += 32) {
        T v = j <= last ? exp(s[j] * scale - lse) : (T)0;
        s[j] = v;
        if (dropout) PD[row * n + j] = tg_uniform<T>(seed, (unsigned long long)(row * n + j)) >= p ? v * keep : (T)0;
    }
}

// G (gradient of the dropped-out weights) -> gradient of the scores times scale, in place.
extern "C" __global__ void attn_bwd(T* G, const T* P, long long rows, int n, int tq, int h, int kh, T scale,
                                    T p, T keep, unsigned long long seed, const unsigned long long* shift,
                                    int dropout) {
    seed += *shift;  // random.py: nonzero in a replayed CUDA graph
    long long row = tg_warp_row();
    int lane = tg_lane();
    if (row >= rows) return;
    int last = tg_last_key(row, tq, n);
    T* g = G + row * n;
    const T* pr = P + row * n;
    T dot = 0;
    for (int j = lane; j <= last; j += 32) {
        T d = g[j];
        if (dropout) d = tg_uniform<T>(seed, (unsigned long long)(row * n + j)) >= p ? d * keep : (T)0;
        dot += d * pr[j];
    }
    dot = tg_warp_sum(dot);
    for (int j = lane, width = tg_width(row, tq, n, h, kh); j < width; j += 32) {
        T out = 0;
        if (j <= last) {
            T d = g[j];
            if (dropout) d = tg_uniform<T>(seed, (unsigned long long)(row * n + j)) >= p ? d * keep : (T)0;
            out = pr[j] * (d - dot) * scale;
        }
        g[j] = out;
    }
}
"""


def _dropout_args(p, seed, s):
    return (scalar(s.dtype, p), keep_scale(p, s.dtype) if p else scalar(s.dtype, 1), np.uint64(seed or 0),
            shift(s.device.id), np.int32(1 if p else 0))


_SPLIT_MIN_ROWS = 64  # below this a second GEMM launch costs more than the quarter it skips


def _halves(tq, tk):
    """(h, kh): queries [0, h) see only keys [0, kh); None when not worth splitting."""
    return (tq // 2, min(tq // 2, tk)) if tq >= _SPLIT_MIN_ROWS else None


def _read_width(tq, tk):
    """(h, kh) for the row kernels: the part of each row that the products read and write."""
    h, kh = _halves(tq, tk) or (0, tk)
    return np.int32(h), np.int32(kh)


def _causal_nt(a, b, out):
    """out = a b^T where only the causal (lower-left) part of out (Tq, Tk) is needed."""
    split = _halves(a.shape[-2], b.shape[-2])
    if split is None:
        return gemm.matmul(a, b, trans_b=True, out=out)
    h, kh = split
    if a.shape[-2] == b.shape[-2] == 2 * h:  # three equal blocks: one launch
        gemm.matmul_pieces([(a[..., :h, :], b[..., :h, :], out[..., :h, :h]),
                            (a[..., h:, :], b[..., :h, :], out[..., h:, :h]),
                            (a[..., h:, :], b[..., h:, :], out[..., h:, h:])], trans_b=True)
        return out
    gemm.matmul(a[..., :h, :], b[..., :kh, :], trans_b=True, out=out[..., :h, :kh])
    gemm.matmul(a[..., h:, :], b, trans_b=True, out=out[..., h:, :])
    return out


def _causal_nn(p, b, out):
    """out = p b for a causal p (Tq, Tk): its upper-right quarter is zero, so skipped."""
    split = _halves(p.shape[-2], p.shape[-1])
    if split is None:
        return gemm.matmul(p, b, out=out)
    h, kh = split
    gemm.matmul(p[..., :h, :kh], b[..., :kh, :], out=out[..., :h, :])
    gemm.matmul(p[..., h:, :], b, out=out[..., h:, :])
    return out


def _causal_tn(p, b, out):
    """out = p^T b for a causal p (Tq, Tk), likewise."""
    split = _halves(p.shape[-2], p.shape[-1])
    if split is None:
        return gemm.matmul(p, b, trans_a=True, out=out)
    h, kh = split
    gemm.matmul(p[..., :kh], b, trans_a=True, out=out[..., :kh, :])
    gemm.matmul(p[..., h:, kh:], b[..., h:, :], trans_a=True, out=out[..., kh:, :])
    return out


def _scores(q, k):
    """q k^T (its causal part) into a new (batch, Tq, Tk) array, and that array with q's batch dims."""
    s = cupy.empty(q.shape[:-1] + k.shape[-2:-1], q.dtype)
    _causal_nt(q, k, s)
    return s.reshape(-1, *s.shape[-2:]), s


def forward(q, k, v, scale, p=0.0, seed=0):
    """-> (out, saved); out has q's batch dims and shape (..., Tq, Dv)."""
    q, k, v = gemm.operand(q), gemm.operand(k), gemm.operand(v)  # copied only if their rows are strided
    tq, tk = q.shape[-2], k.shape[-2]
    s, weights = _scores(q, k)
    rows = s.shape[0] * tq
    lse = cupy.empty(s.shape[:2], s.dtype)
    launch_rows(raw_kernel(_SOURCE, "attn_fwd", s.dtype), rows,
                (s, lse, np.int64(rows), np.int32(tk), np.int32(tq), *_read_width(tq, tk), scalar(s.dtype, scale),
                 *_dropout_args(p, seed, s)))
    out = _causal_nn(weights, v, cupy.empty_like(q, shape=q.shape[:-1] + v.shape[-1:]))  # in q's memory order
    return out, (q, k, v, lse, scale, p, seed)


def backward(g, saved, needs=(True, True, True)):
    """-> (gq, gk, gv) shaped as q, k, v (None where not needed)."""
    q, k, v, lse, scale, p, seed = saved
    g = gemm.operand(g)
    tq, tk = q.shape[-2], k.shape[-2]
    s, weights = _scores(q, k)
    rows = s.shape[0] * tq
    pd = cupy.empty_like(weights) if p else weights
    args = (np.int64(rows), np.int32(tk), np.int32(tq), *_read_width(tq, tk), scalar(s.dtype, scale),
            *_dropout_args(p, seed, s))
    launch_rows(raw_kernel(_SOURCE, "attn_recompute", s.dtype), rows, (s, pd, lse) + args)
    gv = _causal_tn(pd, g, cupy.empty_like(v)) if needs[2] else None
    del pd
    ds = _causal_nt(g, v, cupy.empty_like(weights))
    launch_rows(raw_kernel(_SOURCE, "attn_bwd", s.dtype), rows, (ds, s) + args)
    gq = _causal_nn(ds, k, cupy.empty_like(q)) if needs[0] else None
    gk = _causal_tn(ds, q, cupy.empty_like(k)) if needs[1] else None
    return gq, gk, gv


class Attention(Function):
    """Causal attention without a bias: no T x T mask built, no T x T weights kept.

    float16/bfloat16 q, k, v (autocast) go up to float32 for the row kernels, and every product
    rounds its inputs to the 16-bit dtype on tensor cores and accumulates in float32
    (products_in): the precision of a flash-attention kernel, whose scores and softmax are float32
    and whose products take 16-bit operands. The 16-bit q, k, v are what backward keeps."""
    name, replaces = "attention", attention.Attention
    takes_16_bit = True  # float16/bfloat16, computed in float32 (check.py's 16-bit rows)

    @staticmethod
    def supports(q, k, v, bias, scale, dropout_p, seed, causal):
        """Causal, no bias, the same batch dims everywhere (no broadcasting) and one float type."""
        return (causal and bias is None and stored_on_gpu(q, k, v) and q.ndim >= 3 and k.shape[-2] > 0
                and q.shape[:-2] == k.shape[:-2] == v.shape[:-2] and q.dtype == k.dtype == v.dtype)

    def forward(self, q, k, v, bias, scale, dropout_p, seed, causal):
        if on_gpu(q):
            out, self.saved = forward(q, k, v, scale, dropout_p, seed)
            return out
        with products_in(q.dtype):
            out, saved = forward(*_widened(q, k, v), scale, dropout_p, seed)
        self.saved = (q, k, v) + saved[3:]
        return out.astype(q.dtype)

    def backward(self, g):
        q, k, v, *rest = self.saved
        if on_gpu(q):
            return backward(g, self.saved, self.needs_grad[:3]) + (None,)
        with products_in(q.dtype):
            grads = backward(g.astype(np.float32), (*_widened(q, k, v), *rest), self.needs_grad[:3])
        return tuple(None if x is None else x.astype(q.dtype) for x in grads) + (None,)


def _widened(*arrays):
    """16-bit arrays as float32, each laid out in memory as it was (so head views stay views' layout)."""
    return tuple(a.astype(np.float32, order="K") for a in arrays)
