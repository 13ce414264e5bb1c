"""Compare a backward pass against central finite differences, in float64.

Checking the full Jacobian costs one backward per output element; instead we
check the gradient of a random projection sum(fn(x) * v), which is wrong for
almost every v whenever any Jacobian entry is wrong, at one backward in all.
"""
import numpy as np

from . import backend
from .grad_mode import enable_grad, no_grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Analytic and numeric gradients disagree; the message names where and by how much."""


def _projected(fn, inputs, weights):
    out = fn(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    total = 0.0
    for o, w in zip(outs, weights):
        total = total + (o * Tensor._wrap(w)).sum()
    return total


def _output_weights(fn, inputs, seed):
    out = fn(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    rng = np.random.default_rng([seed, 0x6772])  # its own stream, never the one tg.manual_seed(seed) gives
    ws = []
    for o in outs:
        if not isinstance(o, Tensor) or not backend.is_floating(o.dtype):
            raise TypeError(f"gradcheck: fn must return float tensors, got {type(o).__name__}"
                            f"{'' if not isinstance(o, Tensor) else ' of dtype ' + str(o.dtype)}")
        ws.append(backend.to_device(rng.standard_normal(o.shape), o.device).astype(o.dtype))
    return ws


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """True if every input's gradient matches finite differences, else GradcheckError.

    Inputs that require grad must be float64 (gradcheck says so rather than silently
    checking a different tensor than the one the function uses); others are constants.
    """
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad; nothing to check")
    for i in checked:
        if inputs[i].dtype != backend.float64:
            raise TypeError(f"gradcheck: input {i} has dtype {inputs[i].dtype}; gradcheck runs in "
                            f"float64, so pass float64 tensors (e.g. x.double().detach())")
    saved_grads = [inputs[i].grad for i in checked]
    with enable_grad():
        weights = _output_weights(fn, inputs, seed)
        for i in checked:
            inputs[i].grad = None
        _projected(fn, inputs, weights).backward()
    try:
        _compare(fn, inputs, checked, weights, eps, atol, rtol)
    finally:
        for i, g in zip(checked, saved_grads):
            inputs[i].grad = g
    return True


def _compare(fn, inputs, checked, weights, eps, atol, rtol):
    for i in checked:
        t = inputs[i]
        analytic = np.zeros(t.shape) if t.grad is None else backend.to_numpy(t.grad.data)
        numeric = np.zeros(t.shape)
        for j in range(t.numel()):
            idx = np.unravel_index(j, t.shape)
            orig = t.data[idx].item()
            for sign in (1, -1):
                t.data[idx] = orig + sign * eps
                with no_grad():
                    value = _projected(fn, inputs, weights).item()
                numeric[idx] += sign * value / (2 * eps)
            t.data[idx] = orig
        err = np.abs(analytic - numeric)
        bad = err > atol + rtol * np.abs(numeric)
        if bad.any():
            worst = np.unravel_index(np.argmax(np.where(bad, err, -1)), t.shape) if t.ndim else ()
            a, n = analytic[worst], numeric[worst]
            raise GradcheckError(
                f"gradcheck failed for input {i} (shape {t.shape}) at index {tuple(int(k) for k in worst)}: "
                f"analytic {a:.10g}, numeric {n:.10g}, abs error {abs(a - n):.3g}, rel error "
                f"{abs(a - n) / max(abs(n), 1e-300):.3g} (atol={atol}, rtol={rtol}); "
                f"{int(bad.sum())} of {t.numel()} elements out of tolerance")
