"""What every GPU kernel shares: the CUDA helpers (warp reductions, the dropout hash,
correctly rounded arithmetic, 16-bit storage types), compilation per dtype, the
one-warp-per-row launch and the vectorized elementwise kernel, and the precision of products."""
import contextlib
import contextvars
import os

import numpy as np

from ...backend import bfloat16_or_none, cupy, float16, float32, is_cuda_array

CTYPES = {np.dtype("float32"): "float", np.dtype("float64"): "double"}  # kernels that compute in T
# Kernels that only load and store T take the 16-bit types too and compute in A = float (each
# result rounded once, as PyTorch's "opmath"); for float32 and float64, A is T.
_SIXTEEN_BIT = {float16: "tg_half", **({} if bfloat16_or_none() is None else {bfloat16_or_none(): "tg_bfloat16"})}
STORED = {**CTYPES, **_SIXTEEN_BIT}


def accumulator(dtype):
    """The dtype a kernel computes and accumulates `dtype` in: float32 for the 16-bit types."""
    return float32 if np.dtype(dtype).itemsize == 2 else np.dtype(dtype)

HEADER = r"""
// 16-bit storage: read as float, written rounded to nearest even (PTX cvt; no CUDA headers needed).
struct tg_half {
    unsigned short bits;
    tg_half() = default;
    __device__ tg_half(float f) { asm("cvt.rn.f16.f32 %0, %1;" : "=h"(bits) : "f"(f)); }
    __device__ operator float() const { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(bits)); return f; }
};
struct tg_bfloat16 {
    unsigned short bits;
    tg_bfloat16() = default;
    __device__ tg_bfloat16(float f) { asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(bits) : "f"(f)); }
    __device__ operator float() const { return __uint_as_float((unsigned int)bits << 16); }
};
#define TG_FULL_MASK 0xffffffffu
template <typename U> __device__ __forceinline__ U tg_warp_sum(U v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(TG_FULL_MASK, v, o);
    return v;
}
template <typename U> __device__ __forceinline__ U tg_warp_max(U v) {
    for (int o = 16; o > 0; o >>= 1) { U w = __shfl_xor_sync(TG_FULL_MASK, v, o); v = w > v ? w : v; }
    return v;
}
// launch_rows gives each row one warp: this warp's row, and this thread's lane in it.
__device__ __forceinline__ long long tg_warp_row() {
    return (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
}
__device__ __forceinline__ int tg_lane() { return threadIdx.x & 31; }
// Dropout's random numbers: splitmix64 of (seed, element index), so a mask is a pure
// function of its seed. Backward recomputes it instead of keeping it in memory, and the
// textbook ops draw the same bits with NumPy/CuPy integer ops (ops/random.py, uniform).
__device__ __forceinline__ unsigned long long tg_mix64(unsigned long long seed, unsigned long long i) {
    unsigned long long z = seed + (i + 1ull) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
template <typename U> __device__ __forceinline__ U tg_uniform(unsigned long long seed, unsigned long long i);
template <> __device__ __forceinline__ float tg_uniform<float>(unsigned long long seed, unsigned long long i) {
    return (float)(tg_mix64(seed, i) >> 40) * 5.9604644775390625e-08f;   // 24 bits * 2^-24
}
template <> __device__ __forceinline__ double tg_uniform<double>(unsigned long long seed, unsigned long long i) {
    return (double)(tg_mix64(seed, i) >> 11) * 1.1102230246251565e-16;   // 53 bits * 2^-53
}
// One rounding per operation (no fused multiply-add), to match the plain-xp reference bit for bit.
__device__ __forceinline__ float tg_mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double tg_mul(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float tg_add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double tg_add(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float tg_sub(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double tg_sub(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ float tg_div(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double tg_div(double a, double b) { return __ddiv_rn(a, b); }
__device__ __forceinline__ float tg_sqrt(float a) { return __fsqrt_rn(a); }
__device__ __forceinline__ double tg_sqrt(double a) { return __dsqrt_rn(a); }
"""

_ONE = {dt: np.ones((), dt) for dt in CTYPES}
_ZERO = {dt: np.zeros((), dt) for dt in CTYPES}
# Host pointers to alpha = 1 and beta = 0 for cuBLAS and cuBLASLt, taken once: .ctypes costs
# microseconds a call, and GEMMs run ~80 times a step on a host that is the bottleneck with TF32.
# 16-bit GEMMs accumulate in float32, and so take float32 scalars.
ALPHA_BETA = {dt: (_ONE[accumulator(dt)].ctypes.data, _ZERO[accumulator(dt)].ctypes.data) for dt in STORED}

WARPS_PER_BLOCK = 4
_compiled = {}


def raw_kernel(source, name, dtype):
    """Compile `source` (which uses the type T) for one dtype, once per process."""
    key = (name, np.dtype(dtype))
    if key not in _compiled:
        code = HEADER + f"typedef {STORED[np.dtype(dtype)]} T;\ntypedef {CTYPES[accumulator(dtype)]} A;\n" + source
        _compiled[key] = cupy.RawKernel(code, name)
    return _compiled[key]


def launch_rows(kernel, rows, args):
    """Run a kernel that gives one warp to each of `rows` rows."""
    if rows == 0:
        return
    threads = 32 * WARPS_PER_BLOCK
    kernel(((rows + WARPS_PER_BLOCK - 1) // WARPS_PER_BLOCK,), (threads,), args)


_VECTOR_THREADS = 256
_VECTOR_SOURCE = r"""
// Each thread maps 16 bytes (4 floats or 2 doubles) with one vector load per input and
// one vector store; the last partial vector, or arrays not 16-byte aligned, go element
// by element.
union tg_vec { uint4 raw; T v[16 / sizeof(T)]; };
extern "C" __global__ void NAME(INPUTS, T* __restrict__ OUT, long long n, int aligned PARAMS) {
    const int V = 16 / sizeof(T);
    long long i0 = ((long long)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (i0 >= n) return;
    if (aligned && i0 + V <= n) {
        LOAD_VECTORS
        tg_vec y;
        #pragma unroll
        for (int u = 0; u < V; ++u) { long long i = i0 + u; READ_LANES y.v[u] = (EXPR); }
        *(uint4*)(OUT + i0) = y.raw;
    } else {
        for (long long i = i0; i < n && i < i0 + V; ++i) { READ_ELEMENTS OUT[i] = (EXPR); }
    }
}
"""


def elementwise(name, inputs, params, expr):
    """A kernel y = expr over C-contiguous arrays named `inputs`, element index i, and
    scalar `params` (a C parameter list). Returns run(*arrays, *scalars) -> y, a new array.

    It moves 16 bytes per load, where CuPy's ElementwiseKernel moves one element per
    thread: on an H100 a ReLU backward over 100 MB took 113 us against 150 us, about
    the speed of PyTorch's vectorized kernels (115 us)."""
    source = (_VECTOR_SOURCE.replace("NAME", name)
              .replace("INPUTS", ", ".join(f"const T* __restrict__ IN_{a}" for a in inputs))
              .replace("PARAMS", f", {params}" if params else "")
              .replace("LOAD_VECTORS", " ".join(f"tg_vec v_{a}; v_{a}.raw = *(const uint4*)(IN_{a} + i0);"
                                                for a in inputs))
              .replace("READ_LANES", " ".join(f"T {a} = v_{a}.v[u];" for a in inputs))
              .replace("READ_ELEMENTS", " ".join(f"T {a} = IN_{a}[i];" for a in inputs))
              .replace("EXPR", expr))

    def run(*args):
        arrays, scalars = args[:len(inputs)], args[len(inputs):]
        first = arrays[0]
        if any(a.shape != first.shape or a.dtype != first.dtype or not a.flags.c_contiguous for a in arrays):
            raise ValueError(f"{name} takes C-contiguous arrays of one shape and dtype, got "
                             f"{[(a.shape, a.dtype, a.flags.c_contiguous) for a in arrays]}")
        out = cupy.empty(first.shape, first.dtype)
        n = first.size
        if n:
            aligned = all(a.data.ptr % 16 == 0 for a in arrays)
            per_block = _VECTOR_THREADS * (16 // first.itemsize)
            raw_kernel(source, name, first.dtype)(((n + per_block - 1) // per_block,), (_VECTOR_THREADS,),
                                                  (*arrays, out, np.int64(n), np.int32(aligned), *scalars))
        return out
    return run


def tf32():
    """Whether float32 GEMMs may round their inputs to TF32: CuPy's own switch, CUPY_TF32."""
    return os.environ.get("CUPY_TF32", "0") != "0"


_products = contextvars.ContextVar("tinygrad_tf_products", default=None)


@contextlib.contextmanager
def products_in(dtype):
    """Inside: float32 GEMMs may round their inputs to `dtype` (float16 or bfloat16) and use its
    tensor cores, accumulating in float32 (cuBLAS's 32F_FAST_16F/16BF compute types): attention
    under autocast keeps its row math in float32 and its products in the low dtype."""
    token = _products.set(np.dtype(dtype))
    try:
        yield
    finally:
        _products.reset(token)


def product_dtype():
    """The 16-bit dtype float32 products may be rounded to here (products_in), or None."""
    return _products.get()


def scalar(dtype, value):
    """A kernel argument of the array's float type (float or double in the kernel)."""
    return np.dtype(dtype).type(value)


def on_gpu(*arrays):
    """True when every array is a CuPy array of a float type the kernels compute in (32, 64 bits)."""
    return all(is_cuda_array(a) and a.dtype in CTYPES for a in arrays)


def stored_on_gpu(*arrays):
    """True when every array is a CuPy array that the load/store kernels and GEMMs take: float32,
    float64, and float16/bfloat16 (computed in float32)."""
    return all(is_cuda_array(a) and a.dtype in STORED for a in arrays)
