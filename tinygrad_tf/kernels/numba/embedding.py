"""Embedding whose backward is a Numba loop: each position's gradient row added into the row of
its id, in position order, as np.add.at adds them (so the sums are the textbook op's, bit for
bit) but without add.at's per-element dispatch, and without the sort and the copy of every
row that the NumPy twin (kernels/cpu/embedding.py) makes. The forward is NumPy's gather,
which also raises IndexError for an id out of range."""
import numpy as np

from ...function import Function
from ...ops import embedding
from ._numba import kernel, usable


@kernel()
def _scatter_add(index, rows, grad):
    vocab, d = grad.shape
    for i in range(index.size):
        k = index[i]
        if k < 0:  # the gather's wrap-around for negative ids
            k += vocab
        if k < 0 or k >= vocab:  # only an id changed in place after the forward: never write outside grad
            raise IndexError("embedding id out of range")
        for j in range(d):
            grad[k, j] += rows[i, j]


class Embedding(Function):
    name, replaces = "embedding", embedding.Embedding

    @staticmethod
    def supports(idx, weight):
        return (isinstance(weight, np.ndarray) and weight.dtype in (np.float32, np.float64) and weight.ndim == 2
                and isinstance(idx, np.ndarray) and idx.dtype.kind in "iu" and usable())

    def forward(self, idx, weight):
        self.idx, self.weight_shape, self.dtype = idx, weight.shape, weight.dtype
        return weight[idx]

    def backward(self, g):
        grad = np.zeros(self.weight_shape, self.dtype)
        _scatter_add(np.ascontiguousarray(self.idx.reshape(-1), np.int64),
                     np.ascontiguousarray(g.reshape(-1, self.weight_shape[1]), self.dtype), grad)
        return None, grad
