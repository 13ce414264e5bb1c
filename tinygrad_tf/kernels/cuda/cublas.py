"""The cuBLAS GEMMs that gemm.py needs, bound through ctypes on a handle of our own.

Why not CuPy's binding: it refuses every call while a stream is being captured ("calling
cuBLAS API during stream capture is currently unsupported"), and cuBLAS itself captures
fine when it is given its workspace. So a CUDA graph of the training step
(cuda_graph.py) needs these, and eager steps use them too: one path for both.

The handle follows the current stream, and gets the explicit workspace again after each
stream change (cublasSetStream resets it to cuBLAS's own pool, which a capture can't use).
The compute type carries the precision (TF32 or not), so no math-mode state is changed.
The library is the one CuPy has loaded already.
"""
import ctypes

import numpy as np

from ...backend import bfloat16_or_none, cupy, float16, float64
from ._cuda import ALPHA_BETA, product_dtype, tf32

_WORKSPACE_BYTES = 32 << 20  # what cuBLAS's documentation advises for Hopper
# CUDA_R_32F, CUDA_R_64F, CUDA_R_16F, CUDA_R_16BF
_DATA = {np.dtype("float32"): 0, float64: 1, float16: 2, **({} if bfloat16_or_none() is None else
                                                              {bfloat16_or_none(): 14})}
_COMPUTE_32F, _COMPUTE_32F_FAST_TF32, _COMPUTE_64F = 68, 77, 70
# float32 data, products rounded to 16 bits:
_COMPUTE_32F_FAST = {float16: 74, **({} if bfloat16_or_none() is None else {bfloat16_or_none(): 75})}
_GEMM_DEFAULT = -1
OP_N, OP_T = 0, 1

_lib = None
_handles = {}  # device id -> [handle, workspace array, the stream it was last set to]


def _library():
    global _lib
    if _lib is None:
        for name in ("libcublas.so.13", "libcublas.so.12", "libcublas.so"):
            try:
                lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        else:
            raise RuntimeError("cuBLAS (libcublas.so.13 or .12) could not be loaded; is CuPy's CUDA installed?")
        p, i, ll, sz = ctypes.c_void_p, ctypes.c_int, ctypes.c_longlong, ctypes.c_size_t
        matrix = [p, i, i]  # pointer, data type, leading dimension
        for fn, args in (("cublasCreate_v2", [p]), ("cublasSetStream_v2", [p, p]),
                         ("cublasSetWorkspace_v2", [p, p, sz]),
                         ("cublasGemmEx", [p, i, i, i, i, i, p, *matrix, *matrix, p, *matrix, i, i]),
                         ("cublasGemmStridedBatchedEx", [p, i, i, i, i, i, p, *matrix, ll, *matrix, ll, p, *matrix,
                                                         ll, i, i, i]),
                         ("cublasGemmBatchedEx", [p, i, i, i, i, i, p, *matrix, *matrix, p, *matrix, i, i, i])):
            getattr(lib, fn).argtypes, getattr(lib, fn).restype = args, ctypes.c_int
        _lib = lib
    return _lib


def _check(status, what):
    if status:
        raise RuntimeError(f"cuBLAS {what} failed with status {status}")


def _handle(dtype):
    """(library, handle on the current stream, compute type, alpha, beta) for one call."""
    lib, device = _library(), cupy.cuda.Device().id
    held = _handles.get(device)
    if held is None:
        handle = ctypes.c_void_p()
        _check(lib.cublasCreate_v2(ctypes.byref(handle)), "cublasCreate")
        held = _handles[device] = [handle, cupy.empty(_WORKSPACE_BYTES, np.uint8), None]
    stream = cupy.cuda.get_current_stream().ptr
    if held[2] != stream:
        _check(lib.cublasSetStream_v2(held[0], stream), "cublasSetStream")
        _check(lib.cublasSetWorkspace_v2(held[0], held[1].data.ptr, _WORKSPACE_BYTES), "cublasSetWorkspace")
        held[2] = stream
    return (lib, held[0], compute_type(dtype), *ALPHA_BETA[dtype])


def compute_type(dtype):
    """64-bit products for float64; float32 accumulation for the rest: of 16-bit inputs as they
    are, of float32 inputs rounded to 16 bits inside products_in (_cuda.py) or to TF32 with CUPY_TF32."""
    if dtype == float64:
        return _COMPUTE_64F
    if dtype.itemsize == 2:
        return _COMPUTE_32F
    low = product_dtype()
    return _COMPUTE_32F_FAST[low] if low is not None else _COMPUTE_32F_FAST_TF32 if tf32() else _COMPUTE_32F


def gemm(dtype, op_a, op_b, m, n, k, a, lda, b, ldb, c, ldc):
    """Column-major C (m, n) = op(A) op(B); a, b, c are device addresses."""
    lib, handle, compute, one, zero = _handle(dtype)
    t = _DATA[dtype]
    _check(lib.cublasGemmEx(handle, op_a, op_b, m, n, k, one, a, t, lda, b, t, ldb, zero, c, t, ldc, compute,
                            _GEMM_DEFAULT), "GemmEx")


def gemm_strided_batched(dtype, op_a, op_b, m, n, k, a, lda, stride_a, b, ldb, stride_b, c, ldc, stride_c, count):
    """`count` GEMMs whose matrices lie a fixed stride (in elements) apart."""
    lib, handle, compute, one, zero = _handle(dtype)
    t = _DATA[dtype]
    _check(lib.cublasGemmStridedBatchedEx(handle, op_a, op_b, m, n, k, one, a, t, lda, stride_a, b, t, ldb,
                                          stride_b, zero, c, t, ldc, stride_c, count, compute, _GEMM_DEFAULT),
           "GemmStridedBatchedEx")


def gemm_batched(dtype, op_a, op_b, m, n, k, a_array, lda, b_array, ldb, c_array, ldc, count):
    """`count` GEMMs whose matrices' addresses are in device arrays a_array, b_array, c_array."""
    lib, handle, compute, one, zero = _handle(dtype)
    t = _DATA[dtype]
    _check(lib.cublasGemmBatchedEx(handle, op_a, op_b, m, n, k, one, a_array, t, lda, b_array, t, ldb, zero,
                                   c_array, t, ldc, count, compute, _GEMM_DEFAULT), "GemmBatchedEx")
