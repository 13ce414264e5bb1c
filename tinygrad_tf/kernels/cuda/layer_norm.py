"""Layer norm over the last axis of a (rows, n) array: one warp per row, one pass each way.

Forward writes the output, xhat (kept for backward, as the textbook op keeps it) and one
1/std per row; backward writes dx from g, xhat and 1/std in one kernel. The weight and
bias gradients are column sums over all rows (reduce.column_sum)."""
import math

import numpy as np

from ...backend import cupy, is_cuda_array
from ...function import Function
from ...ops import layer_norm
from . import reduce
from ._cuda import launch_rows, on_gpu, raw_kernel, scalar

_SOURCE = r"""
extern "C" __global__ void ln_fwd(const T* X, const T* W, const T* B, T* Y, T* XHAT, T* RSTD,
                                  long long rows, int n, T eps, int has_w, int has_b) {
    long long row = tg_warp_row();
    int lane = tg_lane();
    if (row >= rows) return;
    const T* x = X + row * n;
    T s = 0;
    for (int j = lane; j < n; j += 32) s += x[j];
    T mean = tg_warp_sum(s) / n;
    T ss = 0;
    for (int j = lane; j < n; j += 32) { T c = x[j] - mean; ss += c * c; }
    T rstd = (T)1 / sqrt(tg_warp_sum(ss) / n + eps);
    for (int j = lane; j < n; j += 32) {
        T h = (x[j] - mean) * rstd;
        XHAT[row * n + j] = h;
        if (has_w) h = h * W[j];
        if (has_b) h = h + B[j];
        Y[row * n + j] = h;
    }
    if (lane == 0) RSTD[row] = rstd;
}

extern "C" __global__ void ln_bwd(const T* G, const T* XHAT, const T* W, const T* RSTD, T* GX,
                                  long long rows, int n, int has_w) {
    long long row = tg_warp_row();
    int lane = tg_lane();
    if (row >= rows) return;
    const T* g = G + row * n;
    const T* h = XHAT + row * n;
    T sg = 0, sgh = 0;
    for (int j = lane; j < n; j += 32) {
        T gh = has_w ? g[j] * W[j] : g[j];
        sg += gh;
        sgh += gh * h[j];
    }
    T mean_g = tg_warp_sum(sg) / n, mean_gh = tg_warp_sum(sgh) / n;
    T r = RSTD[row];
    for (int j = lane; j < n; j += 32) {
        T gh = has_w ? g[j] * W[j] : g[j];
        GX[row * n + j] = (gh - mean_g - h[j] * mean_gh) * r;
    }
}
"""


def forward(x2, weight, bias, eps):
    """x2 (rows, n); weight, bias (n,) or None -> (out, xhat, rstd)."""
    x2 = cupy.ascontiguousarray(x2)
    rows, n = x2.shape
    out, xhat, rstd = cupy.empty_like(x2), cupy.empty_like(x2), cupy.empty((rows,), x2.dtype)
    w = x2 if weight is None else cupy.ascontiguousarray(weight)
    b = x2 if bias is None else cupy.ascontiguousarray(bias)
    launch_rows(raw_kernel(_SOURCE, "ln_fwd", x2.dtype), rows,
                (x2, w, b, out, xhat, rstd, np.int64(rows), np.int32(n), scalar(x2.dtype, eps),
                 np.int32(weight is not None), np.int32(bias is not None)))
    return out, xhat, rstd


def backward(g2, xhat, rstd, weight, needs=(True, True, True)):
    """-> (gx, gweight, gbias) as (rows, n), (n,), (n,); None where not needed."""
    g2 = cupy.ascontiguousarray(g2)
    rows, n = g2.shape
    gx = None
    if needs[0]:
        gx = cupy.empty_like(g2)
        w = g2 if weight is None else cupy.ascontiguousarray(weight)
        launch_rows(raw_kernel(_SOURCE, "ln_bwd", g2.dtype), rows,
                    (g2, xhat, w, rstd, gx, np.int64(rows), np.int32(n), np.int32(weight is not None)))
    if needs[1] and needs[2]:  # one pass over g for both
        gw, gb = reduce.column_sums(g2, xhat)
    else:
        gw = reduce.column_sum(g2, xhat) if needs[1] else None
        gb = reduce.column_sum(g2) if needs[2] else None
    return gx, gw, gb


class LayerNorm(Function):
    """The normalised axes are flattened into one: rows of n = their product."""
    name, replaces = "layer_norm", layer_norm.LayerNorm

    @staticmethod
    def supports(x, weight, bias, ndim, eps):
        # An empty x has nothing to fuse (and its rows would not reshape to (-1, 0)): the textbook op takes it.
        return on_gpu(x) and x.size > 0 and all(p is None or (is_cuda_array(p) and p.dtype == x.dtype)
                                                for p in (weight, bias))

    def forward(self, x, weight, bias, ndim, eps):
        self.shape, self.param_shape = x.shape, x.shape[x.ndim - ndim:]
        self.weight = None if weight is None else weight.reshape(-1)
        out, self.xhat, self.rstd = forward(x.reshape(-1, math.prod(self.param_shape)), self.weight,
                                            None if bias is None else bias.reshape(-1), eps)
        return out.reshape(self.shape)

    def backward(self, g):
        gx, gw, gb = backward(g.reshape(self.xhat.shape), self.xhat, self.rstd, self.weight, self.needs_grad)
        return (None if gx is None else gx.reshape(self.shape),
                None if gw is None else gw.reshape(self.param_shape),
                None if gb is None else gb.reshape(self.param_shape))
