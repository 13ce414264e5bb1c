"""gemm(a, b, c, trans_a, trans_b): a BLAS matrix product called from inside a Numba kernel, on
any block of a row-major array whose rows are contiguous (a slice of rows or of columns), with
no copy.

numba's np.dot takes whole contiguous arrays only, so a block of columns (a Linear's output
features, the weight gradient's rows) would have to be copied first. This calls the function
numba's np.dot calls, numba_xxgemm (numba's C helper around SciPy's BLAS, the `cpu` extra's
scipy.linalg.cython_blas), and passes the row strides as BLAS's leading dimensions.

BLAS is column-major: a row-major (m, k) array with row stride ld is, to it, the (k, m) matrix
A^T with leading dimension ld. So c = op(a) @ op(b) is asked as c^T = op(b)^T @ op(a)^T: b
first, and the sizes of c^T."""
import numpy as np

from . import _numba
from ._numba import kernel

_N, _T, _SINGLE, _DOUBLE = (ord(c) for c in "NTsd")  # (constants: numba compiles ord() and str code slowly)


@kernel()
def gemm(a, b, c, trans_a, trans_b):
    """c <- op(a) @ op(b), op transposing where trans_*: a, b, c of one float dtype (float32 or
    float64), each with contiguous rows (a last stride of one element) that do not overlap (a
    row stride of at least a row)."""
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    if m == 0 or n == 0:
        return
    if k == 0:  # (loops: c[:] = 0 compiles numba's shape-error formatting, ~5 s)
        for r in range(m):
            for j in range(n):
                c[r, j] = 0
        return
    size = c.itemsize
    factors = np.zeros(2, c.dtype)  # alpha 1, beta 0
    factors[0] = 1
    _numba.xxgemm(_SINGLE if size == 4 else _DOUBLE, _T if trans_b else _N, _T if trans_a else _N, n, m, k,
                  factors[0:].ctypes, b.ctypes, _leading(b), a.ctypes, _leading(a), factors[1:].ctypes, c.ctypes,
                  _leading(c))


@kernel()
def _leading(a):
    """BLAS's leading dimension of row-major a: its row stride in elements (a single row's
    stride, never read, may be anything: then its length, as BLAS asks at least that)."""
    return max(1, a.shape[1], a.strides[0] // a.itemsize) if a.shape[0] <= 1 else a.strides[0] // a.itemsize
