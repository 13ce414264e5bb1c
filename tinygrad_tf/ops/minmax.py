"""Elementwise maximum and minimum of two tensors (torch.maximum, torch.minimum)."""
from ..backend import array_module
from ..function import Function


class Maximum(Function):
    """max(a, b) elementwise; where a == b each side gets half the gradient, as in torch."""
    reads = (0, 1)

    def forward(self, a, b):
        self.a, self.b = a, b
        return array_module(a).maximum(a, b)

    def backward(self, g):
        share = (self.a > self.b) + g.dtype.type(0.5) * (self.a == self.b)
        return g * share, g * (1 - share)


class Minimum(Function):
    """min(a, b) elementwise; ties share the gradient, as in Maximum."""
    reads = (0, 1)

    def forward(self, a, b):
        self.a, self.b = a, b
        return array_module(a).minimum(a, b)

    def backward(self, g):
        share = (self.a < self.b) + g.dtype.type(0.5) * (self.a == self.b)
        return g * share, g * (1 - share)
