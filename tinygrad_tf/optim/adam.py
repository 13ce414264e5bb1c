"""Adam and AdamW: one update rule, two ways to decay weights (PyTorch's exact arithmetic).

Adam adds weight_decay * p to the gradient (L2 regularisation, which the adaptive
denominator then rescales); AdamW shrinks p by (1 - lr * weight_decay) before the
update (decoupled weight decay, Loshchilov & Hutter), so AdamW is Adam with one flag.

`_update` is the textbook rule, one param at a time. With fused=True (PyTorch's name) the
step updates all of a group's params with a fused kernel, the same arithmetic bit for bit:
on a GPU the multi-tensor kernels of kernels/cuda/adam.py (a few launches in all), on the
CPU the one-pass Numba loop of kernels/numba/adam.py (when numba is installed). fused=None,
the default, does so wherever it can (float32/float64 params, the "adam" kernel switched
on, no amsgrad).

A GradScaler (amp/grad_scaler.py) calls step(found_inf=...): a 0-d float32 array on the
params' device, nonzero when a gradient held an inf or NaN. Such a step changes nothing,
and it does not count: the bias corrections use the steps taken, as in PyTorch. How each
path learns whether to skip:
- textbook (`_update`: the CPU, or fused=False): it reads found_inf back to the host once
  a step. With NumPy that is free; on a GPU it is one sync, what PyTorch's non-fused
  optimizers cost too. A skipped step makes no state and leaves the step count alone.
- the Numba kernel: as the textbook path, found_inf read back on the host.
- fused on a GPU: the kernel reads found_inf on the GPU, so the step can be captured in a CUDA
  graph. The host cannot know whether a step was skipped, so it counts every launch in
  state["step"], and the GPU counts the skipped ones in state["skipped"] (a 0-d int32);
  the kernel uses step - skipped (kernels/cuda/adam.py), and state_dict() reports that
  difference as "step" (one read back, when a checkpoint is made).
"""
from .. import backend, kernels
from ..backend import array_module
from ..kernels.cuda import adam as cuda_adam
from ..kernels.numba import adam as numba_adam
from .optimizer import Optimizer


FUSED = (cuda_adam, numba_adam)  # the fused updates, each with supports(param, grad, *moments) and update()


class Adam(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
                 *, fused=None, decoupled_weight_decay=False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, decoupled_weight_decay=decoupled_weight_decay))
        if fused not in (None, True, False):
            raise ValueError(f"fused must be None, True or False, got {fused!r}")
        if fused:
            for gi, group in enumerate(self.param_groups):
                if group["amsgrad"]:
                    raise ValueError(f"fused=True does not implement amsgrad (param group {gi}); pass fused=False")
                for i, p in enumerate(group["params"]):
                    if not any(k.supports(p.data, p.data) for k in FUSED):
                        raise ValueError(f"fused=True needs float32/float64 params on a GPU, or on the CPU with "
                                         f"numba installed (the `cpu` extra), but param {i} of param group {gi} "
                                         f"is {p.dtype} on {p.device}; pass fused=None or False")
        self.fused = fused
        self._found_inf = self._skip = None  # during step(): GradScaler's found_inf, and whether it says skip

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

    def step(self, closure=None, *, found_inf=None):
        """One update of every param that has a gradient; found_inf: see the module's docstring."""
        self._found_inf, self._skip = found_inf, None
        try:
            return super().step(closure)
        finally:
            self._found_inf = self._skip = None

    def _skipping(self):
        """Whether the textbook path skips this step: found_inf read back, once a step."""
        if self._skip is None:
            self._skip = self._found_inf is not None and bool(self._found_inf)
        return self._skip

    def _step_group(self, group, params):
        """The textbook _update per param, except those a fused kernel takes: all of those with
        the same kernel, device, dtype and step count in one update() call."""
        batches = {}
        for p in params:
            state = self.state.setdefault(p, {})
            fused = self._fused(p, state, group)
            on_gpu = fused is cuda_adam  # skips on the GPU; the others read found_inf back
            if not on_gpu and self._skipping():
                continue
            if not state:
                zeros = array_module(p.data).zeros_like
                state.update(step=0, exp_avg=zeros(p.data), exp_avg_sq=zeros(p.data))
                if group["amsgrad"]:
                    state["max_exp_avg_sq"] = zeros(p.data)
            if "skipped" in state and not (on_gpu and self._found_inf is not None):
                state["step"] -= int(state.pop("skipped"))  # scaled fused steps before this one: fold them in
            if fused is None:
                self._update(p.data, p.grad.data, state, group)
                continue
            state["step"] += 1
            if on_gpu and self._found_inf is not None and "skipped" not in state:
                state["skipped"] = array_module(p.data).zeros((), "int32")
            batches.setdefault((fused, p.device, p.dtype, state["step"]), []).append((p, state))
        for (fused, device, _, step), batch in batches.items():
            beta1, beta2 = (float(b) for b in group["betas"])
            scaler = {}
            if fused is cuda_adam and self._found_inf is not None:
                scaler = dict(found_inf=backend.to_device(self._found_inf, device).astype("float32", copy=False),
                              skipped=[s["skipped"] for _, s in batch])
            fused.update([p.data for p, _ in batch], [p.grad.data for p, _ in batch],
                         [s["exp_avg"] for _, s in batch], [s["exp_avg_sq"] for _, s in batch],
                         lr=float(group["lr"]), beta1=beta1, beta2=beta2, eps=float(group["eps"]),
                         weight_decay=float(group["weight_decay"]),
                         decoupled=group["decoupled_weight_decay"], step=step, **scaler)

    def _fused(self, p, state, group):
        """The fused kernel module (FUSED) that takes p's update, or None for the textbook one."""
        if self.fused is False or (self.fused is None and (group["amsgrad"] or not kernels.enabled("adam"))):
            return None
        moments = [state[k] for k in ("exp_avg", "exp_avg_sq") if k in state]
        return next((k for k in FUSED if k.supports(p.data, p.grad.data, *moments)), None)

    def state_dict(self):
        """Optimizer.state_dict, with each param's "step" the steps it took: a fused step that a
        GradScaler skipped is taken off here (see the module's docstring)."""
        saved = super().state_dict()
        for s in saved["state"].values():
            if "skipped" in s:
                s["step"] -= int(s.pop("skipped").item())
        return saved

    def _update(self, param, grad, state, group):
        """One step of one param: param in place, the moments in `state` replaced."""
        # Python floats keep float32 arrays float32; a NumPy float64 would promote them.
        xp = array_module(param)
        lr, eps, weight_decay = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        state["step"] += 1
        step = state["step"]
        if weight_decay and group["decoupled_weight_decay"]:
            param *= 1 - lr * weight_decay                     # AdamW: shrink the weights
        elif weight_decay:
            grad = grad + weight_decay * param                 # Adam: L2 in the gradient
        m = state["exp_avg"] = beta1 * state["exp_avg"] + (1 - beta1) * grad             # 1st moment
        v = state["exp_avg_sq"] = beta2 * state["exp_avg_sq"] + (1 - beta2) * (grad * grad)  # 2nd
        if group["amsgrad"]:
            v = state["max_exp_avg_sq"] = xp.maximum(state["max_exp_avg_sq"], v)
        # The bias corrections of m and v, with eps added after (PyTorch's placement):
        denom = xp.sqrt(v) / (1 - beta2 ** step) ** 0.5 + eps
        param -= lr / (1 - beta1 ** step) * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay, default 1e-2, as in PyTorch."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, fused=fused, decoupled_weight_decay=True)
