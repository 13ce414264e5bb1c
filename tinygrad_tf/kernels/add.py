"""a + b for two arrays of one shape, as one vectorized kernel (_cuda.elementwise).

A training step makes dozens of these: the residual adds, and the gradient sums where a
tensor feeds several ops. CuPy's add moves one element per thread: 138.6 us against
111.8 us for PyTorch's at (16384, 1536) float32 on an H100."""
from ..backend import cupy
from ._cuda import elementwise

_kernel = elementwise("tg_add", ("a", "b"), "", "a + b")


def supports(a, b):
    """Two arrays of one shape and dtype: no scalars, broadcasting or type promotion."""
    return isinstance(b, cupy.ndarray) and a.shape == b.shape and a.dtype == b.dtype


def add(a, b):
    return _kernel(cupy.ascontiguousarray(a), cupy.ascontiguousarray(b))
