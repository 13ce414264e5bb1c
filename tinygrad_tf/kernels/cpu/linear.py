"""Linear on the CPU: one 2-D GEMM over all leading dims (BLAS's best case; NumPy's matmul of a
(B, T, C) array runs one GEMM per batch entry), ReLU in place, the bias gradient as a GEMV."""
import numpy as np

from ...function import Function
from ...ops import linear
from .blas import column_sum, for_blas


class Linear(Function):
    name, replaces = "linear", linear.Linear

    @staticmethod
    def supports(x, weight, bias, activation):
        return for_blas(x, weight) and (bias is None or for_blas(bias))

    def forward(self, x, weight, bias, activation):
        self.x2, self.weight, self.x_shape = x.reshape(-1, x.shape[-1]), weight, x.shape
        out = self.x2 @ weight.T
        if bias is not None:
            out += bias
        if activation == "relu":
            np.maximum(out, 0, out=out)
        self.relu_out = out if activation == "relu" else None
        return out.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, g):
        g2 = g.reshape(-1, g.shape[-1])
        if self.relu_out is not None:
            g2 = np.where(self.relu_out <= 0, g2.dtype.type(0), g2)  # a select, as ops.elementwise.Relu: no nan * 0
        gx = (g2 @ self.weight).reshape(self.x_shape) if self.needs_grad[0] else None
        gw = g2.T @ self.x2 if self.needs_grad[1] else None
        gb = column_sum(g2) if self.needs_grad[2] else None
        return gx, gw, gb
