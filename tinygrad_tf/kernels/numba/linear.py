"""Linear (F.linear: with or without a bias, with or without ReLU) on numba's threads: each
thread multiplies a block of rows by single-threaded BLAS calls made from inside the kernel
(blas.py), and runs the bias and ReLU over its own rows while they are in its cache.

Why not NumPy's matmul, whose OpenBLAS has threads of its own: then two pools share the cores,
OpenBLAS's (the GEMMs) and numba's (every other kernel), and each one's idle workers spin on
the cores the other needs, so the kernels between GEMMs had to run on one thread (_numba.py
says what that cost). With the GEMMs here too, one pool does all of a step's work, as
PyTorch's OpenMP pool does its GEMMs and loops.

The blocks: as many as the call has threads (one on the serial path: one GEMM each). Forward:
rows of x and of the output. Backward: the ReLU's select over a block of rows (where the output
is <= 0 the gradient is 0, a select, so a NaN gradient does not leak where the input was cut);
then, once every row is done, per block: the input gradient of its rows, its rows' share of the
weight gradient (gy[rows]^T x[rows], block 0's into the gradient, the others' into scratch,
then added in block order), and the bias gradient of a block of output features, summed over
all rows in order in float64. The bias gradient is the same bits on any number of threads; the
weight gradient's last bits depend on the number of blocks, as a threaded BLAS's may. Split by
output features instead (no partial products), each thread packed all of x: 266 against 157 us
for a 768 x 128 x 128 weight gradient, 180 this way (2 threads). The rules are the textbook op's
(ops/linear.py): max(y, 0) carries NaN through."""
import numpy as np

from ...function import Function
from ...ops import linear
from . import _numba
from ._numba import kernel, usable
from .blas import gemm


@kernel()
def _span(n, blocks, b):
    """Block b of `blocks` near-equal blocks of range(n): (start, stop)."""
    return n * b // blocks, n * (b + 1) // blocks


@kernel(split=True, one_blas_thread=True)
def _forward(x, weight, bias, out, relu, blocks):
    """out <- x weight^T (+ bias where it has entries) (then max(., 0) where relu), a block of rows a thread."""
    zero = out.dtype.type(0)
    for b in _numba.prange(blocks):
        start, stop = _span(x.shape[0], blocks, b)
        rows = out[start:stop]
        gemm(x[start:stop], weight, rows, False, True)
        if bias.shape[0] or relu:
            for r in range(rows.shape[0]):
                row = rows[r]
                for j in range(row.shape[0]):
                    v = row[j] + bias[j] if bias.shape[0] else row[j]
                    row[j] = zero if relu and v < zero else v


@kernel(split=True, one_blas_thread=True)
def _backward(g, out, weight, x, gy, gx, gw, parts, gb, relu, blocks):
    """gy <- g with 0 where out <= 0 (relu; else gy is g itself), then gx = gy weight,
    gw = gy^T x (block b's rows into parts[b - 1], block 0's into gw, then added in order) and
    gb = the column sums of gy; a gradient of 0 rows is not asked for."""
    n, d = g.shape
    zero = g.dtype.type(0)
    if relu:
        for b in _numba.prange(blocks):
            start, stop = _span(n, blocks, b)
            for r in range(start, stop):
                g_row, out_row, gy_row = g[r], out[r], gy[r]
                for j in range(d):
                    gy_row[j] = zero if out_row[j] <= zero else g_row[j]
    for b in _numba.prange(blocks):
        start, stop = _span(n, blocks, b)
        if gx.shape[0]:
            gemm(gy[start:stop], weight, gx[start:stop], False, False)
        if gw.shape[0]:
            gemm(gy[start:stop], x[start:stop], gw if b == 0 else parts[b - 1], True, False)
        first, last = _span(d, blocks, b)
        if gb.shape[0]:
            total = np.zeros(last - first)
            for r in range(n):
                row = gy[r, first:last]
                for j in range(last - first):
                    total[j] += row[j]
            for j in range(last - first):
                gb[first + j] = total[j]
    if gw.shape[0] and blocks > 1:
        for b in _numba.prange(blocks):
            first, last = _span(d, blocks, b)
            for r in range(first, last):
                row = gw[r]
                for p in range(blocks - 1):
                    part = parts[p, r]
                    for j in range(row.shape[0]):
                        row[j] += part[j]


class Linear(Function):
    name, replaces = "linear", linear.Linear

    @staticmethod
    def supports(x, weight, bias, activation):
        """CPU float32/float64 arrays of one dtype and shapes that fit (else the textbook op says
        what is wrong); numba and SciPy's BLAS here, the kernels switched on."""
        arrays = (x, weight) if bias is None else (x, weight, bias)
        return (activation in (None, "relu") and all(isinstance(a, np.ndarray) and a.dtype == x.dtype for a in arrays)
                and x.dtype in (np.float32, np.float64) and x.ndim >= 1 and weight.ndim == 2
                and x.shape[-1] == weight.shape[1] and (bias is None or bias.shape == weight.shape[:1])
                and usable() and _numba.has_blas())

    def forward(self, x, weight, bias, activation):
        x2 = np.ascontiguousarray(x.reshape(-1, x.shape[-1]))
        self.x2, self.weight, self.x_shape, self.relu = x2, np.ascontiguousarray(weight), x.shape, activation == "relu"
        y = np.empty(x.shape[:-1] + weight.shape[:1], x.dtype)  # (returned whole: apply has no view to trace)
        out = y.reshape(x2.shape[0], weight.shape[0])
        bias = np.empty(0, x.dtype) if bias is None else np.ascontiguousarray(bias)
        work = out.size + x2.size
        blocks = _forward.threads(work)
        _forward.run(blocks, x2, self.weight, bias, out, self.relu, blocks)
        self.out, self.out_shape = out if self.relu else None, out.shape  # the ReLU's backward reads its output
        return y

    def backward(self, g):
        g2 = np.ascontiguousarray(g.reshape(self.out_shape), self.x2.dtype)
        gy, out = (np.empty_like(g2), self.out) if self.relu else (g2, g2)  # (out is read only with relu)
        gx, gw, gb = (np.empty(shape if need else (0,) * len(shape), g2.dtype) for shape, need in
                      zip((self.x2.shape, self.weight.shape, g2.shape[1:]), self.needs_grad))
        work = g2.size + self.x2.size
        blocks = _backward.threads(work)
        parts = np.empty((blocks - 1,) + gw.shape if self.needs_grad[1] else (0, 0, 0), g2.dtype)
        _backward.run(blocks, g2, out, self.weight, self.x2, gy, gx, gw, parts, gb, self.relu, blocks)
        return (gx.reshape(self.x_shape) if self.needs_grad[0] else None, gw if self.needs_grad[1] else None,
                gb if self.needs_grad[2] else None)
