"""Row and column sums as matrix-vector products, and what every CPU fused op asks of its arrays.

For rows of a few hundred floats BLAS sums a row ~5x faster than NumPy's reduction, and the
rows of a tall matrix ~2-4x faster than NumPy's axis-0 sum (measured on this project's CPU
machine)."""
import numpy as np


def on_cpu(*arrays):
    """True when every array is a NumPy float array."""
    return all(isinstance(a, np.ndarray) and a.dtype.kind == "f" for a in arrays)


def for_blas(*arrays):
    """True when every array is a NumPy float32 or float64 array, the types BLAS computes in. The
    twins built on GEMMs leave float16 to the textbook op, which computes it in float32 and
    rounds once (kernels/opmath.py, as PyTorch): NumPy's own float16 matmul has no BLAS behind
    it (the --dtype float16 CPU example ran at 64 tokens/s on it, ~4,000 in float32)."""
    return all(isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float64) for a in arrays)


def row_sum(a):
    """Sum over the last axis, keepdims, as a matrix-vector product."""
    flat = np.ascontiguousarray(a).reshape(-1, a.shape[-1])
    return (flat @ np.ones((a.shape[-1], 1), a.dtype)).reshape(a.shape[:-1] + (1,))


def column_sum(a):
    """Sum over the rows of a 2-D array, as a vector-matrix product."""
    return np.ones(a.shape[0], a.dtype) @ a
