"""Layer norm as two Numba loops over rows: the forward takes a row's mean and 1/std and writes
its xhat and output in the same visit; the backward writes a row's input gradient and adds
its share of the weight and bias gradients. The NumPy twin (kernels/cpu/layer_norm.py) makes
about nine passes over whole (rows, features) arrays; here each row is read while it sits in
the L1 cache.

A row's sums (its mean, the variance of the centred row, the two means of the backward) run
in float64 whatever the dtype, in the helpers below, whose additions LLVM may reorder to
vectorize them (_numba.py, reorder_sums: 16 partial sums); the backward's products are taken
in float64 (exact for float32). The elementwise loops after them run in the input's dtype,
as the textbook op computes (xhat = (x - mean) * rstd, mean and rstd rounded to the dtype
from float64): float32 vectors hold 8 values, float64 ones 4. On the 2-core machine, cpu
preset (768 x 128 float32, the Function's forward / backward): 137 / 127 us with four
running sums taken in order and float64 loops, 69 / 72 us now (torch: 57 / 74 us).

The weight's and bias's gradients are summed per chunk of CHUNK rows, and the chunks added in
order: the same bits whether the loop over chunks runs on one thread or is split over
numba's (split=True, _numba.py). float16 stays with the NumPy twin."""
import math

import numpy as np

from ...function import Function
from ...ops import layer_norm
from . import _numba
from ._numba import kernel, usable

CHUNK = 32  # rows per partial sum of the weight's and bias's gradients (the same chunks on any thread count)


@kernel(reorder_sums=True)
def _mean_and_variance(a):
    """A row's mean and (biased) variance, sums in float64; the variance of the centred row (a
    second pass, over the row in L1): no cancellation."""
    s = 0.0
    for j in range(a.size):
        s += a[j]
    mean = s / a.size
    s = 0.0
    for j in range(a.size):
        c = a[j] - mean
        s += c * c
    return mean, s / a.size


@kernel(reorder_sums=True)
def _means_through_xhat(g, weight, xhat):
    """The means of gxhat = g * weight and of gxhat * xhat over a row, in float64 (exact
    products of float32 values)."""
    s = a = 0.0
    for j in range(g.size):
        h = np.float64(g[j]) * weight[j]
        s += h
        a += h * xhat[j]
    return s / g.size, a / g.size


@kernel(split=True)
def _forward(x, weight, bias, eps, out, xhat, rstd):
    n, d = x.shape
    for r in _numba.prange(n):
        row, h_row, o_row = x[r], xhat[r], out[r]
        mean, var = _mean_and_variance(row)
        rs = 1.0 / np.sqrt(var + eps)
        rstd[r] = rs
        m, s = x.dtype.type(mean), x.dtype.type(rs)  # then in x's dtype, as the textbook op
        for j in range(d):
            h = (row[j] - m) * s
            h_row[j] = h
            o_row[j] = h * weight[j] + bias[j]


@kernel(split=True)
def _backward(g, xhat, rstd, weight, gx, gw, gb):
    n, d = g.shape
    chunks = (n + CHUNK - 1) // CHUNK
    partial = np.zeros((chunks, 2, d))  # each chunk's share of the weight's and the bias's gradients
    for c in _numba.prange(chunks):
        sum_w, sum_b = partial[c, 0], partial[c, 1]
        for r in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            g_row, h_row, gx_row = g[r], xhat[r], gx[r]
            for j in range(d):
                sum_w[j] += np.float64(g_row[j]) * h_row[j]
                sum_b[j] += g_row[j]
            # Through xhat: the gradient gxhat = g * weight less its mean and its component along xhat.
            mean_g, along = _means_through_xhat(g_row, weight, h_row)
            m, a, rs = g.dtype.type(mean_g), g.dtype.type(along), rstd[r]
            for j in range(d):
                gx_row[j] = (g_row[j] * weight[j] - m - h_row[j] * a) * rs
    for j in range(d):  # the chunks' shares added in order
        w = b = 0.0
        for c in range(chunks):
            w += partial[c, 0, j]
            b += partial[c, 1, j]
        gw[j], gb[j] = w, b


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
        _forward(x2, self.weight, bias, float(eps), out, self.xhat, self.rstd, work=x2.size)
        return out.reshape(self.shape)

    def backward(self, g):
        g2 = np.ascontiguousarray(g.reshape(self.xhat.shape), self.xhat.dtype)
        gx, gw, gb = np.empty_like(g2), np.empty(g2.shape[1], g2.dtype), np.empty(g2.shape[1], g2.dtype)
        _backward(g2, self.xhat, self.rstd, self.weight, gx, gw, gb, work=g2.size)
        return (gx.reshape(self.shape) if self.needs_grad[0] else None,
                gw.reshape(self.param_shape) if self.needs_grad[1] else None,
                gb.reshape(self.param_shape) if self.needs_grad[2] else None)
