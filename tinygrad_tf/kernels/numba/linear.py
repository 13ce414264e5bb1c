"""Linear followed by ReLU (F.linear(..., activation="relu"), the GPT's MLP): the GEMMs stay
NumPy's (BLAS), the work around them is one Numba pass each way. Forward: bias and ReLU
applied to the GEMM's result in place, in one pass where the NumPy twin
(kernels/cpu/linear.py) makes two. Backward: the ReLU's select and the bias gradient (a sum
over rows, in float64) in one pass over the output gradient, where the NumPy twin makes a
where() and a GEMV. The rules are the textbook op's (ops/linear.py): max(y, 0) carries NaN
through, and the gradient is 0 where the output is <= 0, the output gradient elsewhere (a
select: a NaN or inf gradient does not leak where the input was cut). The selects run in the
dtype (a literal int 0 made them float64: 768 x 512 float32 backward 140 -> 115 us), and the
bias gradient is summed per chunk of CHUNK rows, the chunks added in order: the same bits on
one thread or split over numba's (split=True, _numba.py).

A Linear without ReLU has nothing to fuse: it stays with the NumPy twin."""
import numpy as np

from ...function import Function
from ...ops import linear
from . import _numba
from ._numba import kernel, usable

CHUNK = 32  # rows per partial sum of the bias gradient (the same chunks on any thread count)


@kernel(split=True)
def _bias_relu(y, bias):
    n, d = y.shape
    zero = y.dtype.type(0)  # (an int 0 would make the select's result a float64)
    for r in _numba.prange(n):
        row = y[r]
        for j in range(d):
            v = row[j] + bias[j]
            row[j] = zero if v < zero else v


@kernel(split=True)
def _relu_backward(g, out, gy, gb):
    n, d = g.shape
    zero = g.dtype.type(0)
    chunks = (n + CHUNK - 1) // CHUNK
    partial = np.zeros((chunks, d))  # each chunk's share of the bias gradient
    for c in _numba.prange(chunks):
        total = partial[c]
        for r in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            g_row, out_row, gy_row = g[r], out[r], gy[r]
            for j in range(d):
                v = zero if out_row[j] <= zero else g_row[j]
                gy_row[j] = v
                total[j] += v
    for j in range(d):  # the chunks' shares added in order
        s = 0.0
        for c in range(chunks):
            s += partial[c, j]
        gb[j] = s


class Linear(Function):
    name, replaces = "linear", linear.Linear

    @staticmethod
    def supports(x, weight, bias, activation):
        arrays = (x, weight) if bias is None else (x, weight, bias)
        return (activation == "relu" and all(isinstance(a, np.ndarray) and a.dtype == x.dtype for a in arrays)
                and x.dtype in (np.float32, np.float64) and usable())

    def forward(self, x, weight, bias, activation):
        self.x2, self.weight, self.x_shape = x.reshape(-1, x.shape[-1]), weight, x.shape
        out = self.x2 @ weight.T  # a fresh C-contiguous array, written in place below
        bias = np.zeros(weight.shape[0], x.dtype) if bias is None else np.ascontiguousarray(bias)
        _bias_relu(out, bias, work=out.size)
        self.out = out
        return out.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, g):
        g2 = np.ascontiguousarray(g.reshape(self.out.shape), self.out.dtype)
        gy, gb = np.empty_like(g2), np.empty(g2.shape[1], g2.dtype)
        _relu_backward(g2, self.out, gy, gb, work=g2.size)
        gx = (gy @ self.weight).reshape(self.x_shape) if self.needs_grad[0] else None
        gw = gy.T @ self.x2 if self.needs_grad[1] else None
        return gx, gw, gb if self.needs_grad[2] else None
