"""Gradient utilities (torch.nn.utils)."""
import math

from .. import backend
from ..tensor import Tensor


def _unique_grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    params, seen = [], set()
    for p in parameters:
        if id(p) not in seen:  # a parameter listed twice is counted and scaled once
            seen.add(id(p))
            params.append(p)
    return [p for p in params if p.grad is not None]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients together so that their joint norm is at most max_norm.

    The total norm is that of the vector of all gradient entries, computed on the
    parameters' device without a host sync; grads are scaled by
    min(1, max_norm / (total + 1e-6)). Returns the total norm (before clipping) as a
    0-d Tensor. Each .grad is replaced, never scaled in place, because backward may
    share one array between several gradients."""
    norm_type = float(norm_type)
    if not (norm_type > 0):
        raise ValueError(f"norm_type must be positive or inf, got {norm_type}")
    if not max_norm >= 0:
        raise ValueError(f"max_norm must be non-negative, got {max_norm}")
    params = _unique_grads(parameters)
    if not params:
        return Tensor(0.0)
    device = params[0].grad.device
    norms = []
    for p in params:
        g = p.grad.data
        if g.dtype == backend.float16:  # its squares overflow past 256
            g = g.astype(backend.float32)
        xp = backend.array_module(g)
        norms.append(backend.to_device(xp.asarray(xp.linalg.norm(g.reshape(-1), ord=norm_type)), device))
    xp = backend.array_module(norms[0])
    total = xp.linalg.norm(xp.stack(norms), ord=norm_type)
    if error_if_nonfinite and not math.isfinite(float(total)):
        raise RuntimeError(f"the total norm of order {norm_type} of the gradients is non-finite ({float(total)}), "
                           f"so it cannot be clipped; pass error_if_nonfinite=False to scale them anyway")
    scale = xp.minimum(max_norm / (total + 1e-6), 1.0)
    for p in params:
        g = p.grad.data
        p.grad = Tensor._wrap(g * backend.to_device(scale, p.grad.device).astype(g.dtype))
    return Tensor._wrap(total)
