"""ops/random.py's counter-based draw in Numba's uint64 arithmetic, for the kernels that drop
out (dropout.py, attention.py): the same hash of seed + (i + 1) * golden for element i, so the
same masks as the textbook ops, bit for bit, and nothing kept between forward and backward
but the seed.

An element is kept where u >= p, u = (hash >> (64 - bits)) * 2^-bits of the dtype (24 bits in
float32, 53 in float64). That compare is made exactly on the integers:
(hash >> shift) >= threshold, threshold = ceil(p * 2^bits), with p taken at the dtype NumPy
compares u and p in (a Python float against float32 uniforms: float32)."""
import math

import numpy as np

from ...ops.random import GOLDEN, MIX1, MIX2
from ._numba import kernel

U64 = np.uint64
STEP, ONE = U64(GOLDEN), U64(1)  # the counter's step from one element to the next; element i's counter is (i + 1) steps
_MIX1, _MIX2, _S27, _S30, _S31 = U64(MIX1), U64(MIX2), U64(27), U64(30), U64(31)


@kernel()
def kept(count, shift, threshold):
    """Whether the element whose counter is `count` (seed + (i + 1) * golden) is kept."""
    z = (count ^ (count >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    z = z ^ (z >> _S31)
    return (z >> shift) >= threshold


def dropout_bits(dtype, p):
    """(shift, threshold) for kept(): u >= p as NumPy compares them (u of `dtype`; p a Python
    float is taken at that dtype, a NumPy float64 at float64)."""
    bits = 24 if dtype == np.float32 else 53
    at = np.result_type(np.empty(0, dtype), p).type(p)
    return U64(64 - bits), U64(min(max(math.ceil(float(at) * 2.0 ** bits), 0), 2 ** bits))
