"""Layer norm as two Numba loops over rows: the forward takes a row's mean and 1/std and writes
its xhat and output in the same visit; the backward writes a row's input gradient and adds
its share of the weight and bias gradients. The NumPy twin (kernels/cpu/layer_norm.py) makes
about nine passes over whole (rows, features) arrays; here each row is read while it sits in
the L1 cache.

Sums run in float64 whatever the dtype, four running sums in turn: independent additions
that the CPU overlaps, taken in the order written (fastmath=False reorders nothing), then
added pairwise. float16 stays with the NumPy twin."""
import math

import numpy as np

from ...function import Function
from ...ops import layer_norm
from ._numba import kernel, usable


@kernel()
def _forward(x, weight, bias, eps, out, xhat, rstd):
    n, d = x.shape
    d4 = d - d % 4
    for r in range(n):
        s0 = s1 = s2 = s3 = 0.0
        for j in range(0, d4, 4):
            s0 += x[r, j]
            s1 += x[r, j + 1]
            s2 += x[r, j + 2]
            s3 += x[r, j + 3]
        for j in range(d4, d):
            s0 += x[r, j]
        mean = ((s0 + s1) + (s2 + s3)) / d
        s0 = s1 = s2 = s3 = 0.0
        for j in range(0, d4, 4):  # the variance of the centred row: no cancellation
            c0, c1, c2, c3 = x[r, j] - mean, x[r, j + 1] - mean, x[r, j + 2] - mean, x[r, j + 3] - mean
            s0 += c0 * c0
            s1 += c1 * c1
            s2 += c2 * c2
            s3 += c3 * c3
        for j in range(d4, d):
            c0 = x[r, j] - mean
            s0 += c0 * c0
        rs = 1.0 / np.sqrt(((s0 + s1) + (s2 + s3)) / d + eps)
        rstd[r] = rs
        for j in range(d):
            h = (x[r, j] - mean) * rs
            xhat[r, j] = h
            out[r, j] = h * weight[j] + bias[j]


@kernel()
def _backward(g, xhat, rstd, weight, gx, gw, gb):
    n, d = g.shape
    d4 = d - d % 4
    sum_w, sum_b = np.zeros(d), np.zeros(d)  # the weight's and the bias's gradients, summed over rows
    for r in range(n):
        for j in range(d):
            sum_w[j] += g[r, j] * xhat[r, j]
            sum_b[j] += g[r, j]
        # Through xhat: the gradient gxhat = g * weight less its mean and its component along xhat.
        s0 = s1 = s2 = s3 = 0.0
        a0 = a1 = a2 = a3 = 0.0
        for j in range(0, d4, 4):
            h0, h1 = g[r, j] * weight[j], g[r, j + 1] * weight[j + 1]
            h2, h3 = g[r, j + 2] * weight[j + 2], g[r, j + 3] * weight[j + 3]
            s0 += h0
            s1 += h1
            s2 += h2
            s3 += h3
            a0 += h0 * xhat[r, j]
            a1 += h1 * xhat[r, j + 1]
            a2 += h2 * xhat[r, j + 2]
            a3 += h3 * xhat[r, j + 3]
        for j in range(d4, d):
            h0 = g[r, j] * weight[j]
            s0 += h0
            a0 += h0 * xhat[r, j]
        mean_g, along = ((s0 + s1) + (s2 + s3)) / d, ((a0 + a1) + (a2 + a3)) / d
        for j in range(d):
            gx[r, j] = (g[r, j] * weight[j] - mean_g - xhat[r, j] * along) * rstd[r]
    gw[:] = sum_w
    gb[:] = sum_b


class LayerNorm(Function):
    """xhat is kept for backward (as the textbook op keeps it), in the input's dtype."""
    name, replaces = "layer_norm", layer_norm.LayerNorm

    @staticmethod
    def supports(x, weight, bias, ndim, eps):
        # One dtype, float32 or float64; rows of at least one value.
        arrays = [a for a in (x, weight, bias) if a is not None]
        return (isinstance(x, np.ndarray) and x.dtype in (np.float32, np.float64)
                and all(isinstance(a, np.ndarray) and a.dtype == x.dtype for a in arrays)
                and math.prod(x.shape[x.ndim - ndim:]) > 0 and usable())

    def forward(self, x, weight, bias, ndim, eps):
        self.shape, self.param_shape = x.shape, x.shape[x.ndim - ndim:]
        d = math.prod(self.param_shape)
        x2 = np.ascontiguousarray(x.reshape(-1, d))
        # No weight or bias: ones and zeros (xhat * 1 + 0 is xhat), so that one compiled kernel serves every call.
        self.weight = np.ones(d, x.dtype) if weight is None else np.ascontiguousarray(weight.reshape(-1))
        bias = np.zeros(d, x.dtype) if bias is None else np.ascontiguousarray(bias.reshape(-1))
        out, self.xhat, self.rstd = np.empty_like(x2), np.empty_like(x2), np.empty(x2.shape[0], x.dtype)
        _forward(x2, self.weight, bias, float(eps), out, self.xhat, self.rstd)
        return out.reshape(self.shape)

    def backward(self, g):
        g2 = np.ascontiguousarray(g.reshape(self.xhat.shape), self.xhat.dtype)
        gx, gw, gb = np.empty_like(g2), np.empty(g2.shape[1], g2.dtype), np.empty(g2.shape[1], g2.dtype)
        _backward(g2, self.xhat, self.rstd, self.weight, gx, gw, gb)
        return (gx.reshape(self.shape) if self.needs_grad[0] else None,
                gw.reshape(self.param_shape) if self.needs_grad[1] else None,
                gb.reshape(self.param_shape) if self.needs_grad[2] else None)
