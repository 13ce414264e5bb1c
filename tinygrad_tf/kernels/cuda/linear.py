"""Linear on the GPU: x @ W^T + b as one 2-D GEMM over all leading dims, through cuBLASLt
with the bias and the ReLU in the GEMM's epilogue (cublaslt.py): no extra passes over the
output. float16/bfloat16 operands (autocast) multiply on tensor cores, accumulating in float32. Where cuBLASLt can't take a product (unaligned operands) or cuBLAS's own choice
timed faster for that shape, it goes through gemm.py's cuBLAS GEMMs."""
from ...backend import cupy, is_cuda_array
from ...function import Function
from ...ops import linear
from . import cublaslt, gemm, reduce
from ._cuda import stored_on_gpu
from .relu import relu_backward


class Linear(Function):
    name, replaces = "linear", linear.Linear
    takes_16_bit = True  # float16/bfloat16, computed in float32 (check.py's 16-bit rows)

    @staticmethod
    def supports(x, weight, bias, activation):
        return stored_on_gpu(x, weight) and x.dtype == weight.dtype and (
            bias is None or (is_cuda_array(bias) and bias.dtype == x.dtype))

    def forward(self, x, weight, bias, activation):
        self.x2, self.weight, self.x_shape = x.reshape(-1, x.shape[-1]), weight, x.shape
        relu = activation == "relu"
        out = cublaslt.matmul(self.x2, weight, trans_b=True, bias=bias, relu=relu)
        if out is None:
            out = gemm.matmul(self.x2, weight, trans_b=True)
            if bias is not None:
                out += bias
            if relu:
                cupy.maximum(out, 0, out=out)
        self.relu_out = out if relu else None  # ReLU's backward needs only where the output is positive
        return out.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, g):
        g2 = g.reshape(-1, g.shape[-1])
        if self.relu_out is not None:
            g2 = relu_backward(g2, self.relu_out)
        gx = _product(g2, self.weight).reshape(self.x_shape) if self.needs_grad[0] else None
        gw = _product(g2, self.x2, trans_a=True) if self.needs_grad[1] else None
        gb = reduce.column_sum(g2) if self.needs_grad[2] else None
        return gx, gw, gb


def _product(a, b, trans_a=False):
    """op(a) @ b through cuBLASLt (less host time than cuBLAS's path) unless cuBLAS's own choice
    timed faster for this shape: for the weight gradients (k = rows) cuBLAS's split-K GEMMs
    beat cuBLASLt's first eight candidates (fp32 H100: 6.8 against 9.5 ms a step)."""
    def plain():
        return gemm.matmul(a, b, trans_a)
    out = cublaslt.matmul(a, b, trans_a, fallback=plain)
    return plain() if out is None else out
