"""GradScaler: loss scaling for float16 training, PyTorch's algorithm, defaults and messages.

float16 cannot hold gradients much below 6e-8: they flush to zero. So the loss is multiplied
by a large scale (2**16 at first) before backward, which scales every gradient by it too, and
the gradients are divided by it again before the optimizer uses them. Too large a scale makes
some gradient overflow to inf (or NaN) instead: then the step is skipped and the scale is
multiplied by backoff_factor (halved). After growth_interval steps in a row without one, it is
multiplied by growth_factor (doubled), so it stays near the largest scale that works.

    scaler = tg.amp.GradScaler()
    for x, y in batches:
        optimizer.zero_grad()
        with tg.autocast("cuda", dtype=tg.float16):
            _, loss = model(x, y)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # optional: to clip the true gradients
        tg.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)      # unscales if not done yet; skipped if a gradient is inf/NaN
        scaler.update()

Nothing is read back to the host. The scale (float32), the growth tracker (int32: clean steps
in a row) and each optimizer's found_inf (float32: nonzero when a gradient was inf/NaN) are 0-d
arrays on the device, made once; unscale_ and update compute with array ops only and write
into them in place. So the host never waits for the GPU, and both can be captured in a CUDA
graph (cuda_graph.py), whose replays read and write that same memory. step() hands found_inf
to an optimizer whose step() takes it (Adam and AdamW: their fused kernel skips on the GPU);
for any other it reads found_inf back once, as PyTorch does for optimizers without support.
On a GPU unscale_ is one multi-tensor kernel launch per 12 gradients (kernels/cuda/unscale.py,
the "unscale" switch), the same bits as the array ops it replaces.
"""
import inspect
import warnings
import weakref
from collections import abc, defaultdict
from enum import Enum

import numpy as np

from .. import backend, kernels
from ..kernels.cuda import unscale as cuda_unscale
from ..tensor import Tensor


class OptState(Enum):
    READY, UNSCALED, STEPPED = 0, 1, 2


def _fresh_optimizer_state():
    return {"stage": OptState.READY, "found_inf": None}


class GradScaler:
    """Scales losses and unscales gradients for one training loop (see the module's docstring).

    device: "cuda" (torch's default; without a GPU the scaler disables itself, with a warning)
    or "cpu"; the scale lives where the first scale()d output is. enabled=False: scale()
    returns its input, step() just calls optimizer.step(), the rest does nothing."""

    def __init__(self, device="cuda", init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, enabled=True):
        self._device, self._enabled = device, enabled
        if device == "cuda" and enabled and not backend.cuda_available():
            warnings.warn("tg.amp.GradScaler is enabled, but CUDA is not available.  Disabling.", stacklevel=2)
            self._enabled = False
        if self._enabled and not growth_factor > 1.0:
            raise AssertionError("The growth factor must be > 1.0.")
        if self._enabled and not backoff_factor < 1.0:
            raise AssertionError("The backoff factor must be < 1.0.")
        self._init_scale, self._init_growth_tracker = init_scale, 0
        self._growth_factor, self._backoff_factor = growth_factor, backoff_factor
        self._growth_interval = growth_interval
        self._scale = self._growth_tracker = self._inv_scale = None  # made by the first scale(), on its device
        self._found_infs = weakref.WeakKeyDictionary()  # optimizer -> its found_inf, made once, reused
        self._per_optimizer_states = defaultdict(_fresh_optimizer_state)  # id(optimizer) -> this iteration's

    # --- the four calls of a training step ------------------------------------------------
    def scale(self, outputs):
        """outputs (a Tensor, or lists/tuples of them) times the scale; unchanged when disabled."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, Tensor):
            if self._scale is None:
                self._lazy_init_scale_growth_tracker(outputs.device)
            return outputs * Tensor._wrap(backend.to_device(self._scale, outputs.device))
        if isinstance(outputs, abc.Iterable):
            scaled = map(self.scale, outputs)
            return type(outputs)(scaled) if isinstance(outputs, (list, tuple)) else scaled
        raise ValueError("outputs must be a Tensor or an iterable of Tensors")

    def unscale_(self, optimizer):
        """Divide the optimizer's gradients by the scale, in place, and record in its found_inf
        whether any was inf/NaN. Once per optimizer between two update() calls."""
        if not self._enabled:
            return
        self._check_scale_growth_tracker("unscale_")
        state = self._per_optimizer_states[id(optimizer)]
        if state["stage"] is OptState.UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if state["stage"] is OptState.STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        state["found_inf"] = self._unscale_grads_(optimizer)
        state["stage"] = OptState.UNSCALED

    def step(self, optimizer, *args, **kwargs):
        """unscale_ (unless done), then optimizer.step(*args, **kwargs) unless a gradient was
        inf/NaN. Returns what optimizer.step returns; None when this call skipped it."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        self._check_scale_growth_tracker("step")
        state = self._per_optimizer_states[id(optimizer)]
        if state["stage"] is OptState.STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] is OptState.READY:
            self.unscale_(optimizer)
        found_inf = state["found_inf"]
        if found_inf is None:
            raise AssertionError("No inf checks were recorded for this optimizer.")
        if "found_inf" in inspect.signature(optimizer.step).parameters:
            retval = optimizer.step(*args, found_inf=found_inf, **kwargs)  # it skips by itself, no read back
        else:
            retval = None if bool(found_inf) else optimizer.step(*args, **kwargs)  # one read back
        state["stage"] = OptState.STEPPED
        return retval

    def update(self, new_scale=None):
        """Back off (after an inf/NaN) or grow (after growth_interval clean steps) the scale, on the
        device; or set it to new_scale (a number, or a 1-element Tensor on the scaler's device type)."""
        if not self._enabled:
            return
        scale, growth_tracker = self._check_scale_growth_tracker("update")
        if new_scale is None:
            found_infs = [s["found_inf"] for s in self._per_optimizer_states.values() if s["found_inf"] is not None]
            if not found_infs:
                raise AssertionError("No inf checks were recorded prior to update.")
            _update_scale_(scale, growth_tracker, sum(found_infs[1:], found_infs[0]),
                           self._growth_factor, self._backoff_factor, self._growth_interval)
        elif isinstance(new_scale, (int, float)) and not isinstance(new_scale, bool):
            scale.fill(new_scale)
        else:
            if not (isinstance(new_scale, Tensor) and new_scale.device.split(":")[0] == self._device.split(":")[0]
                    and new_scale.numel() == 1 and not new_scale.requires_grad):
                raise AssertionError("new_scale should be a float or a 1-element tinygrad_tf Tensor "
                                     "with requires_grad=False, on the scaler's device type.")
            backend.array_module(scale).copyto(scale, backend.to_device(new_scale.data, new_scale.device).reshape(()))
        self._per_optimizer_states = defaultdict(_fresh_optimizer_state)

    # --- getters, setters, checkpoints ------------------------------------------------------
    def found_inf(self, optimizer):
        """This step's overflow flag of `optimizer` (a 0-d device array, nonzero when the step was
        skipped), or None before its unscale_: to count skipped steps without a read back."""
        return self._per_optimizer_states[id(optimizer)]["found_inf"] if self._enabled else None

    def get_scale(self):
        """The scale as a Python float (a read back); 1.0 when disabled."""
        if not self._enabled:
            return 1.0
        return self._init_scale if self._scale is None else float(self._scale.item())

    def get_growth_factor(self):
        return self._growth_factor

    def set_growth_factor(self, new_factor):
        self._growth_factor = new_factor

    def get_backoff_factor(self):
        return self._backoff_factor

    def set_backoff_factor(self, new_factor):
        self._backoff_factor = new_factor

    def get_growth_interval(self):
        return self._growth_interval

    def set_growth_interval(self, new_interval):
        self._growth_interval = new_interval

    def _get_growth_tracker(self):
        if not self._enabled:
            return 0
        return self._init_growth_tracker if self._growth_tracker is None else int(self._growth_tracker.item())

    def is_enabled(self):
        return self._enabled

    def state_dict(self):
        """PyTorch's five entries, as Python numbers (so tg.save writes them in its JSON);
        {} when disabled. Take it after update()."""
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                "_growth_tracker": self._get_growth_tracker()}

    def load_state_dict(self, state_dict):
        """Restore state_dict()'s values, in place when the device arrays exist; nothing when disabled."""
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved "
                               "from a disabled instance of GradScaler.")
        self._init_scale = float(state_dict["scale"])
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._init_growth_tracker = int(state_dict["_growth_tracker"])
        if self._scale is not None:
            self._scale.fill(self._init_scale)
            self._growth_tracker.fill(self._init_growth_tracker)

    # --- internals ---------------------------------------------------------------------------
    def _lazy_init_scale_growth_tracker(self, device):
        self._scale = backend.to_device(np.array(self._init_scale, np.float32), device)
        self._growth_tracker = backend.to_device(np.array(self._init_growth_tracker, np.int32), device)
        self._inv_scale = backend.to_device(np.array(1.0, np.float32), device)

    def _check_scale_growth_tracker(self, funcname):
        if self._scale is None:
            raise AssertionError(f"Attempted {funcname} but _scale is None.  This may indicate your script "
                                 f"did not use scaler.scale(loss or outputs) earlier in the iteration.")
        return self._scale, self._growth_tracker

    def _unscale_grads_(self, optimizer):
        """Multiply every gradient of `optimizer` by 1/scale in place; return its found_inf, or None
        when no param has a gradient. Array ops only: nothing is read back."""
        grads = {}  # id -> array: an array that two params share is unscaled once
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if p.grad.dtype == np.float16:  # keep float32 params (and so grads) under autocast
                        raise ValueError("Attempting to unscale FP16 gradients.")
                    grads[id(p.grad.data)] = p.grad.data
        if not grads:
            return None
        here, xp = backend.device_of(self._scale), backend.array_module(self._scale)
        xp.copyto(self._inv_scale, 1.0 / self._scale.astype(np.float64))  # the reciprocal in float64, as PyTorch
        found_inf = self._found_infs.get(optimizer)
        if found_inf is None or backend.device_of(found_inf) != here:
            found_inf = self._found_infs[optimizer] = backend.to_device(np.zeros((), np.float32), here)
        found_inf.fill(0.0)
        arrays = list(grads.values())
        if kernels.enabled("unscale") and cuda_unscale.supports(arrays, self._inv_scale, found_inf):
            cuda_unscale.unscale_(arrays, self._inv_scale, found_inf)  # a launch per 12 gradients
            return found_inf
        for g in arrays:  # the textbook way: a few launches each (CuPy's stack would copy pointers from the host)
            finite = backend.to_device(backend.array_module(g).isfinite(g).all(), here)  # before unscaling, as torch
            xp.maximum(found_inf, ~finite, out=found_inf)
            g *= backend.to_device(self._inv_scale, backend.device_of(g))  # in place: the optimizer reads these
        return found_inf


def _update_scale_(scale, growth_tracker, found_inf, growth_factor, backoff_factor, growth_interval):
    """PyTorch's scale update (torch._amp_update_scale_) as array ops, written into `scale` and
    `growth_tracker` in place: the branches are xp.where, so the host reads nothing.

    An inf/NaN: scale * backoff_factor, tracker 0. Else the tracker counts one more clean step;
    on reaching growth_interval, scale * growth_factor (unless that is inf) and tracker 0.
    The products are worked out in float64 and rounded to float32 once, as PyTorch does."""
    xp = backend.array_module(scale)
    found = found_inf != 0
    successful = growth_tracker + 1
    grow = ~found & (successful == growth_interval)
    scale64 = scale.astype(np.float64)
    with np.errstate(over="ignore"):  # a growth past float32's range is expected, and refused below
        grown, backed_off = (scale64 * growth_factor).astype(np.float32), (scale64 * backoff_factor).astype(np.float32)
    xp.copyto(scale, xp.where(found, backed_off, xp.where(grow & xp.isfinite(grown), grown, scale)))
    xp.copyto(growth_tracker, xp.where(found | grow, 0, successful))
