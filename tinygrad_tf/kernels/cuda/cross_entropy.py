"""Cross-entropy of (rows, classes) logits: one warp per row in each direction.

Forward writes each row's loss and log-sum-exp (kept for backward instead of the
(rows, classes) probabilities); backward writes (softmax - smoothed one-hot) * scale."""
import numpy as np

from ...backend import cupy, is_cuda_array
from ...function import Function
from ...ops import cross_entropy
from ._cuda import launch_rows, on_gpu, raw_kernel, scalar

_SOURCE = r"""
extern "C" __global__ void ce_fwd(const T* X, const long long* TARGET, T* LOSS, T* LSE, long long rows,
                                  int c, long long ignore_index, T smoothing) {
    long long row = tg_warp_row();
    int lane = tg_lane();
    if (row >= rows) return;
    const T* x = X + row * c;
    T m = x[0];
    for (int j = lane; j < c; j += 32) m = x[j] > m ? x[j] : m;
    m = tg_warp_max(m);
    T s = 0, sx = 0;
    for (int j = lane; j < c; j += 32) { s += exp(x[j] - m); sx += x[j]; }
    s = tg_warp_sum(s);
    sx = tg_warp_sum(sx);
    if (lane == 0) {
        T lse = m + log(s);
        long long t = TARGET[row];
        T loss = 0;
        if (t != ignore_index) {  // a target out of range gives NaN here; bounds.py raises for it
            loss = t >= 0 && t < c ? -((T)1 - smoothing) * (x[t] - lse) : sqrt((T)-1);
            if (smoothing != (T)0) loss -= smoothing / c * (sx - c * lse);   // sum of log-probs
        }
        LOSS[row] = loss;
        LSE[row] = lse;
    }
}

extern "C" __global__ void ce_bwd(const T* X, const long long* TARGET, const T* LSE, const T* SCALE,
                                  T* GX, long long rows, int c, long long ignore_index, T smoothing,
                                  int scale_per_row) {
    long long row = tg_warp_row();
    int lane = tg_lane();
    if (row >= rows) return;
    long long t = TARGET[row];
    T sc = t == ignore_index ? (T)0 : SCALE[scale_per_row ? row : 0];
    T lse = LSE[row];
    for (int j = lane; j < c; j += 32) {
        T v = exp(X[row * c + j] - lse);
        if (j == t) v -= (T)1 - smoothing;
        if (smoothing != (T)0) v -= smoothing / c;
        GX[row * c + j] = v * sc;
    }
}
"""


def forward(logits, target, ignore_index, smoothing):
    """logits (rows, classes), target (rows,) int -> (per-row loss with 0 for ignored rows, lse)."""
    logits = cupy.ascontiguousarray(logits)
    target = cupy.ascontiguousarray(target, dtype=np.int64)
    rows, c = logits.shape
    loss, lse = cupy.empty((rows,), logits.dtype), cupy.empty((rows,), logits.dtype)
    launch_rows(raw_kernel(_SOURCE, "ce_fwd", logits.dtype), rows,
                (logits, target, loss, lse, np.int64(rows), np.int32(c), np.int64(ignore_index),
                 scalar(logits.dtype, smoothing)))
    return loss, lse


def backward(logits, target, lse, scale, ignore_index, smoothing):
    """scale: 0-d (the same for every row) or (rows,) array of d loss / d row-loss."""
    logits = cupy.ascontiguousarray(logits)
    target = cupy.ascontiguousarray(target, dtype=np.int64)
    rows, c = logits.shape
    per_row = scale.ndim == 1
    scale = cupy.ascontiguousarray(scale.reshape(-1), dtype=logits.dtype)  # (1,) when 0-d
    gx = cupy.empty_like(logits)
    launch_rows(raw_kernel(_SOURCE, "ce_bwd", logits.dtype), rows,
                (logits, target, lse, scale, gx, np.int64(rows), np.int32(c), np.int64(ignore_index),
                 scalar(logits.dtype, smoothing), np.int32(per_row)))
    return gx


class CrossEntropy(Function):
    name, replaces = "cross_entropy", cross_entropy.CrossEntropy

    @staticmethod
    def supports(logits, target, ignore_index, reduction, label_smoothing):
        return on_gpu(logits) and is_cuda_array(target)

    def forward(self, logits, target, ignore_index, reduction, label_smoothing):
        loss, lse = forward(logits, target, ignore_index, label_smoothing)
        self.saved = (logits, target, lse, ignore_index, label_smoothing)
        out, self.count = cross_entropy.reduced(loss, target != ignore_index, reduction)
        return out

    def backward(self, g):
        logits, target, lse, ignore_index, smoothing = self.saved
        # Per row for "none"; ce_bwd gives ignored rows 0 whatever the scale.
        return backward(logits, target, lse, cross_entropy.row_scale(g, self.count), ignore_index, smoothing), None
