"""16-bit floats on textbook ops: the op runs in float32 and its results are rounded once.

PyTorch computes float16 and bfloat16 ops in float32 and rounds each result to 16 bits (its
"opmath" type), and so does this, for any textbook op on either device that dispatch gives a
float16 or bfloat16 array: those inputs go up to float32, and the op's float output and the
gradients of those inputs come back in their 16-bit dtypes. It matters most for bfloat16,
which NumPy and CuPy only have through ml_dtypes: its ufuncs answer a Python float with float32
(0.5 * x is float32), np.where with float64, and its matmul has no BLAS behind it. The fused
kernels do the same arithmetic in their own loops (kernels/cuda/_cuda.py: A, the math type).
Ops that only move data (views, slices, cat, casts, device moves, writes in place) run on the
16-bit arrays as they are.
"""
import functools

import numpy as np

from .. import backend
from ..ops import movement as V

MOVES_DATA = frozenset({V.Reshape, V.Permute, V.Expand, V.GetItem, V.Cat, V.SetItem, V.Clone, V.Cast, V.ToDevice})


def _sixteen_bit(a):
    return (isinstance(a, np.ndarray) or backend.is_cuda_array(a)) and a.dtype.itemsize == 2 and \
        backend.is_floating(a.dtype)


def takes(op, args):
    """Whether `op` on `args` is arithmetic on a float16 or bfloat16 array."""
    return op not in MOVES_DATA and any(_sixteen_bit(a) for a in args)


@functools.cache  # one subclass per op class, made on its first 16-bit call
def in_float32(op):
    """`op` computing in float32 on its 16-bit inputs (see the module's docstring)."""

    class InFloat32(op):
        def forward(self, *args, **kwargs):
            self.dtypes = tuple(a.dtype if _sixteen_bit(a) else None for a in args)
            out = super().forward(*(a if d is None else a.astype(np.float32) for a, d in zip(args, self.dtypes)),
                                  **kwargs)
            low = next(d for d in self.dtypes if d is not None)
            return out.astype(low) if backend.is_floating(out.dtype) else out

        def backward(self, g):
            dtypes, grads = self.dtypes, super().backward(g.astype(np.float32))
            grads = grads if isinstance(grads, tuple) else (grads,)
            return tuple(gr if gr is None or d is None else gr.astype(d) for gr, d in zip(grads, dtypes))

    InFloat32.__name__ = InFloat32.__qualname__ = op.__name__
    return InFloat32
