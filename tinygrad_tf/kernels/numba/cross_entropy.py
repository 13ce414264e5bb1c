"""Cross-entropy as one Numba loop over rows: a row's max, its sum of exponentials, its loss and
its gradient (softmax minus the target distribution) in one visit, where the textbook op makes
about eight passes over (rows, classes) arrays. The forward keeps that gradient, zero for
ignored rows, so that backward only scales it: one multiplication.

Each exp is taken once: p = exp(x - max) / sum, where the textbook op takes exp(log p); the
two agree to rounding. A target that is neither a class nor ignore_index gives a NaN loss and
gradient row where the textbook op raises or wraps around; F.cross_entropy raises IndexError
for it before any op runs."""
import numpy as np

from ...function import Function
from ...ops import cross_entropy
from ._numba import kernel, usable


@kernel()
def _forward(logits, target, ignore_index, smoothing, loss, dlogits):
    n, c = logits.shape
    uniform = smoothing / c  # the target distribution: smoothing / c everywhere, 1 - smoothing more at the target
    for r in range(n):
        top = logits[r, 0]
        for j in range(1, c):
            top = max(top, logits[r, j])  # a NaN row stays NaN below, through its exponentials
        total = shifted_sum = 0.0
        for j in range(c):
            shifted = logits[r, j] - top  # max-shift: no overflow in exp
            e = np.exp(shifted)
            dlogits[r, j] = e
            total += e
            shifted_sum += shifted
        t = target[r]
        if t == ignore_index:
            loss[r] = 0.0
            dlogits[r, :] = 0.0
            continue
        log_total = np.log(total)
        if t < 0 or t >= c:
            loss[r] = np.nan
            dlogits[r, :] = np.nan
            continue
        picked = logits[r, t] - top - log_total  # log p of the target
        loss[r] = -(1.0 - smoothing) * picked - uniform * (shifted_sum - c * log_total)
        inverse = 1.0 / total
        for j in range(c):
            dlogits[r, j] = dlogits[r, j] * inverse - uniform
        dlogits[r, t] -= 1.0 - smoothing


class CrossEntropy(Function):
    name, replaces = "cross_entropy", cross_entropy.CrossEntropy

    @staticmethod
    def supports(logits, target, ignore_index, reduction, label_smoothing):
        return (isinstance(logits, np.ndarray) and logits.dtype in (np.float32, np.float64) and logits.ndim == 2
                and logits.shape[1] > 0 and isinstance(target, np.ndarray) and target.dtype.kind in "iu" and usable())

    def forward(self, logits, target, ignore_index, reduction, label_smoothing):
        loss, self.dlogits = np.empty(logits.shape[0], logits.dtype), np.empty(logits.shape, logits.dtype)
        _forward(np.ascontiguousarray(logits), np.ascontiguousarray(target, np.int64), int(ignore_index),
                 float(label_smoothing), loss, self.dlogits)
        self.reduction = reduction
        if reduction == "none":
            return loss
        if reduction == "sum":
            return loss.sum()
        self.count = (target != ignore_index).sum(dtype=logits.dtype)
        return loss.sum() / self.count  # nan when every target is ignored, as PyTorch

    def backward(self, g):
        if self.reduction == "none":
            return self.dlogits * g[:, None], None
        # Every target ignored: count 0, the rows are 0, and the divisor 1 keeps nan out, as in the textbook op.
        return self.dlogits * (g / np.maximum(self.count, 1) if self.reduction == "mean" else g), None
