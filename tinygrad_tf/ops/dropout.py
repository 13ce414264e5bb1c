"""Dropout with counter-based masks (ops/random.py)."""
from ..backend import array_module
from ..function import Function
from .random import dropout_scale


class Dropout(Function):
    """y = x * keep / (1 - p): each element is kept with probability 1 - p, then scaled so that
    the expected value is x. The mask is a hash of `seed`, so the same seed gives the same mask."""
    reads = ()

    def forward(self, x, p, seed):
        self.scale = dropout_scale(seed, x.shape, p, x.dtype, array_module(x))
        return (x * self.scale).astype(x.dtype, copy=False)  # 16-bit x: scaled in float32, rounded once

    def backward(self, g):
        return (g * self.scale).astype(g.dtype, copy=False)
