"""Stateless neural-network functions (torch.nn.functional's names and arguments).

Each checks its arguments and runs one textbook op (ops/) through tensor.apply, which
takes the op's fused twin (kernels/) where dispatch.py finds one that applies."""
import math

from .. import backend, bounds
from ..backend import array_module
from ..ops.attention import Attention
from ..ops.cross_entropy import CrossEntropy
from ..ops.dropout import Dropout
from ..ops.embedding import Embedding
from ..ops.layer_norm import LayerNorm
from ..ops.linear import Linear
from ..tensor import Tensor, apply, autocast_args, autocast_float32


def _check_float(x, name):
    if not backend.is_floating(x.dtype):
        raise TypeError(f"{name} expects a floating-point tensor, got dtype {x.dtype}")


def linear(input, weight, bias=None, activation=None):
    """input @ weight.T + bias, as torch's; activation="relu" also applies ReLU in the same op,
    which on the GPU costs no pass of its own (kernels/cuda/linear.py)."""
    if activation not in (None, "relu"):
        raise ValueError(f"linear: activation must be None or 'relu', got {activation!r}")
    if input.shape[-1] != weight.shape[-1]:
        raise ValueError(f"linear: input has {input.shape[-1]} features (shape {input.shape}) "
                         f"but weight expects {weight.shape[-1]} (shape {weight.shape})")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias shape {bias.shape}, expected ({weight.shape[0]},)")
    input, weight, bias = autocast_args(Linear, input, weight, bias)
    if {input.dtype, weight.dtype, input.dtype if bias is None else bias.dtype} != {input.dtype}:
        raise RuntimeError(f"linear expects input, weight and bias of the same dtype, got {input.dtype}, "
                           f"{weight.dtype} and {None if bias is None else bias.dtype}")
    return apply(Linear, input, weight, bias, activation)


def relu(input):
    return input.relu()


def tanh(input):
    return input.tanh()


def sigmoid(input):
    return input.sigmoid()


def silu(input):
    return input.silu()


def one_hot(tensor, num_classes=-1):
    """(..., num_classes) int64 rows with a 1 at each index (num_classes=-1: the largest index + 1)."""
    _check_int_index(tensor, "one_hot input")
    if num_classes == -1:
        num_classes = int(tensor.max().item()) + 1 if tensor.numel() else 0
    xp = array_module(tensor.data)

    def report(lo, hi):
        if lo < 0 or hi >= num_classes:
            raise IndexError(f"one_hot: class {hi if hi >= num_classes else lo} is out of range for "
                             f"{num_classes} classes")
    bounds.check(tensor.data, report)
    return Tensor._wrap((tensor.data[..., None] == xp.arange(num_classes)).astype(backend.int64))


def _reduce(loss, reduction):
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def mse_loss(input, target, reduction="mean"):
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input shape {input.shape} and target shape {target.shape} differ")
    input, target = autocast_float32(input, target)  # torch's autocast runs it in float32
    return _reduce((input - target).square(), reduction)


def l1_loss(input, target, reduction="mean"):
    if input.shape != target.shape:
        raise ValueError(f"l1_loss: input shape {input.shape} and target shape {target.shape} differ")
    input, target = autocast_float32(input, target)  # torch's autocast runs it in float32
    return _reduce((input - target).abs(), reduction)


def nll_loss(input, target, reduction="mean"):
    """-input[i, target[i]] (input: log-probabilities (N, C)), averaged as torch does."""
    _check_int_index(target, "nll_loss target")
    if input.ndim != 2 or target.shape != input.shape[:1]:
        raise ValueError(f"nll_loss expects input (N, C) and target (N,), got {input.shape} and {target.shape}")
    input, = autocast_float32(input)  # torch's autocast runs it in float32
    return _reduce(-input.gather(1, target.unsqueeze(1)).squeeze(1), reduction)


def gelu(input, approximate="none"):
    return input.gelu(approximate)


def softmax(input, dim):
    return input.softmax(dim)


def log_softmax(input, dim):
    return input.log_softmax(dim)


def _check_int_index(idx, name):
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer tensor, got dtype {idx.dtype}")


def cross_entropy(input, target, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """input (N, C) or (N, C, d1, ...) logits; target (N,) or (N, d1, ...) class indices."""
    _check_float(input, "cross_entropy")
    target = target if isinstance(target, Tensor) else Tensor(target, device=input.device)
    _check_int_index(target, "cross_entropy target")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    if input.ndim < 2 or target.shape != input.shape[:1] + input.shape[2:]:
        raise ValueError(f"cross_entropy expects input (N, C, ...) and target (N, ...); got input "
                         f"{input.shape} and target {target.shape}")
    c = input.shape[1]
    t = target.data

    def report(lo, hi):
        if lo < 0 or hi >= c:
            raise IndexError(f"cross_entropy target {hi if hi >= c else lo} is out of range for {c} classes "
                             f"(expected 0..{c - 1} or ignore_index={ignore_index})")
    bounds.check(array_module(t).where(t == ignore_index, 0, t), report)
    logits = input
    if input.ndim > 2:  # move classes last, then rows
        logits = input.permute(0, *range(2, input.ndim), 1)
    loss = apply(CrossEntropy, logits.reshape(-1, c), t.reshape(-1), ignore_index, reduction,
                 float(label_smoothing))
    return loss.reshape(target.shape) if reduction == "none" else loss


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    _check_float(input, "layer_norm")
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if input.shape[input.ndim - len(shape):] != shape:
        raise ValueError(f"layer_norm: normalized_shape {shape} does not match the input's trailing "
                         f"dims (input shape {input.shape})")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.shape != shape:
            raise ValueError(f"layer_norm: {name} has shape {p.shape}, expected {shape}")
    return apply(LayerNorm, input, weight, bias, len(shape), eps)


def embedding(input, weight):
    """weight[input]; input holds integer ids in [0, num_embeddings)."""
    idx = input if isinstance(input, Tensor) else Tensor(input, device=weight.device)
    _check_int_index(idx, "embedding indices")
    n = weight.shape[0]

    def report(lo, hi):
        if lo < 0 or hi >= n:
            raise IndexError(f"embedding index {hi if hi >= n else lo} is out of range for {n} embeddings "
                             f"(expected 0..{n - 1})")
    bounds.check(idx.data, report)
    return apply(Embedding, idx.data, weight)


def dropout(input, p=0.5, training=True):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    return apply(Dropout, input, p, backend.next_seed(input.device))


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 scale=None):
    """softmax(q k^T * scale + mask) v over the last two dims, as torch's.

    attn_mask: bool (True = take part in attention) or float (added to the scores, and
    differentiable). One op (ops/attention.py); dropout_p applies whenever it is > 0, as
    in torch, so pass 0.0 in eval."""
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ValueError(f"attention shapes do not fit: query {query.shape}, key {key.shape}, "
                         f"value {value.shape}")
    if attn_mask is not None and is_causal:
        raise ValueError("pass either attn_mask or is_causal=True, not both")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
    seed = backend.next_seed(query.device) if dropout_p else None
    bias = attn_mask if attn_mask is None or isinstance(attn_mask, Tensor) else Tensor(attn_mask, device=query.device)
    if bias is not None and bias.device != query.device:
        raise RuntimeError(f"attn_mask is on {bias.device}, but query is on {query.device}")
    if bias is not None and bias.dtype == backend.bool_:  # keep -> 0, drop -> -inf
        bias = array_module(query.data).where(bias.data, query.dtype.type(0), query.dtype.type(-math.inf))
    return apply(Attention, query, key, value, bias, scale, dropout_p, seed, is_causal)
