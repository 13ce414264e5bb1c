"""Dropout as one elementwise kernel: y = x * (u >= p) / (1 - p), u = hash(seed, index).

Forward and backward are the same kernel (the gradient is masked and scaled exactly as
the input was), so nothing but the seed is kept between them: no mask array, and no
separate random-number pass. The mask hashes seed + shift, a device word (random.shift)
that is zero outside a CUDA graph, so eagerly it is the textbook op's mask bit for bit."""
import numpy as np

from ...backend import cupy
from ...function import Function
from ...ops import dropout
from ._cuda import accumulator, elementwise, scalar, stored_on_gpu
from .random import keep_scale, shift

_kernel = elementwise("tg_dropout", ("x",), "unsigned long long seed, const unsigned long long* shift, A p, A scale",
                      "tg_uniform<A>(seed + *shift, (unsigned long long)i) >= p ? x * scale : (A)0")


def apply(x, p, seed):
    """x * mask / (1 - p), with the mask of `seed` over x's C-ordered elements."""
    math = accumulator(x.dtype)  # float32 for float16/bfloat16, as the textbook op draws and scales
    return _kernel(cupy.ascontiguousarray(x), np.uint64(seed), shift(x.device.id), scalar(math, p), keep_scale(p, math))


class Dropout(Function):
    name, replaces = "dropout", dropout.Dropout
    takes_16_bit = True  # float16/bfloat16, computed in float32 (check.py's 16-bit rows)

    @staticmethod
    def supports(x, p, seed):
        return stored_on_gpu(x)

    def forward(self, x, p, seed):
        self.p, self.seed = p, seed
        return apply(x, p, seed)

    def backward(self, g):
        return apply(g, self.p, self.seed)
