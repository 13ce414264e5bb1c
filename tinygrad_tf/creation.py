"""Factory functions: tg.tensor, zeros, randn, cat, where, ... (PyTorch's names)."""
from . import backend
from .backend import parse_device, parse_dtype
from .ops import elementwise as E, movement as V
from .ops.reduce import normalize_dims
from .tensor import Tensor, apply, shape_arg


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new leaf tensor with its own copy of data (as torch.tensor): an optimizer's
    in-place update of it never changes the caller's array."""
    if isinstance(data, Tensor):
        data = data.data
    if hasattr(data, "copy") and hasattr(data, "dtype"):
        data = data.copy(order="K")  # keeps the layout (e.g. a transposed view stays one)
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def _make(fill, shape, dtype, device, requires_grad, default=backend.float32):
    device = parse_device(device)
    data = fill(backend.xp_for(device), shape_arg(shape), parse_dtype(dtype) or default, device)
    return Tensor(data, requires_grad=requires_grad)


def zeros(*shape, dtype=None, device="cpu", requires_grad=False):
    return _make(lambda xp, s, dt, dev: xp.zeros(s, dt), shape, dtype, device, requires_grad)


def ones(*shape, dtype=None, device="cpu", requires_grad=False):
    return _make(lambda xp, s, dt, dev: xp.ones(s, dt), shape, dtype, device, requires_grad)


def empty(*shape, dtype=None, device="cpu", requires_grad=False):
    return _make(lambda xp, s, dt, dev: xp.empty(s, dt), shape, dtype, device, requires_grad)


def full(shape, fill_value, dtype=None, device="cpu", requires_grad=False):
    default = backend.float32 if isinstance(fill_value, float) else (
        backend.bool_ if isinstance(fill_value, bool) else backend.int64)
    return _make(lambda xp, s, dt, dev: xp.full(s, fill_value, dt), shape, dtype, device,
                 requires_grad, default)


def zeros_like(t, dtype=None, requires_grad=False):
    return zeros(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return ones(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device="cpu", requires_grad=False):
    start, end = (0, start) if end is None else (start, end)
    is_float = any(isinstance(v, float) for v in (start, end, step))
    dtype = parse_dtype(dtype) or (backend.float32 if is_float else backend.int64)
    data = backend.xp_for(parse_device(device)).arange(start, end, step, dtype=dtype)
    return Tensor(data, requires_grad=requires_grad)


def randn(*shape, generator=None, dtype=None, device="cpu", requires_grad=False):
    return _make(lambda xp, s, dt, dev: backend.draw_from(generator, dev).standard_normal(s, dtype=dt),
                 shape, dtype, device, requires_grad)


def rand(*shape, generator=None, dtype=None, device="cpu", requires_grad=False):
    return _make(lambda xp, s, dt, dev: backend.draw_from(generator, dev).random(s, dtype=dt),
                 shape, dtype, device, requires_grad)


def randint(low, high=None, size=None, *, generator=None, dtype=None, device="cpu"):
    """Integers in [low, high): randint(high, size) or randint(low, high, size), as torch's."""
    if size is None and isinstance(high, (tuple, list)):  # randint(high, (n,)): torch's two-argument form
        low, high, size = 0, low, high
    low, high = (0, low) if high is None else (low, high)
    if not isinstance(size, (tuple, list)):
        raise TypeError(f"randint needs a size tuple, e.g. randint(10, (3,)) or randint(0, 10, (3,)); got {size!r}")
    if high <= low:
        raise ValueError(f"randint needs low < high, got low={low}, high={high}")
    return _make(lambda xp, s, dt, dev: backend.draw_from(generator, dev).integers(low, high, size=s).astype(dt),
                 size, dtype, device, False, backend.int64)


def tril(t, diagonal=0):
    """Lower triangle of the last two dims, e.g. tril(ones(T, T)) for a causal mask."""
    xp = backend.array_module(t.data)
    keep = xp.tril(xp.ones(t.shape[-2:], dtype=bool), diagonal)
    return apply(E.Where, keep, t, t.dtype.type(0))


def _check_same(ts, what):
    if not ts:
        raise ValueError(f"{what} needs a non-empty sequence of tensors")
    first = ts[0]
    for t in ts[1:]:
        if t.device != first.device:
            raise RuntimeError(f"{what}: tensors are on different devices ({first.device} and {t.device})")
        if t.ndim != first.ndim:
            raise ValueError(f"{what}: tensors have different numbers of dims: {first.shape} and {t.shape}")


def cat(tensors, dim=0):
    ts = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    _check_same(ts, "cat")
    (d,) = normalize_dims(dim, ts[0].ndim)
    for t in ts[1:]:
        if t.shape[:d] + t.shape[d + 1:] != ts[0].shape[:d] + ts[0].shape[d + 1:]:
            raise ValueError(f"cat: shapes {ts[0].shape} and {t.shape} differ outside dim {d}")
    return apply(V.Cat, *ts, dim=d)


def stack(tensors, dim=0):
    ts = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    _check_same(ts, "stack")
    for t in ts[1:]:
        if t.shape != ts[0].shape:
            raise ValueError(f"stack expects tensors of equal shape, got {ts[0].shape} and {t.shape}")
    return cat([t.unsqueeze(dim) for t in ts], dim)


def where(condition, input, other):
    """input where condition else other; either side may be a tensor or a number."""
    cond = condition if isinstance(condition, Tensor) else Tensor(condition)
    if cond.dtype != backend.bool_:
        raise TypeError(f"where expects a bool condition, got dtype {cond.dtype}")
    ref = input if isinstance(input, Tensor) else (other if isinstance(other, Tensor) else cond)
    a = ref._operand(input) if isinstance(input, Tensor) else input
    b = ref._operand(other) if isinstance(other, Tensor) else other
    ref._operand(cond)
    return apply(E.Where, cond.data, a, b)
