"""Softmax and log-softmax along one axis."""
from ..backend import array_module
from ..function import Function


def softmax(x, dim):
    """exp(x) / sum(exp(x)) along dim. Subtracting the row's max first changes nothing in exact
    arithmetic and keeps exp from overflowing for large x (and gives exp(-inf) = 0 for a mask).
    A row of only -inf gives nan (-inf - -inf), as torch's softmax."""
    if x.size == 0:  # nothing to normalise, and max has no identity over an empty dim: empty, as torch
        return x.copy()
    e = array_module(x).exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def safe_softmax(x, dim):
    """softmax, but 0 (not nan) along a row of only -inf: attention's rule for a query that may see
    no key, which attends to nothing (torch's _safe_softmax, in its SDPA since 2.5)."""
    xp = array_module(x)
    blind, zero = xp.isneginf(x).all(axis=dim, keepdims=True), x.dtype.type(0)
    return xp.where(blind, zero, softmax(xp.where(blind, zero, x), dim))  # the inner where: no nan made


class Softmax(Function):
    reads, reads_output = (), True

    def forward(self, x, dim):
        self.y, self.dim = softmax(x, dim), dim
        return self.y

    def backward(self, g):
        # The Jacobian diag(y) - y y^T times g, without forming it: y * (g - sum(g * y)).
        y = self.y
        return y * (g - (g * y).sum(axis=self.dim, keepdims=True))


class LogSoftmax(Function):
    reads, reads_output = (), True

    def forward(self, x, dim):
        xp = array_module(x)
        if x.size == 0:  # as softmax: nothing to normalise
            self.out, self.dim = x.copy(), dim
            return self.out
        shifted = x - x.max(axis=dim, keepdims=True)  # the max-shift, as in softmax
        self.out, self.dim = shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True)), dim
        return self.out

    def backward(self, g):
        # d log softmax: g - softmax(x) * sum(g), and softmax(x) = exp(out).
        return g - array_module(g).exp(self.out) * g.sum(axis=self.dim, keepdims=True)
