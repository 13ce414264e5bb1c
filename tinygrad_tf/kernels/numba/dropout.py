"""Dropout as one Numba pass each way: y = x * keep, keep = 1 / (1 - p) where the element's
draw is kept (random.py), else 0; the backward multiplies the gradient by the same mask, drawn
again from the seed. The textbook op (ops/dropout.py) makes the uniforms as a float array, then
the mask, then the product: four passes over the elements and a mask kept for the backward;
here the mask is never an array. The elements are cut into chunks of CHUNK, each starting its
counter at its first element, so that the chunks may split over numba's threads (split=True)
with the same bits.

float32 and float64 only: 16-bit inputs are scaled in float32 by the textbook op (its comment
says why)."""
import numpy as np

from ...function import Function
from ...ops import dropout
from . import _numba
from ._numba import flat, kernel, usable
from .random import ONE, STEP, U64, dropout_bits, kept

CHUNK = 4096  # elements per counter start (the pieces a split hands to threads)


@kernel(split=True)
def _masked(x, out, seed, shift, threshold, keep):
    """out <- x * keep where the element is kept, x * 0 elsewhere (as the textbook's x * scale)."""
    n = x.size
    zero = keep * 0
    for c in _numba.prange((n + CHUNK - 1) // CHUNK):
        count = seed + (U64(c * CHUNK) + ONE) * STEP
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            out[i] = x[i] * (keep if kept(count, shift, threshold) else zero)
            count += STEP


def apply(x, p, seed, dtype):
    """x * mask / (1 - p) in `dtype` (the forward input's: its mask), the mask of `seed` over
    x's C-ordered elements."""
    out = np.empty(x.shape, dtype)
    shift, threshold = dropout_bits(dtype, p)
    _masked(flat(x, dtype), out.reshape(-1), U64(seed), shift, threshold, dtype.type(1 / (1 - p)), work=x.size)
    return out


class Dropout(Function):
    name, replaces = "dropout", dropout.Dropout

    @staticmethod
    def supports(x, p, seed):
        return isinstance(x, np.ndarray) and x.dtype in (np.float32, np.float64) and 0 <= p < 1 and usable()

    def forward(self, x, p, seed):
        self.p, self.seed, self.dtype = p, seed, x.dtype
        return apply(x, p, seed, x.dtype)

    def backward(self, g):
        return apply(g, self.p, self.seed, self.dtype)
