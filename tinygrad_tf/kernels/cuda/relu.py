"""ReLU with its backward as one elementwise kernel: gx = out <= 0 ? 0 : g (a NaN passes g on, as torch).

The textbook backward takes two launches on the GPU (a compare, then a multiply by the
bool mask); this takes one and reads the saved output instead of a separate mask.
Linear's fused ReLU (linear.py) uses the same backward."""
from ...backend import cupy
from ...function import Function
from ...ops import elementwise
from ._cuda import elementwise as vectorized, stored_on_gpu

_kernel = vectorized("tg_relu_backward", ("g", "out"), "", "out <= (T)0 ? (T)0 : g")


def relu_backward(g, out):
    return _kernel(cupy.ascontiguousarray(g), cupy.ascontiguousarray(out))


class Relu(Function):
    name, replaces = "relu", elementwise.Relu
    takes_16_bit = True  # float16/bfloat16, computed in float32 (check.py's 16-bit rows)

    @staticmethod
    def supports(a):
        return stored_on_gpu(a)

    def forward(self, a):
        self.out = cupy.maximum(a, 0)
        return self.out

    def backward(self, g):
        return relu_backward(g, self.out)
