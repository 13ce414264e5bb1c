"""Factory functions: tg.tensor, zeros, randn, cat, where, ... (PyTorch's names)."""
import numpy as np

from . import backend
from .backend import parse_device, parse_dtype
from .ops import elementwise as E, movement as V
from .ops.reduce import normalize_dims
from .tensor import Tensor, apply, shape_arg, where  # noqa: F401 (tg.where)


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new leaf tensor with its own copy of data (as torch.tensor): an optimizer's
    in-place update of it never changes the caller's array."""
    if isinstance(data, Tensor):
        data = data.data
    if hasattr(data, "copy") and hasattr(data, "dtype"):
        data = data.copy(order="K")  # keeps the layout (e.g. a transposed view stays one)
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def _make(fill, shape, dtype, device, requires_grad, default=backend.float32):
    device, shape = parse_device(device), shape_arg(shape)
    if any(n < 0 for n in shape):
        raise ValueError(f"sizes must be non-negative, got {shape}")
    data = fill(backend.xp_for(device), shape, parse_dtype(dtype) or default, device)
    return Tensor(data, requires_grad=requires_grad)


def zeros(*shape, dtype=None, device="cpu", requires_grad=False):
    return _make(lambda xp, s, dt, dev: xp.zeros(s, dt), shape, dtype, device, requires_grad)


def ones(*shape, dtype=None, device="cpu", requires_grad=False):
    return _make(lambda xp, s, dt, dev: xp.ones(s, dt), shape, dtype, device, requires_grad)


def empty(*shape, dtype=None, device="cpu", requires_grad=False):
    return _make(lambda xp, s, dt, dev: xp.empty(s, dt), shape, dtype, device, requires_grad)


def full(shape, fill_value, dtype=None, device="cpu", requires_grad=False):
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"full needs a size tuple, e.g. full((3,), 1.0); got {shape!r}")
    default = backend.float32 if isinstance(fill_value, float) else (
        backend.bool_ if isinstance(fill_value, bool) else backend.int64)
    return _make(lambda xp, s, dt, dev: xp.full(s, fill_value, dt), shape, dtype, device,
                 requires_grad, default)


def from_numpy(array):
    """A tensor that shares the array's memory and keeps its dtype (torch.from_numpy)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    if array.dtype not in backend.DTYPES.values():
        raise TypeError(f"from_numpy: dtype {array.dtype} is not supported; expected one of {sorted(backend.DTYPES)}")
    return Tensor._wrap(array)


def zeros_like(t, dtype=None, requires_grad=False):
    return zeros(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return ones(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def empty_like(t, dtype=None, requires_grad=False):
    return empty(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def full_like(t, fill_value, dtype=None, requires_grad=False):
    return full(t.shape, fill_value, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def rand_like(t, dtype=None, requires_grad=False):
    return rand(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def randn_like(t, dtype=None, requires_grad=False):
    return randn(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def eye(n, m=None, dtype=None, device="cpu", requires_grad=False):
    return _make(lambda xp, s, dt, dev: xp.eye(n, n if m is None else m, dtype=dt), (), dtype, device,
                 requires_grad)


def linspace(start, end, steps, dtype=None, device="cpu", requires_grad=False):
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"linspace: steps must be a non-negative int, got {steps!r}")
    return _make(lambda xp, s, dt, dev: xp.linspace(start, end, steps, dtype=dt), (), dtype, device,
                 requires_grad)


def arange(start, end=None, step=1, dtype=None, device="cpu", requires_grad=False):
    start, end = (0, start) if end is None else (start, end)
    if step == 0 or any(v != v for v in (start, end, step)):  # v != v: NaN
        raise ValueError(f"arange: step must be nonzero and the bounds numbers, got start={start}, end={end}, "
                         f"step={step}")
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
    return t.tril(diagonal)


def triu(t, diagonal=0):
    return t.triu(diagonal)


def randperm(n, *, generator=None, dtype=None, device="cpu"):
    """A random permutation of 0..n-1 (the order of n uniform draws)."""
    return _make(lambda xp, s, dt, dev: xp.argsort(backend.draw_from(generator, dev).random(n)).astype(dt),
                 (), dtype, device, False, backend.int64)


def multinomial(input, num_samples, replacement=False, *, generator=None):
    """Indices drawn from the categories of each row of `input` (weights, not necessarily summing
    to 1), as torch.multinomial. With replacement: by the inverse of each row's CDF. Without: the
    num_samples categories whose exponential clocks -log(u) / p ring first, which draws them in
    the same law as taking one at a time and removing it."""
    if input.ndim not in (1, 2) or not backend.is_floating(input.dtype):
        raise ValueError(f"multinomial expects a 1-D or 2-D float tensor of weights, got {input.dtype} {input.shape}")
    xp = backend.array_module(input.data)
    p = input.data.reshape(-1, input.shape[-1])
    if not bool(((p >= 0) & xp.isfinite(p)).all()) or not bool((p.sum(axis=1) > 0).all()):
        raise ValueError("multinomial: the weights must be finite and non-negative, with a positive sum per row")
    if not replacement and num_samples > int((p > 0).sum(axis=1).min()):
        raise ValueError(f"multinomial: cannot draw {num_samples} samples without replacement from rows with "
                         f"fewer non-zero weights")
    u = backend.draw_from(generator, input.device).random((p.shape[0], num_samples if replacement else p.shape[1]))
    if replacement:
        cdf = xp.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
        out = xp.minimum((cdf[:, None, :] <= u[:, :, None]).sum(axis=2), p.shape[1] - 1)
    else:
        out = xp.argsort(_divide_quietly(-xp.log1p(-u), p), axis=1)[:, :num_samples]
    return Tensor._wrap(out.astype(backend.int64).reshape(input.shape[:-1] + (num_samples,)))


def _divide_quietly(a, b):
    """a / b where b may be 0 (a category of weight 0 never rings: an infinite clock; CuPy never warns)."""
    with np.errstate(divide="ignore"):
        return a / b


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
