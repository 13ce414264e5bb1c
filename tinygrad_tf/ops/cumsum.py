"""Cumulative sum along one axis."""
from ..backend import array_module
from ..function import Function


class Cumsum(Function):
    """out[i] = a[0] + ... + a[i] along dim."""
    reads = ()

    def forward(self, a, dim):
        self.dim = dim
        return array_module(a).cumsum(a, axis=dim)

    def backward(self, g):
        # a[j] is in every out[i] with i >= j: its gradient is the sum of g from j to the end.
        xp = array_module(g)
        return xp.flip(xp.cumsum(xp.flip(g, self.dim), axis=self.dim), self.dim)
