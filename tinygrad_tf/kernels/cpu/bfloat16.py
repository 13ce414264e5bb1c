"""bfloat16 on the CPU: a textbook op run in float32 on NumPy arrays, its results rounded to bfloat16.

NumPy has no bfloat16; ml_dtypes' gives the arrays, but its ufuncs answer a Python float with
float32 (0.5 * x is float32), np.where with float64, and its matmul has no BLAS behind it.
PyTorch's CPU kernels compute bfloat16 in float32 and round each result once (their "opmath"
type), and so does this: the op's bfloat16 inputs go up to float32, and its float output and
the gradients of its bfloat16 inputs come back as bfloat16. Ops that only move data (views,
slices, cat, casts, device moves, writes in place) run on the bfloat16 arrays as they are.
"""
import functools

import numpy as np

from ... import backend
from ...ops import movement as V

MOVES_DATA = frozenset({V.Reshape, V.Permute, V.Expand, V.GetItem, V.Cat, V.SetItem, V.Clone, V.Cast, V.ToDevice})


def takes(op, args):
    """Whether `op` on `args` is arithmetic on a NumPy bfloat16 array."""
    bf16 = backend.bfloat16_or_none()
    return bf16 is not None and op not in MOVES_DATA and any(
        isinstance(a, np.ndarray) and a.dtype == bf16 for a in args)


@functools.cache  # one subclass per op class, made on its first bfloat16 call
def in_float32(op):
    """`op` computing in float32 on its bfloat16 inputs (see the module's docstring)."""

    class InFloat32(op):
        def forward(self, *args, **kwargs):
            bf16 = backend.bfloat16()
            self.rounded = tuple(isinstance(a, np.ndarray) and a.dtype == bf16 for a in args)
            out = super().forward(*(a.astype(np.float32) if r else a for a, r in zip(args, self.rounded)), **kwargs)
            return out.astype(bf16) if backend.is_floating(out.dtype) else out

        def backward(self, g):
            rounded, grads = self.rounded, super().backward(g.astype(np.float32))
            grads = grads if isinstance(grads, tuple) else (grads,)
            return tuple(None if gr is None else gr.astype(backend.bfloat16()) if r else gr
                         for gr, r in zip(grads, rounded))

    InFloat32.__name__ = InFloat32.__qualname__ = op.__name__
    return InFloat32
