"""Layer norm on the CPU: a 2-D (rows, features) view, row sums as GEMVs (blas.py), the
squared norms as einsum dot products, and in-place updates of fresh temporaries, so that
each statistic is one pass over the rows. float16 runs in float32 and rounds its results, as
the textbook op does."""
import math

import numpy as np

from ...function import Function
from ...ops import layer_norm
from .blas import column_sum, on_cpu, row_sum


class LayerNorm(Function):
    name, replaces = "layer_norm", layer_norm.LayerNorm

    @staticmethod
    def supports(x, weight, bias, ndim, eps):
        # An empty x has nothing to fuse (and its rows would not reshape to (-1, 0)): the textbook op takes it.
        return on_cpu(x) and x.size > 0 and all(p is None or on_cpu(p) for p in (weight, bias))

    def forward(self, x, weight, bias, ndim, eps):
        self.shape, self.param_shape = x.shape, x.shape[x.ndim - ndim:]
        self.dtype, stats = x.dtype, np.promote_types(x.dtype, np.float32)  # float16 in float32
        x2 = x.reshape(-1, math.prod(self.param_shape)).astype(stats, copy=False)
        self.weight = None if weight is None else weight.reshape(-1)
        d = x2.shape[1]
        xhat = x2 - row_sum(x2) / d                                # centred
        self.rstd = 1 / np.sqrt(np.einsum("nd,nd->n", xhat, xhat)[:, None] / d + eps)
        xhat *= self.rstd
        self.xhat = xhat
        out = xhat if weight is None else xhat * self.weight
        if bias is not None:
            out = out + bias.reshape(-1) if out is xhat else np.add(out, bias.reshape(-1), out=out)
        return out.reshape(self.shape).astype(self.dtype, copy=False)

    def backward(self, g):
        xhat = self.xhat
        g2, d = g.reshape(xhat.shape).astype(xhat.dtype, copy=False), xhat.shape[1]
        gw = np.einsum("nd,nd->d", g2, xhat).reshape(self.param_shape) if self.needs_grad[1] else None
        gb = column_sum(g2).reshape(self.param_shape) if self.needs_grad[2] else None
        gx = None
        if self.needs_grad[0]:
            gxhat = g2 * (1 if self.weight is None else self.weight)
            along = np.einsum("nd,nd->n", gxhat, xhat)[:, None] / d
            gxhat -= row_sum(gxhat) / d
            gxhat -= xhat * along
            gxhat *= self.rstd
            gx = gxhat.reshape(self.shape)
        return tuple(None if grad is None else grad.astype(self.dtype, copy=False) for grad in (gx, gw, gb))
