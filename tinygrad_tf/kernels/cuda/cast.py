"""Casts between float32 and float16/bfloat16 as one vectorized kernel: autocast's casts.

Under autocast a step casts every layer norm's output down to 16 bits, every 16-bit product's
output back up for the residual stream and the float32 row math, and the same again for their
gradients: some 250 casts of the seed GPT's activations per step. CuPy's astype moves one
element per thread (19 us for 6.3M elements on an H200, 4.6 ms of a 13 ms bf16 step); here each
thread converts 8 elements with 16-byte loads and stores, rounding to nearest even once."""
import numpy as np

from ...backend import cupy, float32, is_cuda_array
from ...function import Function
from ...ops import movement
from ._cuda import STORED, raw_kernel

_THREADS = 256
_SOURCE = r"""
extern "C" __global__ void NAME(const S* __restrict__ x, T* __restrict__ y, long long n, int aligned) {
    long long i0 = ((long long)blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (i0 >= n) return;
    if (aligned && i0 + 8 <= n) {  // 8 elements: one or two 16-byte vectors on each side
        union { uint4 raw[sizeof(S) / 2]; S v[8]; } a;
        union { uint4 raw[sizeof(T) / 2]; T v[8]; } b;
        #pragma unroll
        for (int r = 0; r < (int)(sizeof(S) / 2); ++r) a.raw[r] = ((const uint4*)(x + i0))[r];
        #pragma unroll
        for (int u = 0; u < 8; ++u) b.v[u] = (T)(float)a.v[u];
        #pragma unroll
        for (int r = 0; r < (int)(sizeof(T) / 2); ++r) ((uint4*)(y + i0))[r] = b.raw[r];
    } else {
        for (long long i = i0; i < n && i < i0 + 8; ++i) y[i] = (T)(float)x[i];
    }
}
"""


def cast(x, dtype):
    """x (C-contiguous) as a new array of `dtype`; one of the two is 16-bit, the other float32 or 16-bit."""
    y = cupy.empty(x.shape, dtype)
    n = x.size
    if n:
        name = f"tg_cast_{x.dtype.name}_{y.dtype.name}"
        source = f"typedef {STORED[x.dtype]} S;\n" + _SOURCE.replace("NAME", name)
        aligned = x.data.ptr % 16 == 0 and y.data.ptr % 16 == 0
        raw_kernel(source, name, y.dtype)((-(-n // (8 * _THREADS)),), (_THREADS,),
                                          (x, y, np.int64(n), np.int32(aligned)))
    return y


def _castable(dtype):
    return dtype in STORED and dtype.itemsize <= 4 and (dtype == float32 or dtype.itemsize == 2)


class Cast(Function):
    name, replaces = "cast", movement.Cast
    takes_16_bit = True  # float16/bfloat16, computed in float32 (check.py's 16-bit rows)
    reads = ()

    @staticmethod
    def supports(a, dtype):
        """A contiguous GPU array cast between float32, float16 and bfloat16 (one side 16-bit)."""
        if not is_cuda_array(a):
            return False
        dtype = np.dtype(dtype)
        return (a.flags.c_contiguous and a.dtype != dtype
                and _castable(a.dtype) and _castable(dtype) and 2 in (a.dtype.itemsize, dtype.itemsize))

    def forward(self, a, dtype):
        self.dtype = a.dtype
        return cast(a, dtype)

    def backward(self, g):
        return cast(cupy.ascontiguousarray(g), self.dtype)
