"""Elementwise maximum and minimum of two tensors (torch.maximum, torch.minimum)."""
from ..backend import array_module
from ..function import Function


def share(g, lost, tie):
    """One side's gradient, as torch: 0 where it lost, g / 2 at a tie, else g (where it won, and where
    either side is NaN). A select, not g times a 0/1 mask: a NaN or inf gradient must not reach the
    side that lost (nan * 0 = nan)."""
    xp = array_module(g)
    return xp.where(lost, g.dtype.type(0), xp.where(tie, g * g.dtype.type(0.5), g))


class Maximum(Function):
    """max(a, b) elementwise; where a == b each side gets half the gradient, as in torch."""
    reads = (0, 1)

    def forward(self, a, b):
        self.a, self.b = a, b
        return array_module(a).maximum(a, b)

    def backward(self, g):
        tie = self.a == self.b
        return share(g, self.a < self.b, tie), share(g, self.b < self.a, tie)


class Minimum(Function):
    """min(a, b) elementwise; ties share the gradient, as in Maximum."""
    reads = (0, 1)

    def forward(self, a, b):
        self.a, self.b = a, b
        return array_module(a).minimum(a, b)

    def backward(self, g):
        tie = self.a == self.b
        return share(g, self.a > self.b, tie), share(g, self.b > self.a, tie)
