"""Function: the unit of differentiation.

An op subclasses Function and writes `forward(*args)` and `backward(grad)` on raw
backend arrays, side by side. `forward` stores what backward needs on `self` (the
context); `backward` returns one gradient per argument (None where there is none).
Non-Tensor arguments (Python numbers, axes) are passed through as constants.
"""
import numpy as np

from . import autograd


def _Tensor():
    """tensor.Tensor (imported late: tensor.py imports the ops, which import this module)."""
    from .tensor import Tensor
    return Tensor


class Function:
    is_leaf_node = False
    # Defaults on the class: a node is built for every op, so __init__ sets nothing.
    parents = input_shapes = needs_grad = ()
    retained = None
    released = False

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    @property
    def hooks(self):
        if "_hooks" not in vars(self):
            self._hooks = []
        return self._hooks

    @classmethod
    def apply(cls, *args, **kwargs):
        fn, Tensor = cls(), _Tensor()
        record = autograd.is_grad_enabled()
        raw, needs = [], []
        for a in args:
            is_tensor = isinstance(a, Tensor)
            raw.append(a.data if is_tensor else a)
            needs.append(is_tensor and record and a._requires_grad)
        data = fn.forward(*raw, **kwargs)
        if isinstance(data, np.generic):  # NumPy reductions give scalars; .data is always an array
            data = np.asarray(data)
        if not any(needs):
            return Tensor._wrap(data)
        fn.needs_grad = tuple(needs)
        fn.parents = tuple(a._grad_node() if isinstance(a, Tensor) else None for a in args)
        fn.input_shapes = tuple(a.shape if isinstance(a, Tensor) else None for a in args)
        return Tensor._wrap(data, fn)

    def run_output_hooks(self, grad, tensor_cls):
        """Hooks registered on this op's output tensor, then retain_grad."""
        for hook in vars(self).get("_hooks", ()):
            out = hook(tensor_cls._wrap(grad))
            if out is not None:
                grad = out.data
        if self.retained is not None:
            t = self.retained()
            if t is not None:
                t._accumulate(grad)
        return grad

    def release(self):
        """Drop everything saved for backward (called after backward, as in PyTorch)."""
        keep = ("parents", "input_shapes", "_hooks", "retained", "released", "needs_grad")
        for name in [k for k in vars(self) if k not in keep]:
            delattr(self, name)
        self.released = True
