"""Row and column sums as matrix-vector products, and what every CPU fused op asks of its arrays.

For rows of a few hundred floats BLAS sums a row ~5x faster than NumPy's reduction, and the
rows of a tall matrix ~2-4x faster than NumPy's axis-0 sum (measured on this project's CPU
machine)."""
import numpy as np


def on_cpu(*arrays):
    """True when every array is a NumPy float32 or float64 array, the types BLAS computes in.
    float16 goes to the textbook op, which computes it in float32 and rounds once (as PyTorch;
    kernels/opmath.py): NumPy's own float16 matmul has no BLAS behind it (a float16 GPT step
    under autocast took ~100x the float32 one)."""
    return all(isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float64) for a in arrays)


def row_sum(a):
    """Sum over the last axis, keepdims, as a matrix-vector product."""
    flat = np.ascontiguousarray(a).reshape(-1, a.shape[-1])
    return (flat @ np.ones((a.shape[-1], 1), a.dtype)).reshape(a.shape[:-1] + (1,))


def column_sum(a):
    """Sum over the rows of a 2-D array, as a vector-matrix product."""
    return np.ones(a.shape[0], a.dtype) @ a
