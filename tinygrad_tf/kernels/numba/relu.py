"""ReLU as Numba loops, forward and backward: one pass each over the elements, without NumPy's
NaN bookkeeping in maximum() and with the backward's select written straight into the
gradient. The model's ReLU does not come here but through Linear's fused epilogue (linear.py,
the same rules), F.linear(..., activation="relu"); this one serves Tensor.relu, F.relu and
nn.ReLU.

NumPy's maximum carries NaN through (max(NaN, 0) is NaN); `0 if v < 0 else v` does the same.
The backward is torch's rule, a select: 0 where the output is <= 0, the gradient elsewhere
(a NaN output passes it on), so that a NaN or inf gradient never leaks where the input was
cut, as ops/elementwise.Relu. Elements are independent: split=True (_numba.py)."""
import numpy as np

from ...function import Function
from ...ops import elementwise
from . import _numba
from ._numba import flat, kernel, usable


@kernel(split=True)
def _forward(a, out):
    zero = a.dtype.type(0)  # (an int 0 would make the select's result a float64)
    for i in _numba.prange(a.size):
        out[i] = zero if a[i] < zero else a[i]


@kernel(split=True)
def _backward(g, out, gx):
    zero = g.dtype.type(0)
    for i in _numba.prange(g.size):
        gx[i] = zero if out[i] <= zero else g[i]


class Relu(Function):
    name, replaces = "relu", elementwise.Relu

    @staticmethod
    def supports(a):
        return isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float64) and usable()

    def forward(self, a):
        self.out = np.empty(a.shape, a.dtype)
        _forward(flat(a), self.out.reshape(-1), work=a.size)
        return self.out

    def backward(self, g):
        gx = np.empty(self.out.shape, self.out.dtype)
        _backward(flat(g, self.out.dtype), self.out.reshape(-1), gx.reshape(-1), work=gx.size)
        return gx
