"""a + b for two arrays of one shape, as one vectorized kernel (_cuda.elementwise).

A training step makes dozens of these: the residual adds, and the gradient sums where a
tensor feeds several ops (autograd.py adds them through the same dispatch). CuPy's add moves
one element per thread: 138.6 us against 111.8 us for PyTorch's at (16384, 1536) float32 on
an H100."""
from ...backend import cupy
from ...function import Function
from ...ops import elementwise
from ._cuda import elementwise as vectorized, stored_on_gpu

_kernel = vectorized("tg_add", ("a", "b"), "", "a + b")


class Add(Function):
    name, replaces = "add", elementwise.Add
    takes_16_bit = True  # float16/bfloat16, computed in float32 (check.py's 16-bit rows)

    @staticmethod
    def supports(a, b):
        """Two GPU arrays of one shape and dtype: no scalars, broadcasting or type promotion."""
        return stored_on_gpu(a, b) and a.shape == b.shape and a.dtype == b.dtype

    def forward(self, a, b):
        return _kernel(cupy.ascontiguousarray(a), cupy.ascontiguousarray(b))

    def backward(self, g):
        return g, g
