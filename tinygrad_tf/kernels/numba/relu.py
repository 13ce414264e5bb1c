"""ReLU as Numba loops, forward and backward: one pass each over the elements, without NumPy's
NaN bookkeeping in maximum() and with the backward's select written straight into the
gradient. The model's ReLU does not come here but through Linear's fused epilogue (linear.py,
the same rules), F.linear(..., activation="relu"); this one serves Tensor.relu, F.relu and
nn.ReLU.

NumPy's maximum carries NaN through (max(NaN, 0) is NaN); `0 if v < 0 else v` does the same.
The backward is torch's rule, a select: 0 where the output is <= 0, the gradient elsewhere
(a NaN output passes it on), so that a NaN or inf gradient never leaks where the input was
cut, as ops/elementwise.Relu."""
import numpy as np

from ...function import Function
from ...ops import elementwise
from ._numba import kernel, usable


@kernel()
def _forward(a, out):
    for i in range(a.size):
        out[i] = 0 if a[i] < 0 else a[i]


@kernel()
def _backward(g, out, gx):
    for i in range(g.size):
        gx[i] = 0 if out[i] <= 0 else g[i]


def flat(a, dtype=None):
    """A C-contiguous 1-D view of a (a copy when it is not contiguous): what the loops index."""
    return np.ascontiguousarray(a, dtype).reshape(-1)


class Relu(Function):
    name, replaces = "relu", elementwise.Relu

    @staticmethod
    def supports(a):
        return isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float64) and usable()

    def forward(self, a):
        self.out = np.empty(a.shape, a.dtype)
        _forward(flat(a), self.out.reshape(-1))
        return self.out

    def backward(self, g):
        gx = np.empty(self.out.shape, self.out.dtype)
        _backward(flat(g, self.out.dtype), self.out.reshape(-1), gx.reshape(-1))
        return gx
