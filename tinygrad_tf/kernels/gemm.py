"""Batched matrix products through cuBLAS's strided-batched GEMM, honouring CUPY_TF32.

cupy.matmul on arrays of more than two dimensions computes float32 products in plain
float32 (it ignores CUPY_TF32) and copies operands that are not contiguous. Here the
transposes are cuBLAS's op flags, the compute type follows CUPY_TF32 as CuPy's 2-D GEMMs
do, and an operand is used where it lies when its matrices are one stride apart with a
unit last stride. (B, H, T, d) views of (B, T, H*d) arrays are two strides apart and get
copied: CuPy 14 has no binding of the pointer-array GEMM (cublasGemmBatchedEx) that
could read them in place.
"""
import math
import os

import numpy as np

from ..backend import cupy

_OP_N, _OP_T = 0, 1
_CUDA_R_32F, _CUDA_R_64F = 0, 1
_COMPUTE_32F, _COMPUTE_32F_FAST_TF32, _COMPUTE_64F = 68, 77, 70
_GEMM_DEFAULT, _POINTER_MODE_HOST = -1, 0
_ONE = {np.dtype("float32"): np.ones((), np.float32), np.dtype("float64"): np.ones((), np.float64)}
_ZERO = {dt: np.zeros((), dt) for dt in _ONE}
# Host pointers to alpha = 1 and beta = 0, taken once: .ctypes costs microseconds a call,
# and this runs ~40 times a step on a host that is the bottleneck with TF32.
_ALPHA_BETA = {dt: (_ONE[dt].ctypes.data, _ZERO[dt].ctypes.data) for dt in _ONE}
_layouts = {}  # (shape, strides, itemsize) -> (stride between matrices, leading dim) in elements, or None


def _tf32():
    return os.environ.get("CUPY_TF32", "0") != "0"


def _compute_layout(shape, strides, item):
    rows, cols = shape[-2], shape[-1]
    if strides[-1] != item or strides[-2] % item or (rows > 1 and strides[-2] < cols * item):
        return None  # rows must have a unit stride and must not overlap
    index = np.indices(shape[:-2]).reshape(len(shape) - 2, -1)
    offsets = (np.asarray(strides[:-2], np.int64)[:, None] * index).sum(axis=0)
    steps = np.diff(offsets)
    if len(offsets) > 1 and not (steps == steps[0]).all():
        return None  # matrices not one stride apart
    stride = int(steps[0]) // item if len(offsets) > 1 else 0
    return stride, max(strides[-2] // item if rows > 1 else cols, 1)


def _layout(a):
    """(stride between matrices, leading dimension) when cuBLAS can read `a` where it lies, else None."""
    key = (a.shape, a.strides, a.itemsize)
    if key not in _layouts:
        _layouts[key] = _compute_layout(*key)
    return _layouts[key]


def operand(a):
    """a as matmul can read it: itself when it fits, else a contiguous copy (make it once, use it often)."""
    return a if _layout(a) is not None else cupy.ascontiguousarray(a)


def matmul(a, b, trans_a=False, trans_b=False, out=None):
    """op(a) @ op(b) over equal batch dims (..., rows, cols); op swaps the last two axes.

    `out` (optional): an array of the result's shape whose matrices are one stride apart."""
    from cupy_backends.cuda.libs import cublas

    if a.dtype != b.dtype or a.dtype not in _ONE or a.ndim < 3 or a.shape[:-2] != b.shape[:-2]:
        raise ValueError(f"batched matmul takes float32/float64 arrays with the same batch dims, "
                         f"got {a.shape} {a.dtype} and {b.shape} {b.dtype}")
    a, b = operand(a), operand(b)
    batch = a.shape[:-2]
    m, k = (a.shape[-1], a.shape[-2]) if trans_a else (a.shape[-2], a.shape[-1])
    k_b, n = (b.shape[-1], b.shape[-2]) if trans_b else (b.shape[-2], b.shape[-1])
    if k != k_b:
        raise ValueError(f"batched matmul inner sizes differ: {k} vs {k_b}")
    if out is None:
        out = cupy.empty(batch + (m, n), a.dtype)
    elif out.shape != batch + (m, n) or out.dtype != a.dtype or _layout(out) is None:
        raise ValueError(f"out has shape {out.shape} and strides {out.strides}; expected {batch + (m, n)}, "
                         f"dtype {a.dtype} and matrices one stride apart")
    count = math.prod(batch)
    if count == 0 or m == 0 or n == 0:
        return out
    if k == 0:
        out[...] = 0
        return out
    if a.dtype == np.float64:
        dtype, compute = _CUDA_R_64F, _COMPUTE_64F
    else:
        dtype, compute = _CUDA_R_32F, _COMPUTE_32F_FAST_TF32 if _tf32() else _COMPUTE_32F
    (stride_a, ld_a), (stride_b, ld_b), (stride_c, ld_c) = _layout(a), _layout(b), _layout(out)
    one, zero = _ALPHA_BETA[a.dtype]
    handle = cupy.cuda.device.get_cublas_handle()
    cublas.setPointerMode(handle, _POINTER_MODE_HOST)
    # Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: pass B first, and each
    # row-major matrix is read as its column-major transpose (leading dimension = its row stride).
    cublas.gemmStridedBatchedEx(
        handle, _OP_T if trans_b else _OP_N, _OP_T if trans_a else _OP_N, n, m, k, one,
        b.data.ptr, dtype, ld_b, stride_b, a.data.ptr, dtype, ld_a, stride_a,
        zero, out.data.ptr, dtype, ld_c, stride_c, count, compute, _GEMM_DEFAULT)
    return out
