"""The one place that chooses between a textbook op and a fused twin of it.

tensor.apply asks `choose(op, args, kwargs)` for every op it runs: Tensor methods (`x @ w`,
`x.softmax(-1)`), nn.functional, and the gradient sums of the graph walk all come through
here. A fused op (kernels/) runs when its switch is on (tg.kernels.select) and its
`supports(*args, **kwargs)` accepts the call (device, dtype, shape); otherwise the textbook
op (ops/) runs. `tg.kernels.select("none")` thus runs any model on textbook ops only.
"""
from . import kernels
from .kernels import opmath
from .kernels.cpu import attention as cpu_attention, embedding as cpu_embedding, layer_norm as cpu_layer_norm, \
    linear as cpu_linear
from .kernels.cuda import add, attention, cast, cross_entropy, dropout, embedding, layer_norm, linear, matmul, relu
from .kernels.numba import add as numba_add, attention as numba_attention, cross_entropy as numba_cross_entropy, \
    dropout as numba_dropout, embedding as numba_embedding, layer_norm as numba_layer_norm, linear as numba_linear, \
    relu as numba_relu

# Every fused op, in the order they are tried for the op they replace: on the CPU the Numba
# kernels (when numba is installed and "numba" is on) before the NumPy ones of kernels/cpu.
FUSED = (add.Add, numba_add.Add, relu.Relu, numba_relu.Relu, dropout.Dropout, numba_dropout.Dropout, matmul.MatMul,
         linear.Linear, numba_linear.Linear, cpu_linear.Linear, layer_norm.LayerNorm, numba_layer_norm.LayerNorm,
         cpu_layer_norm.LayerNorm, cross_entropy.CrossEntropy, numba_cross_entropy.CrossEntropy,
         embedding.Embedding, numba_embedding.Embedding, cpu_embedding.Embedding, attention.Attention,
         numba_attention.Attention, cpu_attention.Attention, cast.Cast)

TWINS = {op: tuple(f for f in FUSED if f.replaces is op) for op in {f.replaces for f in FUSED}}


def choose(op, args, kwargs):
    """The Function class to run for textbook op `op` on raw arguments `args` and `kwargs`."""
    for fused in TWINS.get(op, ()):
        if kernels.enabled(fused.name) and fused.supports(*args, **kwargs):
            return fused
    return opmath.in_float32(op) if opmath.takes(op, args) else op  # 16-bit floats: see kernels/opmath.py


def run(op, *args, **kwargs):
    """op's forward (or its fused twin's) on raw arrays, recording nothing: for sums of gradients."""
    return choose(op, args, kwargs)().forward(*args, **kwargs)
