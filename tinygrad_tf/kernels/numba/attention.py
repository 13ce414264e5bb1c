"""Attention on the CPU: one Numba loop over the (batch, head) matrices, each iteration doing
that matrix's whole attention: its GEMMs (blas.gemm, a BLAS call through SciPy) and the
row passes between them, so that its T x T scores stay in the thread's cache from the GEMM
that writes them to the GEMM that reads them.

Forward, per matrix: S = q k^T (BLAS, straight into the saved weights), then one pass per row
scales, masks (explicit, causal or both), takes the max-shifted softmax in place and draws the
dropout mask into a scratch; then out = Pd v (BLAS). A causal row i reads and exps keys 0..i
only. Backward, per matrix: dPd = g v^T (BLAS), one pass per row redraws the dropout mask from
the seed and makes dS = P * (dP - rowsum(dP * P)) in place (times the scale, unless dS itself,
the mask's gradient, is asked for), then dV = Pd^T g, dQ = dS k, dK = dS^T q (BLAS). Between
forward and backward only the weights P are kept, one T x T array (the textbook op keeps three
with dropout), and q, k, v as given (views, read in place: _as_4d).

The loop over matrices splits over numba's threads (split=True, one_blas_thread=True: BLAS on
one thread meanwhile, _numba.py) from PARALLEL_FROM score elements: each thread multiplies its
own matrices, as PyTorch's batched products run, and no second pool waits in between. The
matrices are independent, so the bits do not change. 16 Xeon cores, the seed preset's
attention (64 x 6 matrices of 256 x 256 scores): a q k^T product over all matrices took 17.4
ms as NumPy's batched matmul (one BLAS call per matrix, each split over BLAS's threads) and
4.0 ms split this way (benchmarks/results/cpu16-gemm-probe.json); the whole step, with
dropout.py and add.py, 5.6 s -> 1.7 s (benchmarks/results/cpu16-onepool-log.txt). Without
SciPy, numba has no BLAS to call: the NumPy twin (kernels/cpu/attention.py) runs instead.
On one thread (2-core machine) the seed preset's forward + backward took 288 ms, 436 ms as
chunks of NumPy's batched matmuls.

The dropout mask is ops/random.py's counter-based hash of the element's index in the C-ordered
scores, drawn by random.py's kept(): the same bits, so the same mask as the textbook op's.

A query that sees no key (a row of -inf) gets weights 0, so output 0 and no gradient, as the
textbook op's safe softmax; NaNs spread as they do there. The row sums (of the exponentials,
and dP . P in the backward, its products in float64) run in float64 in helpers whose
additions LLVM may reorder to vectorize them (_numba.py, reorder_sums); the backward's
dS = P * (dP - rowsum) runs in the weights' dtype, as the textbook op's. The elementwise
loops of a causal row run over whole vectors past its last key, or the whole row (comments
below), so that rows of every length stay in vector code. Forward / backward row passes,
3072 causal rows of 64 float32 (one cpu-preset call): 300 / 170 us as four running sums
taken in order and loops to the last key, 260 / 90 us now.
"""
import math
from decimal import Decimal

import numpy as np

from ...function import Function
from ...ops import attention
from . import _numba
from ._numba import kernel, usable
from .blas import gemm
from .random import ONE, STEP, U64, dropout_bits, kept


def _exp(dtype, ln2_hi, degree, min_k):
    """Constants for exp(x), x <= 0, in `dtype` (the forward's loop), computed without a call or
    a branch so that the loop is vectorized (libm's exp, a call per element, was 3-4x slower):
    x = k ln2 + f with |f| <= ln2 / 2 (ln2 in two parts, the first with bits to spare so that
    k * ln2_hi is exact), exp(f) by its Taylor polynomial to `degree` (the first term left out
    is under 1/20 ulp), times 2^k made from its bits. Within 1 ulp of the correctly rounded exp
    (measured on 10^5 points per dtype; the tests hold the weights to a softmax taken in more
    precision). Below (min_k - 1/2) ln2, where 2^k would be subnormal, exp(x) is taken as 0
    (off by < 2^min_k, in weights <= 1)."""
    ln2 = Decimal("0.693147180559945309417232121458176568")
    taylor = np.array([1 / math.factorial(i) for i in range(degree, -1, -1)], dtype)
    return (*(dtype.type(c) for c in (1 / math.log(2), 0.5, min_k, ln2_hi, float(ln2 - Decimal(ln2_hi)),
                                       (min_k - 0.5) * math.log(2))), taylor)


_LOG2E_32, _HALF_32, _MIN_K_32, _LN2_HI_32, _LN2_LO_32, _CUT_32, _TAYLOR_32 = _exp(np.dtype(np.float32),
                                                                                   0.693145751953125, 7, -126)
_LOG2E_64, _, _MIN_K_64, _LN2_HI_64, _LN2_LO_64, _CUT_64, _TAYLOR_64 = _exp(np.dtype(np.float64),
                                                                           0.6931471803691238, 13, -1022)


@kernel(reorder_sums=True)
def _sum(a, stop):
    """a[:stop] summed in float64."""
    s = 0.0
    for j in range(stop):
        s += a[j]
    return s


@kernel(reorder_sums=True)
def _dot(a, b, stop):
    """(a[:stop] * b[:stop]) summed in float64 (the products in float64: exact for float32)."""
    s = 0.0
    for j in range(stop):
        s += np.float64(a[j]) * b[j]
    return s


@kernel()
def exp_shifted(a, top, stop, single, zero):
    """a[j] <- exp(a[j] - top) for j < stop, _exp's way, in a's dtype (`single`: whether that
    is float32; zero: 0 of it): vectorized, no call per element. In place: with a second array
    to write, LLVM checks at run time that the two do not overlap, and runs scalar code where
    they do (cross_entropy.py copies its row first)."""
    if single:  # in float32
        for j in range(stop):
            x = a[j] - top
            k = np.floor(x * _LOG2E_32 + _HALF_32)
            k = k if k > _MIN_K_32 else _MIN_K_32  # also for x NaN or -inf: the last select decides
            f = (x - k * _LN2_HI_32) - k * _LN2_LO_32
            e = _TAYLOR_32[0]
            for i in range(1, _TAYLOR_32.size):
                e = e * f + _TAYLOR_32[i]
            a[j] = zero if x < _CUT_32 else e * np.int32((np.int32(k) + 127) << 23).view(np.float32)
    else:  # in float64
        for j in range(stop):
            x = a[j] - top
            k = np.floor(x * _LOG2E_64 + 0.5)
            k = k if k > _MIN_K_64 else _MIN_K_64
            f = (x - k * _LN2_HI_64) - k * _LN2_LO_64
            e = _TAYLOR_64[0]
            for i in range(1, _TAYLOR_64.size):
                e = e * f + _TAYLOR_64[i]
            a[j] = zero if x < _CUT_64 else e * np.int64((np.int64(k) + 1023) << 52).view(np.float64)


@kernel()
def _forward_rows(s, first, tq, causal, scale, lowest, single, bias, dropout, seed, shift, threshold, keep, dropped):
    """Scores s (rows, n) -> softmax weights, in place; with dropout, dropped <- weights * mask.

    Row r is row first + r of all the scores: query (first + r) % tq, which sees keys 0..that
    when causal and adds bias[(first + r) % len(bias)] (bias has 0 rows when there is none).
    lowest is -inf of s's dtype and `single` whether that is float32; keep 1 / (1 - p) in it."""
    rows, n = s.shape
    n_bias = bias.shape[0]
    zero = keep * 0
    for r in range(rows):
        at = first + r
        row = s[r]
        last = min(at % tq + 1, n) if causal else n  # keys last.. are masked: weight 0
        # The elementwise loops run to `stop`, `last` rounded up to whole AVX2 vectors: keys past
        # `last` get values that are never read and are overwritten below, and a short causal row
        # is not left to the loops' scalar remainders (3072 rows of 64 keys: ~30% faster).
        stop = min(n, -(-last // (32 // s.itemsize)) * (32 // s.itemsize))
        if n_bias:
            b = bias[at % n_bias]
            for j in range(stop):
                row[j] = row[j] * scale + b[j]
        else:
            for j in range(stop):
                row[j] = row[j] * scale
        last4 = last - last % 4
        t0 = t1 = t2 = t3 = lowest
        for j in range(0, last4, 4):
            t0 = row[j] if row[j] > t0 else t0
            t1 = row[j + 1] if row[j + 1] > t1 else t1
            t2 = row[j + 2] if row[j + 2] > t2 else t2
            t3 = row[j + 3] if row[j + 3] > t3 else t3
        for j in range(last4, last):
            t0 = row[j] if row[j] > t0 else t0
        t0 = t1 if t1 > t0 else t0
        t2 = t3 if t3 > t2 else t2
        top = t2 if t2 > t0 else t0  # the max (a NaN is passed over here, and spreads through exp)
        if top == lowest:  # every key masked (or NaN): the safe softmax's weights 0 (NaN with a NaN)
            blind = zero
            for j in range(last):
                if row[j] != row[j]:
                    blind = row[j]
            for j in range(n):
                row[j] = blind
        else:
            exp_shifted(row, top, stop, single, zero)
            inverse = 1.0 / _sum(row, last)
            for j in range(stop):
                row[j] = row[j] * inverse
            for j in range(last, n):
                row[j] = inverse * 0  # exp(-inf) / sum: 0, or NaN where the sum is
        if dropout:
            out = dropped[r]
            count = seed + (U64(at) * U64(n) + ONE) * STEP  # element at * n + j's counter, j = 0 first
            for j in range(last):
                out[j] = row[j] * (keep if kept(count, shift, threshold) else zero)
                count += STEP
            for j in range(last, n):
                out[j] = row[j] * 0


@kernel()
def _backward_rows(w, gd, first, tq, causal, factor, dropout, seed, shift, threshold, keep, dropped):
    """gd = dL/d(dropped weights) (rows, n) -> dL/d scores * factor, in place, from the weights w;
    with dropout, dropped <- w * mask (the forward's, redrawn from the seed). Rows as _forward_rows."""
    rows, n = w.shape
    zero = keep * 0
    for r in range(rows):
        at = first + r
        p, gr = w[r], gd[r]
        last = min(at % tq + 1, n) if causal else n  # weights last.. are 0, and so their gradient
        stop = n
        if dropout:
            out = dropped[r]
            count = seed + (U64(at) * U64(n) + ONE) * STEP
            for j in range(last):
                m = keep if kept(count, shift, threshold) else zero
                count += STEP
                gr[j] = gr[j] * m
                out[j] = p[j] * m
            for j in range(last, n):
                out[j] = p[j] * 0
        dot = w.dtype.type(_dot(gr, p, last))  # then in the weights' dtype, as the textbook op
        # The softmax backward: P * (dP - rowsum(dP * P)), over the whole row: the weights past
        # `last` are 0 (or NaN with the row's sum, and then so is the dot), so this is 0 there, or
        # NaN where the textbook's 0 * (dP - rowsum) is; one trip count for every row is faster
        # than half the work in rows of varying length (3072 causal rows of 64: 170 -> 90 us).
        for j in range(n):
            gr[j] = p[j] * (gr[j] - dot) * factor


@kernel(split=True, one_blas_thread=True)
def _forward(q, k, v, weights, out, keep_weights, tq, causal, scale, lowest, single, bias, dropout, seed, shift,
             threshold, keep):
    """Per (i, j) matrix of the 4-D q, k, v (each matrix's rows contiguous): S = q k^T
    (into weights[i, j], or a scratch when the weights are not kept), the row pass, out[i, j] = Pd v."""
    per_i = q.shape[1]
    for m in _numba.prange(q.shape[0] * per_i):
        i, j = m // per_i, m % per_i
        w = weights[i, j] if keep_weights else np.empty((q.shape[2], k.shape[2]), q.dtype)
        gemm(q[i, j], k[i, j], w, False, True)
        dropped = np.empty_like(w) if dropout else w
        _forward_rows(w, m * tq, tq, causal, scale, lowest, single, bias, dropout, seed, shift, threshold, keep,
                      dropped)
        gemm(dropped, v[i, j], out[i, j], False, False)


@kernel(split=True, one_blas_thread=True)
def _backward(q, k, v, weights, g, gq, gk, gv, gscores, needs, tq, causal, factor, dropout, seed, shift, threshold,
              keep):
    """Per (i, j) matrix: dPd = g v^T (into gscores[i, j] when dS is asked for, else a scratch),
    the row pass makes dS of it, then dV = Pd^T g, dQ = dS k, dK = dS^T q, those in `needs`."""
    per_i = q.shape[1]
    for m in _numba.prange(q.shape[0] * per_i):
        i, j = m // per_i, m % per_i
        w, gm = weights[i, j], g[i, j]
        gs = gscores[i, j] if needs[3] else np.empty_like(w)
        gemm(gm, v[i, j], gs, False, True)
        dropped = np.empty_like(w) if dropout else w
        _backward_rows(w, gs, m * tq, tq, causal, factor, dropout, seed, shift, threshold, keep, dropped)
        if needs[2]:
            gemm(dropped, gm, gv[i, j], True, False)
        if needs[0]:
            gemm(gs, k[i, j], gq[i, j], False, False)
        if needs[1]:
            gemm(gs, q[i, j], gk[i, j], True, False)


def _broadcast(a, b):
    """np.broadcast_shapes(a, b), without its ~2.5 us where the shapes are equal (the GPT's calls:
    per call Python costs a few times more between a step's GEMMs than in a loop of its own)."""
    return a if a == b else np.broadcast_shapes(a, b)


def _as_4d(a, batch):
    """a broadcast to batch dims `batch`, seen as (matrices' rows of batch, last batch dim, ...):
    two batch dims, whose (i, j) in C order is the matrix's place in `batch` (a view where
    NumPy can make one). The kernels' GEMMs (blas.py) read each matrix in place when its rows
    are contiguous, as in the GPT's head-split views of (B, T, C) arrays; otherwise (a
    transposed matrix, rows broadcast) it is copied once here. Read-only either way (the kernels
    only read it): one compiled kernel for views, broadcasts and copies alike."""
    if a.shape[:-2] != batch:
        a = np.broadcast_to(a, batch + a.shape[-2:])
    lead = (math.prod(batch[:-1]), batch[-1]) if batch else (1, 1)
    a = a.reshape(lead + a.shape[-2:])  # (a new array object: its flags are not the caller's)
    rows, columns = a.shape[-2:]
    in_place = a.strides[-1] == a.itemsize and (rows <= 1 or a.strides[-2] >= max(columns, 1) * a.itemsize)
    a = a if in_place else np.ascontiguousarray(a)
    a.flags.writeable = False
    return a


def _heads_inside(shape, dtype):
    """An empty (i, j, rows, columns) array laid out as (i, rows, j, columns): for the GPT, the
    output (and the gradients of q, k and v) in (B, T, H, D) order, so that merging the heads
    back into (B, T, C) is a view, not a copy (PyTorch's CPU attention lays out its output
    this way too). A cpu-preset layer's attention, the head split and merge included, forward
    and backward (2-core machine, best of 300): 1.67 -> 1.41 ms on two threads, 2.56 -> 2.30 on
    one, against q, k, v copied in and the output copied out."""
    return np.empty((shape[0], shape[2], shape[1], shape[3]), dtype).transpose(0, 2, 1, 3)


class Attention(Function):
    name, replaces = "attention", attention.Attention
    reads = attention.Attention.reads

    @staticmethod
    def supports(q, k, v, bias, scale, dropout_p, seed, causal):
        """CPU float32/float64 arrays of one dtype, at least 2-D; a float mask of that dtype;
        neither v nor the mask broadcasting the scores to more dims; numba here and switched on."""
        arrays = (q, k, v) if bias is None else (q, k, v, bias)
        if not all(isinstance(a, np.ndarray) and a.dtype == q.dtype for a in arrays) \
                or q.dtype not in (np.float32, np.float64) or min(q.ndim, k.ndim, v.ndim) < 2 \
                or q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:  # (the textbook op then says what)
            return False
        try:
            batch = _broadcast(q.shape[:-2], k.shape[:-2])
            scores = batch + (q.shape[-2], k.shape[-2])
            if _broadcast(batch, v.shape[:-2]) != batch or \
                    bias is not None and np.broadcast_shapes(bias.shape, scores) != scores:
                return False
        except ValueError:
            return False
        return usable() and _numba.has_blas()

    def forward(self, q, k, v, bias, scale, dropout_p, seed, causal):
        dtype, needs = q.dtype, self.needs_grad or (True,) * 4  # needs_grad not set: keep all
        batch = _broadcast(q.shape[:-2], k.shape[:-2])
        tq, n = q.shape[-2], k.shape[-2]
        q4, k4, v4 = (_as_4d(a, batch) for a in (q, k, v))
        keep_weights = any(needs)
        weights = np.empty(q4.shape[:2] + (tq, n) if keep_weights else (0, 0, 0, 0), dtype)  # kept for backward
        rows = self._bias_rows(bias, batch + (tq, n), dtype)
        p = bool(dropout_p)
        shift, threshold = dropout_bits(dtype, dropout_p) if p else (U64(0), U64(0))
        keep, seed = dtype.type(1 / (1 - dropout_p) if p else 1), U64(seed if p else 0)
        out = _heads_inside(q4.shape[:2] + (tq, v.shape[-1]), dtype)
        _forward(q4, k4, v4, weights, out, keep_weights, max(tq, 1), bool(causal), dtype.type(scale),
                 dtype.type(-np.inf), dtype == np.float32, rows, p, seed, shift, threshold, keep,
                 work=math.prod(batch) * tq * n)
        if keep_weights:
            self.q, self.k, self.v, self.weights, self.batch = q4, k4, v4, weights, batch
            self.scale, self.causal, self.dropout = scale, bool(causal), (p, seed, shift, threshold, keep)
        return out.reshape(batch + out.shape[2:])

    @staticmethod
    def _bias_rows(bias, shape, dtype):
        """The mask as (rows, n), read-only: one (tq, n) block when it is the same for every
        matrix, else every row; (0, n) without a mask."""
        if bias is None:
            rows = np.empty((0, shape[-1]), dtype)
        else:
            full = np.broadcast_to(bias, shape)
            if all(s == 1 for s in bias.shape[:-2]):
                rows = np.ascontiguousarray(full[(0,) * (len(shape) - 2)])
            else:
                rows = np.ascontiguousarray(full).reshape(math.prod(shape[:-1]), shape[-1])
        rows = rows.view()
        rows.flags.writeable = False  # one compiled kernel for either (a broadcast view is read-only)
        return rows

    def backward(self, g):
        needs = self.needs_grad or (True,) * 4
        w, batch, dtype = self.weights, self.batch, self.weights.dtype
        tq, n = w.shape[-2:]
        p, seed, shift, threshold, keep = self.dropout
        # The scale goes into dS unless dS itself is asked for (the mask's gradient): then after the GEMMs.
        factor, later = (dtype.type(1), dtype.type(self.scale)) if needs[3] else (dtype.type(self.scale), None)
        grads = [(_heads_inside if i < 3 else np.empty)(a.shape if needs[i] else (0, 0, 0, 0), dtype)
                 for i, a in enumerate((self.q, self.k, self.v, w))]
        _backward(self.q, self.k, self.v, w, _as_4d(g.astype(dtype, copy=False), batch), *grads,
                  np.array(needs[:4]), max(tq, 1), self.causal, factor, p, seed, shift, threshold, keep,
                  work=w.size)
        if later is not None:
            for grad in grads[:2]:
                grad *= later
        return tuple(grad.reshape(batch + grad.shape[2:]) if need else None for grad, need in zip(grads, needs))
