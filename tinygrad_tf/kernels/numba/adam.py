"""Adam/AdamW's update as a Numba loop: one pass over each param, where the textbook update
(Adam._update in optim/adam.py) makes about ten NumPy passes and allocates the new moments.
A big param's pass splits over numba's threads (split=True; each element's update is its own).

update() takes all of a group's params of one dtype and step count at once, for the optimizer
to call in place of its per-param textbook update (as it calls kernels/cuda/adam.py on the
GPU). The arithmetic is the textbook update's, operation for operation: the scalars are
worked out in Python and rounded to the params' dtype once, as NumPy rounds a Python float
against a float32 array, and every operation is rounded once (fastmath=False: no fused
multiply-adds), so the two agree bit for bit (check.py checks it)."""
import numpy as np

from . import _numba
from ._numba import kernel, usable


@kernel(split=True)
def _update(param, grad, exp_avg, exp_avg_sq, l2, decay, beta1, one_minus_beta1, beta2, one_minus_beta2,
            sqrt_bias_correction2, eps, step_size):
    for i in _numba.prange(param.size):
        g, p = grad[i], param[i]
        if l2 != 0:
            g = g + l2 * p                                     # Adam: L2 in the gradient
        if decay != 1:
            p = p * decay                                      # AdamW: shrink the weights
        m = beta1 * exp_avg[i] + one_minus_beta1 * g           # 1st moment
        v = beta2 * exp_avg_sq[i] + one_minus_beta2 * (g * g)  # 2nd
        param[i] = p - step_size * (m / (np.sqrt(v) / sqrt_bias_correction2 + eps))
        exp_avg[i], exp_avg_sq[i] = m, v


def supports(param, grad, *state):
    """NumPy float32/float64 arrays of one dtype and shape, C-contiguous (the loop indexes them flat)."""
    arrays = (param, grad) + state
    return (isinstance(param, np.ndarray) and param.dtype in (np.float32, np.float64)
            and all(isinstance(a, np.ndarray) and a.dtype == param.dtype and a.shape == param.shape
                    and a.flags.c_contiguous for a in arrays) and usable())


def update(params, grads, exp_avgs, exp_avg_sqs, *, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """One Adam/AdamW step of every param (one dtype, the same hyperparameters and step count), in
    place: param, exp_avg and exp_avg_sq are overwritten. decoupled: AdamW's weight decay."""
    t = params[0].dtype.type
    l2 = weight_decay if weight_decay and not decoupled else 0.0
    decay = 1 - lr * weight_decay if weight_decay and decoupled else 1.0
    scalars = (t(l2), t(decay), t(beta1), t(1 - beta1), t(beta2), t(1 - beta2), t((1 - beta2 ** step) ** 0.5),
               t(eps), t(lr / (1 - beta1 ** step)))
    for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs):
        _update(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), *scalars, work=p.size)
