"""Attention on the CPU: the textbook op's math with BLAS's fast paths and fewer passes over
the T x T scores: q is scaled (T x d) instead of the scores (T x T), k^T and v^T are made
contiguous for the GEMMs, exp and the normalisation run in place, row sums are GEMVs. A query
that may see no key (a row of -inf) gets weights 0, as the textbook op's safe softmax gives."""
import numpy as np

from ...function import Function
from ...ops import attention
from ...ops.random import dropout_scale
from .blas import for_blas, row_sum


class Attention(Function):
    name, replaces = "attention", attention.Attention

    @staticmethod
    def supports(q, k, v, bias, scale, dropout_p, seed, causal):
        if not for_blas(q, k, v) or not (bias is None or for_blas(bias)):
            return False
        scores = np.broadcast_shapes(q.shape[:-2], k.shape[:-2]) + (q.shape[-2], k.shape[-2])
        if k.shape[-2] == 0:  # no key to attend to: nothing to fuse (the textbook op gives 0s)
            return False
        return bias is None or np.broadcast_shapes(bias.shape, scores) == scores  # added in place

    def forward(self, q, k, v, bias, scale, dropout_p, seed, causal):
        self.q_scaled = q * q.dtype.type(scale)
        scores = self.q_scaled @ np.ascontiguousarray(np.swapaxes(k, -1, -2))
        if bias is not None:
            scores += bias
        if causal:
            tq, tk = scores.shape[-2:]
            scores += np.where(np.tril(np.ones((tq, tk), dtype=bool)), q.dtype.type(0), q.dtype.type(-np.inf))
        top = scores.max(axis=-1, keepdims=True)
        top[top == -np.inf] = 0  # a query that sees no key: exp(-inf - 0) = 0 (not -inf - -inf = nan)
        scores -= top  # max-shift: stable, and -inf masks give 0
        weights = np.exp(scores, out=scores)
        total = row_sum(weights)  # >= 1 (the max gives exp(0)), but 0 for a query that sees no key
        total[total == 0] = 1  # its weights stay 0, as torch's SDPA
        weights *= 1 / total
        self.weights, self.drop = weights, None
        if dropout_p:
            self.drop = dropout_scale(seed, weights.shape, dropout_p, weights.dtype)
            weights = weights * self.drop
        self.k, self.v, self.scale, self.dropped = k, v, scale, weights
        return weights @ v

    def backward(self, g):
        p = self.weights
        gv = np.swapaxes(self.dropped, -1, -2) @ g if self.needs_grad[2] else None
        ds = g @ np.ascontiguousarray(np.swapaxes(self.v, -1, -2))  # dL/d(dropped weights)
        if self.drop is not None:
            ds *= self.drop
        ds *= p
        ds -= p * row_sum(ds)  # softmax Jacobian: P * (dP - rowsum(dP * P))
        gbias = ds if self.needs_grad[3] else None
        gq = (ds @ self.k) * g.dtype.type(self.scale) if self.needs_grad[0] else None
        gk = np.swapaxes(ds, -1, -2) @ self.q_scaled if self.needs_grad[1] else None
        return gq, gk, gv, gbias
