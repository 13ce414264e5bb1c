"""Function: the unit of differentiation.

An op subclasses Function and writes `forward(*args)` and `backward(grad)` on raw
backend arrays, side by side. `forward` stores what backward needs on `self` (the
context); `backward` returns one gradient per argument (None where there is none).
Non-Tensor arguments (Python numbers, axes) are passed through as constants.
"""
import numpy as np

from . import autograd


class Function:
    is_leaf_node = False

    def __init__(self):
        self.parents = ()
        self.input_shapes = ()
        self.hooks = []
        self.retained = None
        self.released = False

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        from .tensor import Tensor

        fn = cls()
        fn.needs_grad = tuple(isinstance(a, Tensor) and a._requires_grad for a in args) \
            if autograd.is_grad_enabled() else ()
        data = fn.forward(*(a.data if isinstance(a, Tensor) else a for a in args), **kwargs)
        if isinstance(data, np.generic):  # NumPy reductions give scalars; .data is always an array
            data = np.asarray(data)
        if not any(fn.needs_grad):
            return Tensor._wrap(data)
        fn.parents = tuple(a._grad_node() if isinstance(a, Tensor) else None for a in args)
        fn.input_shapes = tuple(a.shape if isinstance(a, Tensor) else None for a in args)
        return Tensor._wrap(data, fn)

    def run_output_hooks(self, grad, tensor_cls):
        """Hooks registered on this op's output tensor, then retain_grad."""
        for hook in self.hooks:
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
        keep = ("parents", "input_shapes", "hooks", "retained", "released", "needs_grad")
        for name in [k for k in vars(self) if k not in keep]:
            delattr(self, name)
        self.released = True
