"""Linear followed by ReLU (F.linear(..., activation="relu"), the GPT's MLP): the GEMMs stay
NumPy's (BLAS), the work around them is one Numba pass each way. Forward: bias and ReLU
applied to the GEMM's result in place, in one pass where the NumPy twin
(kernels/cpu/linear.py) makes two. Backward: the ReLU's select and the bias gradient (a sum
over rows, in float64) in one pass over the output gradient, where the NumPy twin makes a
where() and a GEMV. The rules are the textbook op's (ops/linear.py): max(y, 0) carries NaN
through, and the gradient is 0 where the output is <= 0, the output gradient elsewhere (a
select: a NaN or inf gradient does not leak where the input was cut).

A Linear without ReLU has nothing to fuse: it stays with the NumPy twin."""
import numpy as np

from ...function import Function
from ...ops import linear
from ._numba import kernel, usable


@kernel()
def _bias_relu(y, bias):
    n, d = y.shape
    for r in range(n):
        for j in range(d):
            v = y[r, j] + bias[j]
            y[r, j] = 0 if v < 0 else v


@kernel()
def _relu_backward(g, out, gy, gb):
    n, d = g.shape
    total = np.zeros(d)
    for r in range(n):
        for j in range(d):
            v = 0 if out[r, j] <= 0 else g[r, j]
            gy[r, j] = v
            total[j] += v
    gb[:] = total


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
        _bias_relu(out, np.zeros(weight.shape[0], x.dtype) if bias is None else np.ascontiguousarray(bias))
        self.out = out
        return out.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, g):
        g2 = np.ascontiguousarray(g.reshape(self.out.shape), self.out.dtype)
        gy, gb = np.empty_like(g2), np.empty(g2.shape[1], g2.dtype)
        _relu_backward(g2, self.out, gy, gb)
        gx = (gy @ self.weight).reshape(self.x_shape) if self.needs_grad[0] else None
        gw = gy.T @ self.x2 if self.needs_grad[1] else None
        return gx, gw, gb if self.needs_grad[2] else None
