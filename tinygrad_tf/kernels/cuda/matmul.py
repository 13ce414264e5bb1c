"""a @ b on the GPU through gemm.py: the GEMMs of Linear (and of attention), so `@` honours
CUPY_TF32 on batched shapes too and can be captured in a CUDA graph (cupy.matmul can't).

Broadcast batch dims are strided views (stride 0), read in place; the gradient of a
broadcast operand has the full batch shape, and the graph walk sums it back (unbroadcast)."""
import numpy as np

from ...backend import cupy
from ...function import Function
from ...ops import matmul
from . import gemm
from ._cuda import stored_on_gpu


class MatMul(Function):
    name, replaces = "matmul", matmul.MatMul
    takes_16_bit = True  # float16/bfloat16, computed in float32 (check.py's 16-bit rows)

    @staticmethod
    def supports(a, b):
        """Matrices (or batches of them) of one float type (16 bits too); 1-D operands take the textbook op."""
        return stored_on_gpu(a, b) and a.ndim >= 2 and b.ndim >= 2 and a.dtype == b.dtype

    def forward(self, a, b):
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        self.a = cupy.broadcast_to(a, batch + a.shape[-2:])
        self.b = cupy.broadcast_to(b, batch + b.shape[-2:])
        return gemm.matmul(self.a, self.b)

    def backward(self, g):
        ga = gemm.matmul(g, self.b, trans_b=True) if self.needs_grad[0] else None
        gb = gemm.matmul(self.a, g, trans_a=True) if self.needs_grad[1] else None
        return ga, gb
