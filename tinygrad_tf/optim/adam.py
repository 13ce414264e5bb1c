"""Adam and AdamW: one update rule, two ways to decay weights (PyTorch's exact arithmetic).

Adam adds weight_decay * p to the gradient (L2 regularisation, which the adaptive
denominator then rescales); AdamW shrinks p by (1 - lr * weight_decay) before the
update (decoupled weight decay, Loshchilov & Hutter), so AdamW is Adam with one flag.
"""
from .. import backend, kernels
from .optimizer import Optimizer


class Adam(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
                 *, decoupled_weight_decay=False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, decoupled_weight_decay=decoupled_weight_decay))

    def _validate(self, hp):
        if not hp["lr"] >= 0.0:
            raise ValueError(f"Invalid learning rate: {hp['lr']} (expected lr >= 0)")
        if not hp["eps"] >= 0.0:
            raise ValueError(f"Invalid epsilon value: {hp['eps']} (expected eps >= 0)")
        if len(hp["betas"]) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {hp['betas']!r}")
        for i, beta in enumerate(hp["betas"]):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta} (expected 0 <= beta < 1)")
        if not hp["weight_decay"] >= 0.0:
            raise ValueError(f"Invalid weight_decay value: {hp['weight_decay']} (expected weight_decay >= 0)")

    def step(self, closure=None):
        try:
            return super().step(closure)
        finally:  # the GPU params that _update queued; also when a later param raised, as on the CPU
            kernels.adam.flush()

    def _update(self, param, grad, state, group):
        xp = backend.array_module(param)
        # Python floats keep float32 params float32 (NEP 50); a NumPy float64 would promote
        lr, eps, weight_decay = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(param)
            state["exp_avg_sq"] = xp.zeros_like(param)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(param)
        state["step"] += 1
        step, exp_avg, exp_avg_sq = state["step"], state["exp_avg"], state["exp_avg_sq"]
        if kernels.use("adam", param) and not group["amsgrad"] and kernels.adam.supports(
                param, grad, exp_avg, exp_avg_sq):
            # GPU: everything below, for all params at once in step() (kernels/adam.py, same arithmetic)
            kernels.adam.queue(param, grad, exp_avg, exp_avg_sq, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                               weight_decay=weight_decay, decoupled=group["decoupled_weight_decay"], step=step)
            return

        if weight_decay != 0:
            if group["decoupled_weight_decay"]:
                param *= 1 - lr * weight_decay
            else:
                grad = grad + weight_decay * param  # a new array: grad itself is never written to

        # Everything below is in place on arrays this optimizer owns (the state, one scratch
        # array `tmp`, and p.data): one allocation per param per step instead of one per
        # operation, and float32 state stays float32 (out= and in-place ops keep the dtype).
        tmp = xp.multiply(grad, 1 - beta1)
        exp_avg *= beta1
        exp_avg += tmp                            # exp_avg = beta1 * exp_avg + (1 - beta1) * g
        xp.multiply(grad, grad, out=tmp)
        tmp *= 1 - beta2
        exp_avg_sq *= beta2
        exp_avg_sq += tmp                         # exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g^2
        if group["amsgrad"]:
            second = state["max_exp_avg_sq"]
            xp.maximum(second, exp_avg_sq, out=second)
        else:
            second = exp_avg_sq

        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        step_size = lr / bias_correction1
        xp.sqrt(second, out=tmp)
        tmp /= bias_correction2 ** 0.5
        tmp += eps                                # denom = sqrt(v) / sqrt(bc2) + eps (eps after, as PyTorch)
        xp.divide(exp_avg, tmp, out=tmp)
        tmp *= step_size
        param -= tmp                              # p -= step_size * exp_avg / denom


class AdamW(Adam):
    """Adam with decoupled weight decay, default 1e-2, as in PyTorch."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, decoupled_weight_decay=True)
