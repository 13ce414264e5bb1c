"""Autocast: which dtype each op runs in inside `with tg.autocast(...)`, as PyTorch decides it.

Inside the block, an op on tensors of the autocast device runs in one of three ways, by the
op (PyTorch's lists, per device type):
  LOWER  matrix products (matmul, linear, attention): float inputs are cast to the low dtype
         (bfloat16 or float16), so the product runs on tensor cores; the GEMMs accumulate in
         float32 and round once.
  FP32   ops whose results lose too much in 16 bits (exp, log, softmax, layer norm, sums,
         losses): 16-bit inputs are cast up to float32.
  other  ops run in the dtype their inputs have (add of a bfloat16 and a float32 gives
         float32, by the usual promotion).
float64 tensors are never cast. Parameters stay float32 (master weights): a cast is an op of
the graph like any other, so each gradient comes back in its input's dtype. The casts of leaf
tensors that need a gradient (the weights) are kept until the outermost block ends, so a
weight used by several ops is cast once per forward, as torch caches them.

The state is a context variable (like grad mode): each thread and task starts with autocast
off. tensor.apply asks `active()` for every op and `target(...)` for the dtype to cast to.
"""
import contextvars
import functools

from . import backend
from .ops import attention, cross_entropy, cumsum, elementwise as E, layer_norm, linear, matmul, movement, \
    reduce as R, softmax, unary as U

LOWER = frozenset({matmul.MatMul, linear.Linear, attention.Attention})
FP32 = {  # PyTorch's float32 lists for the ops we have (autocast_mode.cpp); CPU keeps far fewer
    "cuda": frozenset({E.Exp, E.Log, E.Pow, U.Tan, U.Asin, U.Acos, U.Sinh, U.Cosh, U.Log1p, U.Expm1,
                       softmax.Softmax, softmax.LogSoftmax, layer_norm.LayerNorm, cross_entropy.CrossEntropy,
                       R.Sum, R.Prod, R.LogSumExp, cumsum.Cumsum}),
    "cpu": frozenset({cross_entropy.CrossEntropy, R.Prod}),
}
PROMOTE = frozenset({movement.Cat})  # cat and stack run in the widest float dtype of their inputs
DEFAULT_DTYPE = {"cuda": "float16", "cpu": "bfloat16"}  # torch's defaults

_active = contextvars.ContextVar("tinygrad_tf_autocast", default=None)


class _Region:
    """What one entered autocast block switched on: the low dtype per device type, and the
    weight-cast cache shared by the blocks nested in the outermost one."""

    def __init__(self, dtypes, cache):
        self.dtypes, self.cache = dtypes, cache

    def target(self, op, tensors):
        """The dtype `op` casts its float tensors to, or None to leave them as they are;
        `tensors` are (dtype, device) pairs of the op's tensor arguments."""
        types = {_device_type(device) for _, device in tensors}
        kind = next(iter(types)) if len(types) == 1 else None
        low = self.dtypes.get(kind)
        if low is None:
            return None
        if op in LOWER:
            return low
        if op in FP32[kind]:
            return backend.float32
        if op in PROMOTE:
            floats = [d for d, _ in tensors if castable(d)]
            return backend.promote_floats(floats) if floats else None
        return None


def _device_type(device):
    return "cpu" if device == "cpu" else "cuda"


def castable(dtype):
    """Autocast casts float tensors of 16 and 32 bits; float64 (and non-floats) are left alone."""
    return backend.is_floating(dtype) and dtype != backend.float64


def active():
    """The innermost autocast region in force here, or None."""
    return _active.get()


def is_autocast_enabled(device_type="cuda"):
    region = _active.get()
    return region is not None and region.dtypes.get(device_type) is not None


def get_autocast_dtype(device_type):
    region = _active.get()
    low = None if region is None else region.dtypes.get(device_type)
    return low if low is not None else backend.parse_dtype(DEFAULT_DTYPE[_checked_type(device_type)])


def _checked_type(device_type):
    if device_type not in DEFAULT_DTYPE:
        raise ValueError(f"autocast device_type must be 'cuda' or 'cpu', got {device_type!r}")
    return device_type


class autocast:  # noqa: N801  (torch's name)
    """`with tg.autocast("cuda", dtype=tg.bfloat16):` runs matrix products in bfloat16 and the
    ops that need range in float32 (see the module's docstring); also a decorator.
    enabled=False switches autocast off for the device type inside the block."""

    def __init__(self, device_type, dtype=None, enabled=True, cache_enabled=True):
        self.device_type = _checked_type(device_type)
        if not isinstance(enabled, bool):
            raise TypeError(f"autocast's enabled must be a bool, got {type(enabled).__name__}")
        if dtype is not None or enabled:  # switched off with no dtype: none is needed (nor ml_dtypes for the CPU's)
            dtype = backend.parse_dtype(DEFAULT_DTYPE[device_type] if dtype is None else dtype)
            if not (dtype == backend.float16 or backend.is_bfloat16(dtype)):
                raise ValueError(f"autocast dtype must be tg.bfloat16 or tg.float16, got {dtype}")
        self.dtype, self.enabled, self.cache_enabled, self._tokens = dtype, enabled, cache_enabled, []

    def __enter__(self):
        outer = _active.get()
        dtypes = dict(outer.dtypes) if outer is not None else {}
        dtypes[self.device_type] = self.dtype if self.enabled else None
        cache = outer.cache if outer is not None else {}
        self._tokens.append(_active.set(_Region(dtypes, cache if self.cache_enabled else None)))
        return self

    def __exit__(self, *exc):
        region = _active.get()
        _active.reset(self._tokens.pop())
        if _active.get() is None and region.cache:
            region.cache.clear()  # the outermost block ends: its weight casts go
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with autocast(self.device_type, self.dtype, self.enabled, self.cache_enabled):
                return fn(*args, **kwargs)
        return wrapper
