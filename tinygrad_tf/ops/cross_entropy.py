"""Cross-entropy of logits (N, C) against class indices (N,), with label smoothing."""
import numpy as np

from ..backend import array_module
from ..function import Function


def reduced(loss, valid, reduction):
    """The rows' losses reduced as `reduction` asks, and the mean's divisor (the count of targets
    not ignored; None for "none" and "sum"). The fused twins reduce with it too."""
    if reduction == "none":
        return loss, None
    if reduction == "sum":
        return loss.sum(), None
    count = valid.sum(dtype=loss.dtype)
    with np.errstate(invalid="ignore"):  # 0 / 0 when every target is ignored: nan, as PyTorch, and no warning
        return loss.sum() / count, count


def row_scale(g, count):
    """The gradient of each row's loss: g, or g / count for the mean (every target ignored: count
    0, and a divisor of 1 keeps the rows' gradients 0, not nan, as PyTorch)."""
    return g if count is None else g / array_module(g).maximum(count, 1)


class CrossEntropy(Function):
    """loss_i = -sum_c q_ic log p_ic, with p_i = softmax(logits_i) and the target distribution
    q_i = (1 - s) onehot(t_i) + s / C (s: label_smoothing). Rows whose target is ignore_index
    have loss 0 and do not count in the mean."""
    reads = ()

    def forward(self, logits, target, ignore_index, reduction, label_smoothing):
        xp = array_module(logits)
        n, c = logits.shape
        shifted = logits - logits.max(axis=1, keepdims=True)  # max-shift: no overflow in exp
        logp = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        self.valid = target != ignore_index
        self.target = xp.where(self.valid, target, 0)  # any class for ignored rows: their loss is zeroed
        picked = logp[xp.arange(n), self.target]
        loss = (-(1 - label_smoothing) * picked - (label_smoothing / c) * logp.sum(axis=1)) * self.valid
        self.p, self.smoothing = xp.exp(logp), label_smoothing
        out, self.count = reduced(loss, self.valid, reduction)
        return out

    def backward(self, g):
        # d loss_i / d logits_i = p_i - q_i: the softmax minus the target distribution.
        xp = array_module(g)
        n, c = self.p.shape
        q = xp.full((n, c), self.smoothing / c, dtype=self.p.dtype)
        q[xp.arange(n), self.target] += 1 - self.smoothing
        return (self.p - q) * (self.valid * row_scale(g, self.count))[:, None], None
