"""Scaled dot-product attention, as one op: its backward is the chain rule written out."""
from ..backend import array_module
from ..function import Function
from .random import dropout_scale
from .softmax import safe_softmax


class Attention(Function):
    """out = dropout(softmax(q k^T * scale + bias)) @ v over the last two axes.

    bias: None or an additive mask (-inf where a query must not look); causal=True lets
    query i see keys 0..i only (top-left aligned, as torch's is_causal); dropout_p > 0 drops
    weights with the mask of `seed`. A query that may see no key (a row of -inf) gets weights 0,
    so output 0 and no gradient, as torch's SDPA."""
    reads = (0, 1, 2)

    def forward(self, q, k, v, bias, scale, dropout_p, seed, causal):
        xp = array_module(q)
        scores = (q @ xp.swapaxes(k, -1, -2)) * scale
        if bias is not None:
            scores = scores + bias
        if causal:
            tq, tk = scores.shape[-2:]
            scores = xp.where(xp.tril(xp.ones((tq, tk), dtype=bool)), scores, -xp.inf)
        self.weights = safe_softmax(scores, -1)  # a row of -inf: 0, not nan
        self.drop = dropout_scale(seed, scores.shape, dropout_p, q.dtype, xp) if dropout_p else 1
        self.dropped = self.weights * self.drop
        self.q, self.k, self.v, self.scale = q, k, v, scale
        return self.dropped @ v

    def backward(self, g):
        xp, w = array_module(g), self.weights
        gv = xp.swapaxes(self.dropped, -1, -2) @ g
        gw = (g @ xp.swapaxes(self.v, -1, -2)) * self.drop  # dL/d weights, through the dropout
        gs = w * (gw - (gw * w).sum(axis=-1, keepdims=True))  # the softmax backward (ops/softmax.py)
        gq = (gs @ self.k) * self.scale
        gk = (xp.swapaxes(gs, -1, -2) @ self.q) * self.scale
        return gq, gk, gv, gs  # d bias = d scores
