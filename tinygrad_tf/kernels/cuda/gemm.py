"""Matrix products, 2-D and batched, through cuBLAS (cublas.py), honouring CUPY_TF32,
on operands where they lie; they can be captured in a CUDA graph, unlike cupy.matmul's.

cupy.matmul on arrays of more than two dimensions computes float32 products in plain
float32 (it ignores CUPY_TF32) and copies operands that are not contiguous. Here the
transposes are cuBLAS's op flags, the compute type follows CUPY_TF32 as CuPy's 2-D GEMMs
do, and any operand whose rows have a unit last stride is used where it lies:
- one matrix: the plain GEMM;
- matrices one stride apart: the strided-batched GEMM;
- otherwise, e.g. the (B, H, T, d) head views of (B, T, H*d) projections, whose matrices
  are two strides apart: the pointer-array GEMM, with each matrix's address computed on
  the GPU from offsets cached per layout (one small launch instead of a copy per operand:
  0.14 ms against 0.20 ms for copy + GEMM at the seed model's attention shape, H100).
"""
import math

import numpy as np

from ...backend import cupy
from . import cublas
from ._cuda import ALPHA_BETA, raw_kernel

_layouts = {}  # (shape, strides, itemsize) -> (offsets of the matrices, their common stride or None,
#               leading dimension), in elements; or None
_device_offsets = {}  # (batch shape, batch strides, device) -> those offsets in bytes, on the GPU
# The matrix addresses of a pointer-array GEMM are a pure function of the three base
# addresses and layouts, and CuPy's pool hands a training step the same addresses every
# step: kept, they save a launch per GEMM (~25 us of host time each on the H100 machine).
# Not while a CUDA graph is captured: the graph would read arrays the cache may drop and
# another owner reuse, so it computes its own (a launch per replay).
_address_arrays = {}
_MAX_ADDRESS_ARRAYS = 512  # x 3 x batch x 8 bytes: at most ~5 MiB for the seed model

_POINTERS = r"""
extern "C" __global__ void gemm_pointers(const long long* OFF_A, const long long* OFF_B, const long long* OFF_C,
                                         unsigned long long a, unsigned long long b, unsigned long long c,
                                         unsigned long long* P, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { P[i] = a + OFF_A[i]; P[n + i] = b + OFF_B[i]; P[2 * n + i] = c + OFF_C[i]; }
}
"""


def _compute_layout(shape, strides, item):
    rows, cols = shape[-2], shape[-1]
    strides = strides[:-1] + (item if cols == 1 else strides[-1],)  # a single column's stride is never used
    if strides[-1] != item or any(st % item for st in strides[:-1]) or (rows > 1 and strides[-2] < cols * item):
        return None  # rows must have a unit stride and must not overlap
    index = np.indices(shape[:-2]).reshape(len(shape) - 2, math.prod(shape[:-2]))  # 2-D: one matrix
    offsets = (np.asarray(strides[:-2], np.int64)[:, None] * index).sum(axis=0) // item
    steps = np.diff(offsets)
    stride = 0 if len(offsets) <= 1 else (int(steps[0]) if (steps == steps[0]).all() else None)
    return offsets, stride, max(strides[-2] // item if rows > 1 else cols, 1)


def _layout(a):
    """(offset of each matrix, the stride between them when it is the same for all, else None,
    leading dimension), in elements, when cuBLAS can read `a` where it lies; else None."""
    key = (a.shape, a.strides, a.itemsize)
    if key not in _layouts:
        _layouts[key] = _compute_layout(*key)
    return _layouts[key]


def operand(a):
    """a as matmul can read it: itself when its rows fit, else a contiguous copy (make it once, use it often)."""
    return a if _layout(a) is not None else cupy.ascontiguousarray(a)


def _offsets_on_device(a, offsets):
    key = (a.shape[:-2], a.strides[:-2], a.itemsize, a.device.id)
    if key not in _device_offsets:
        _device_offsets[key] = cupy.asarray(offsets * a.itemsize, dtype=np.int64)
    return _device_offsets[key]


def matmul(a, b, trans_a=False, trans_b=False, out=None):
    """op(a) @ op(b) over equal batch dims (..., rows, cols); op swaps the last two axes.

    `out` (optional): an array of the result's shape with unit-stride rows, written in place."""
    a, b, out, dims = _checked(a, b, trans_a, trans_b, out)
    if dims is not None:
        _gemm([(a, b, out)], trans_a, trans_b, *dims)
    return out


def matmul_pieces(pieces, trans_a=False, trans_b=False):
    """out = op(a) @ op(b) for every (a, b, out) in `pieces`, as one pointer-array GEMM.

    The pieces must be products of one shape whose operands have one row stride each, e.g.
    blocks of the same matrices (attention.py's causal blocks): one launch instead of one
    per piece."""
    checked = [_checked(a, b, trans_a, trans_b, out) for a, b, out in pieces]
    if len({c[3] for c in checked}) != 1 or len({tuple(_layout(x)[2] for x in c[:3]) for c in checked}) != 1:
        raise ValueError("matmul_pieces takes products of one shape whose operands share their row strides")
    if checked[0][3] is not None:
        _gemm([c[:3] for c in checked], trans_a, trans_b, *checked[0][3])


def _checked(a, b, trans_a, trans_b, out):
    """(a, b, out, (m, n, k, count)) ready for _gemm; dims None when there is nothing to multiply."""
    if a.dtype != b.dtype or a.dtype not in ALPHA_BETA or a.ndim < 2 or a.shape[:-2] != b.shape[:-2]:
        raise ValueError(f"matmul takes float arrays (16, 32 or 64 bits) of 2 or more dims with the same batch dims, "
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
                         f"dtype {a.dtype} and rows with a unit stride")
    count = math.prod(batch)
    if count == 0 or m == 0 or n == 0:
        return a, b, out, None
    if k == 0:
        out[...] = 0
        return a, b, out, None
    return a, b, out, (m, n, k, count)


def _address_cache():
    """The kept address arrays; a throwaway dict while the current stream is being captured."""
    return {} if cupy.cuda.get_current_stream().is_capturing() else _address_arrays


def _addresses(a, b, out, count):
    """The (3, count) matrix addresses of one pointer-array product, kept per base address and layout."""
    key = tuple((x.data.ptr, x.shape[:-2], x.strides[:-2], x.itemsize) for x in (a, b, out)) + (a.device.id,)
    cache = _address_cache()
    pointers = cache.get(key)
    if pointers is None:
        if len(cache) >= _MAX_ADDRESS_ARRAYS:
            cache.clear()
        pointers = cache[key] = cupy.empty((3, count), np.uint64)
        raw_kernel(_POINTERS, "gemm_pointers", a.dtype)(
            (-(-count // 128),), (128,),
            (*(_offsets_on_device(x, _layout(x)[0]) for x in (a, b, out)),
             np.uint64(a.data.ptr), np.uint64(b.data.ptr), np.uint64(out.data.ptr), pointers, np.int32(count)))
    return pointers, key


def _gemm(triples, trans_a, trans_b, m, n, k, count):
    """Every out = op(a) @ op(b) of `triples` (checked, one shape and row strides) in one cuBLAS call."""
    a, b, out = triples[0]
    (_, stride_a, ld_a), (_, stride_b, ld_b), (_, stride_c, ld_c) = _layout(a), _layout(b), _layout(out)
    op_a, op_b = cublas.OP_T if trans_a else cublas.OP_N, cublas.OP_T if trans_b else cublas.OP_N
    # Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: pass B first, and each
    # row-major matrix is read as its column-major transpose (leading dimension = its row stride).
    if len(triples) == 1 and count == 1:
        cublas.gemm(a.dtype, op_b, op_a, n, m, k, b.data.ptr, ld_b, a.data.ptr, ld_a, out.data.ptr, ld_c)
        return
    if len(triples) == 1 and None not in (stride_a, stride_b, stride_c):
        cublas.gemm_strided_batched(a.dtype, op_b, op_a, n, m, k, b.data.ptr, ld_b, stride_b, a.data.ptr, ld_a,
                                    stride_a, out.data.ptr, ld_c, stride_c, count)
        return
    parts = [_addresses(x, y, z, count) for x, y, z in triples]
    pointers = parts[0][0]
    if len(parts) > 1:  # the pieces' address arrays side by side, kept like each of them
        key = tuple(key for _, key in parts)
        cache = _address_cache()
        pointers = cache.get(key)
        if pointers is None:
            pointers = cache[key] = cupy.concatenate([p for p, _ in parts], axis=1)
    total = count * len(parts)
    p_a, p_b, p_c = (pointers.data.ptr + i * total * 8 for i in range(3))
    cublas.gemm_batched(a.dtype, op_b, op_a, n, m, k, p_b, ld_b, p_a, ld_a, p_c, ld_c, total)
