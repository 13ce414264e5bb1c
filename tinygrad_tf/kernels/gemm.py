"""Batched matrix products through cuBLAS's strided-batched GEMM, honouring CUPY_TF32.

cupy.matmul on arrays of more than two dimensions computes float32 products in plain
float32 (it ignores CUPY_TF32) and copies operands that are not contiguous. Here the
transposes are cuBLAS's op flags, the compute type follows CUPY_TF32 as CuPy's 2-D GEMMs
do, and an operand is used where it lies when its matrices are one stride apart with a
unit last stride. (B, H, T, d) views of (B, T, H*d) arrays are two strides apart and get
copied: CuPy 14 has no binding of the pointer-array GEMM (cublasGemmBatchedEx) that
could read them in place.
"""
import os

import numpy as np

from ..backend import cupy

_OP_N, _OP_T = 0, 1
_CUDA_R_32F, _CUDA_R_64F = 0, 1
_COMPUTE_32F, _COMPUTE_32F_FAST_TF32, _COMPUTE_64F = 68, 77, 70
_GEMM_DEFAULT, _POINTER_MODE_HOST = -1, 0
_ONE = {np.dtype("float32"): np.ones((), np.float32), np.dtype("float64"): np.ones((), np.float64)}
_ZERO = {dt: np.zeros((), dt) for dt in _ONE}
_layouts = {}  # (batch shape, batch strides) -> common stride in bytes between matrices, or None


def _tf32():
    return os.environ.get("CUPY_TF32", "0") != "0"


def _batch_stride(a):
    key = (a.shape[:-2], a.strides[:-2])
    if key not in _layouts:
        index = np.indices(a.shape[:-2]).reshape(a.ndim - 2, -1)
        offsets = (np.asarray(a.strides[:-2], np.int64)[:, None] * index).sum(axis=0)
        steps = np.diff(offsets)
        _layouts[key] = 0 if len(offsets) <= 1 else (int(steps[0]) if (steps == steps[0]).all() else None)
    return _layouts[key]


def _fits(a):
    """Matrices one stride apart, rows with a unit last stride and a valid leading dimension."""
    item = a.itemsize
    return (a.strides[-1] == item and a.strides[-2] % item == 0
            and (a.shape[-2] <= 1 or a.strides[-2] >= a.shape[-1] * item) and _batch_stride(a) is not None)


def operand(a):
    """a as matmul can read it: itself when it fits, else a contiguous copy (make it once, use it often)."""
    return a if _fits(a) else cupy.ascontiguousarray(a)


def _leading(a):
    return max(a.strides[-2] // a.itemsize if a.shape[-2] > 1 else a.shape[-1], 1)


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
    elif out.shape != batch + (m, n) or out.dtype != a.dtype or not _fits(out):
        raise ValueError(f"out has shape {out.shape} and strides {out.strides}; expected {batch + (m, n)}, "
                         f"dtype {a.dtype} and matrices one stride apart")
    count = int(np.prod(batch))
    if count == 0 or m == 0 or n == 0:
        return out
    if k == 0:
        out[...] = 0
        return out
    if a.dtype == np.float64:
        dtype, compute = _CUDA_R_64F, _COMPUTE_64F
    else:
        dtype, compute = _CUDA_R_32F, _COMPUTE_32F_FAST_TF32 if _tf32() else _COMPUTE_32F
    handle = cupy.cuda.device.get_cublas_handle()
    cublas.setPointerMode(handle, _POINTER_MODE_HOST)
    one, zero, item = _ONE[a.dtype].ctypes.data, _ZERO[a.dtype].ctypes.data, a.itemsize
    # Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: pass B first, and each
    # row-major matrix is read as its column-major transpose (leading dimension = its row stride).
    cublas.gemmStridedBatchedEx(
        handle, _OP_T if trans_b else _OP_N, _OP_T if trans_a else _OP_N, n, m, k, one,
        b.data.ptr, dtype, _leading(b), _batch_stride(b) // item,
        a.data.ptr, dtype, _leading(a), _batch_stride(a) // item,
        zero, out.data.ptr, dtype, _leading(out), _batch_stride(out) // item, count, compute, _GEMM_DEFAULT)
    return out
