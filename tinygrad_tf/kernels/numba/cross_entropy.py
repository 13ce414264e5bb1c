"""Cross-entropy as one Numba loop over rows: a row's max, its sum of exponentials, its loss and
its gradient (softmax minus the target distribution) in one visit, where the textbook op makes
about eight passes over (rows, classes) arrays. The forward keeps that gradient, zero for
ignored rows, so that backward only scales it: one multiplication.

Each exp is taken once: p = exp(x - max) / sum, where the textbook op takes exp(log p); the
two agree to rounding. The exp is attention.py's (exp_shifted: a polynomial within 1 ulp,
vectorized), not libm's call per element, and the row sums run in float64 in a helper whose
additions LLVM may reorder to vectorize them (_numba.py, reorder_sums): 768 x 65 float32 (the
cpu preset's logits) 260 -> 105 us. A target that is neither a class nor ignore_index gives
a NaN loss and gradient row where the textbook op raises or wraps around; F.cross_entropy
raises IndexError for it before any op runs. Rows are independent: split=True (_numba.py)."""
import numpy as np

from ...function import Function
from ...ops import cross_entropy
from . import _numba
from ._numba import kernel, usable
from .attention import exp_shifted



@kernel(reorder_sums=True)
def _sum(a):
    """a summed in float64."""
    s = 0.0
    for j in range(a.size):
        s += a[j]
    return s


@kernel(split=True)
def _forward(logits, target, ignore_index, smoothing, loss, dlogits):
    n, c = logits.shape
    uniform = smoothing / c  # the target distribution: smoothing / c everywhere, 1 - smoothing more at the target
    single = logits.itemsize == 4  # float32
    zero = logits.dtype.type(0)
    for r in _numba.prange(n):
        row, d_row = logits[r], dlogits[r]
        top = row[0]
        for j in range(1, c):
            top = max(top, row[j])  # a NaN row stays NaN below, through its exponentials
        for j in range(c):  # (loops, not d_row[:] = ...: numba compiles shape-error formatting for those, ~5 s)
            d_row[j] = row[j]
        exp_shifted(d_row, top, c, single, zero)  # max-shift: no overflow in exp
        total = _sum(d_row)
        shifted_sum = _sum(row) - c * np.float64(top)
        t = target[r]
        if t == ignore_index:
            loss[r] = 0.0
            for j in range(c):
                d_row[j] = 0.0
            continue
        log_total = np.log(total)
        if t < 0 or t >= c:
            loss[r] = np.nan
            for j in range(c):
                d_row[j] = np.nan
            continue
        picked = row[t] - top - log_total  # log p of the target
        loss[r] = -(1.0 - smoothing) * picked - uniform * (shifted_sum - c * log_total)
        inverse = 1.0 / total
        for j in range(c):
            d_row[j] = d_row[j] * inverse - uniform
        d_row[t] -= 1.0 - smoothing


class CrossEntropy(Function):
    name, replaces = "cross_entropy", cross_entropy.CrossEntropy

    @staticmethod
    def supports(logits, target, ignore_index, reduction, label_smoothing):
        return (isinstance(logits, np.ndarray) and logits.dtype in (np.float32, np.float64) and logits.ndim == 2
                and logits.shape[1] > 0 and isinstance(target, np.ndarray) and target.dtype.kind in "iu" and usable())

    def forward(self, logits, target, ignore_index, reduction, label_smoothing):
        loss, self.dlogits = np.empty(logits.shape[0], logits.dtype), np.empty(logits.shape, logits.dtype)
        _forward(np.ascontiguousarray(logits), np.ascontiguousarray(target, np.int64), int(ignore_index),
                 float(label_smoothing), loss, self.dlogits, work=logits.size)
        out, self.count = cross_entropy.reduced(loss, target != ignore_index, reduction)
        return out

    def backward(self, g):
        scale = cross_entropy.row_scale(g, self.count)  # per row for "none"
        return self.dlogits * (scale[:, None] if scale.ndim else scale), None
