"""Tensor: an array, its gradient, and the Function that made it.

`.data` is the raw backend array (numpy.ndarray or cupy.ndarray); `.grad` is a
Tensor (or None). Operators and methods are thin sugar over `apply(op, ...)`, which runs
a textbook op (ops/) or the fused twin that dispatch.py picks for it.
"""
import contextlib
import contextvars
import functools
import math
import weakref

import numpy as np

from . import autocast_mode, autograd, backend, bounds, dispatch, return_types
from .backend import array_module, device_of, parse_device, parse_dtype
from .grad_mode import enable_grad, is_grad_enabled, no_grad
from .ops import cumsum, elementwise as E, gather, matmul as M, minmax, movement as V, reduce as R, \
    softmax as S, unary as U
from .ops.layout import is_mask
from .ops.reduce import normalize_dims

FLOAT_DTYPES = backend.FLOAT_DTYPES


def as_array(data, dtype=None, device=None):
    """Anything array-like -> a backend array; Python floats default to float32."""
    dtype = parse_dtype(dtype)
    if isinstance(data, Tensor):
        data = data.data
    if backend.is_cuda_array(data) or isinstance(data, np.ndarray):
        arr = data
    else:
        try:
            arr = np.asarray(data)
        except ValueError as e:
            raise ValueError(f"cannot make a tensor from a ragged nested sequence "
                             f"(every row must have the same length): {e}") from None
        if dtype is None and arr.dtype == np.float64:
            arr = arr.astype(np.float32)
    if dtype is None and arr.dtype not in backend.DTYPES.values():
        if arr.dtype.kind in "iu" and arr.dtype != np.uint64:
            dtype = backend.int64
        elif arr.dtype.kind == "f":  # float16 and bfloat16 arrays are kept (DTYPES above)
            dtype = backend.float32
        else:
            raise TypeError(f"cannot make a tensor of dtype {arr.dtype}: expected numbers or bools")
    if dtype is not None and arr.dtype != dtype:
        arr = arr.astype(dtype)
    if device is not None:
        arr = backend.to_device(arr, parse_device(device))
    return arr


_observer = contextvars.ContextVar("tinygrad_tf_op_observer", default=None)


def apply(op, *args, **kwargs):
    """Run textbook op `op` (a Function class), or the fused twin dispatch picks for these
    arguments, on tensors and constants; record the node when a gradient is needed."""
    region = autocast_mode.active()
    if region is not None:
        args = _autocast(region, op, args)
    raw = [a.data if isinstance(a, Tensor) else a for a in args]
    fn = dispatch.choose(op, raw, kwargs)()
    record = is_grad_enabled()
    fn.needs_grad = needs = tuple([isinstance(a, Tensor) and record and a._requires_grad for a in args])
    observer = _observer.get()
    if observer is not None:
        observer.before(fn, raw, kwargs)
    data = fn.forward(*raw, **kwargs)
    if isinstance(data, np.generic):  # NumPy reductions give scalars; .data is always an array
        data = np.asarray(data)
    recorded = any(needs)
    out = Tensor._wrap(data, fn if recorded else None)
    if data.base is not None:  # a view (reshape, permute, slice...): writes to either are writes to both
        viewed = next((a for a in args if isinstance(a, Tensor) and _storage(a.data) is _storage(data)), None)
        if viewed is not None:
            out._version = viewed._version
    if not recorded:
        return out
    # Per argument (one pass: this runs for every op of a forward): the node its gradient goes to,
    # its shape, and the version of each tensor backward reads (plain tuples: per op).
    reads = op.reads_for(needs)
    parents, shapes, versions = [], [], []
    for i, a in enumerate(args):
        tensor = isinstance(a, Tensor)
        parents.append(a._grad_node() if tensor else None)
        shapes.append(a.data.shape if tensor else None)
        if tensor and (reads is None or i in reads):
            versions.append((a._version, a._version[0]))
    if op.reads_output:
        versions.append((out._version, out._version[0]))
    fn.parents, fn.input_shapes, fn.saved_versions = tuple(parents), tuple(shapes), tuple(versions)
    if observer is not None:
        observer.after(fn, out)
    return out


def _autocast(region, op, args):
    """`args` with their float tensors cast to the dtype autocast runs `op` in (autocast_mode.py)."""
    target = region.target(op, [(a.dtype, a.device) for a in args if isinstance(a, Tensor)])
    if target is None:
        return args
    return tuple(_cast(region, a, target) if isinstance(a, Tensor) and autocast_mode.castable(a.dtype) else a
                 for a in args)


def _cast(region, t, dtype):
    """t in `dtype` through a Cast node; a weight's cast (a leaf that needs a gradient) is kept in
    the region's cache while it is unchanged, so each weight is cast once per forward."""
    if t.dtype == dtype:
        return t
    if region.cache is None or not (t._requires_grad and t._ctx is None and is_grad_enabled()):
        return apply(V.Cast, t, dtype)
    key, version = (id(t), dtype), t._version[0]
    hit = region.cache.get(key)
    if hit is None or hit[0] is not t or hit[1] != version:
        hit = region.cache[key] = (t, version, apply(V.Cast, t, dtype))
    return hit[2]


def autocast_args(op, *args):
    """`args` cast as apply will cast them for `op` under autocast: for the functions that check
    their operands' dtypes before they apply an op (torch casts first, then checks)."""
    region = autocast_mode.active()
    return args if region is None else _autocast(region, op, args)


def autocast_float32(*tensors):
    """The tensors in float32 where autocast is on for their device: for the losses that torch's
    autocast runs in float32 but that are composed of several ops here (mse_loss, l1_loss, ...)."""
    region = autocast_mode.active()
    if region is None:
        return tensors
    return tuple(_cast(region, t, backend.float32) if isinstance(t, Tensor) and autocast_mode.castable(t.dtype)
                 and region.dtypes.get("cpu" if t.device == "cpu" else "cuda") is not None else t for t in tensors)


def _storage(array):
    """The array that owns the memory of `array` (itself, or the base of a view)."""
    return array if array.base is None else array.base


@contextlib.contextmanager
def observed(observer):
    """Inside: every apply calls observer.before(fn, raw_args, kwargs) before the forward and
    observer.after(fn, output) when it recorded a node (graphcheck.py records ops this way)."""
    token = _observer.set(observer)
    try:
        yield observer
    finally:
        _observer.reset(token)


class RemovableHandle:
    def __init__(self, hooks, hook):
        self.hooks, self.hook = hooks, hook

    def remove(self):
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


def _keepdims_alias(method):
    """Accept NumPy's keepdims= for torch's keepdim= (torch takes both)."""
    @functools.wraps(method)
    def reduction(self, *args, keepdims=None, **kwargs):
        if keepdims is not None:
            kwargs["keepdim"] = keepdims
        return method(self, *args, **kwargs)
    return reduction


class Tensor:
    # _version: a one-item list counting in-place writes, shared by a tensor and its views, so that a
    # backward can tell that a value it saved was overwritten since (autograd.py raises then).
    __slots__ = ("data", "_grad", "_requires_grad", "_ctx", "_hooks", "_version", "_post_hooks", "__weakref__")
    __hash__ = object.__hash__  # identity, although == is elementwise
    is_leaf_node = True  # as a parent in the graph, a tensor is where gradients stop

    def __init__(self, data, dtype=None, device=None, requires_grad=False):
        self.data = as_array(data, dtype, device)
        self._grad, self._ctx, self._hooks, self._requires_grad, self._version = None, None, [], False, [0]
        self._post_hooks = ()
        self.requires_grad = requires_grad

    @classmethod
    def _wrap(cls, data, ctx=None):
        """Fast path for ops: no conversion, no checks."""
        t = cls.__new__(cls)
        t.data, t._grad, t._ctx, t._hooks, t._requires_grad, t._version = data, None, ctx, [], ctx is not None, [0]
        t._post_hooks = ()
        return t

    # --- properties -----------------------------------------------------------------
    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        if flag and self.data.dtype not in FLOAT_DTYPES:
            raise TypeError(f"only floating-point tensors can require gradients, got dtype {self.dtype}")
        if not flag and self._ctx is not None:
            raise RuntimeError("requires_grad can only be turned off on leaf tensors; use .detach()")
        self._requires_grad = bool(flag)

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, value):
        """None, or a tensor of this tensor's shape, dtype and device (an optimizer would otherwise
        broadcast a wrong one into its update without a word)."""
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad must be a Tensor or None, got {type(value).__name__}")
            if (value.shape, value.dtype, value.device) != (self.shape, self.dtype, self.device):
                raise RuntimeError(f"assigned grad has shape {value.shape}, dtype {value.dtype} on {value.device}; "
                                 f"expected the tensor's: shape {self.shape}, dtype {self.dtype} on {self.device}")
        self._grad = value

    shape = property(lambda self: Size(self.data.shape))
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    device = property(lambda self: device_of(self.data))
    is_leaf = property(lambda self: self._ctx is None)
    grad_fn = property(lambda self: self._ctx)
    T = property(lambda self: self.permute(*reversed(range(self.ndim))))

    def numel(self):
        return int(self.data.size)

    nelement = numel

    def dim(self):
        return self.ndim

    def is_floating_point(self):
        return self.dtype in FLOAT_DTYPES

    def clone(self):
        """A copy in new memory that stays in the graph."""
        return apply(V.Clone, self)

    def t(self):
        """The transpose of a matrix (a 0-d or 1-d tensor is returned as it is), as torch.t."""
        if self.ndim > 2:
            raise ValueError(f"t() expects a tensor with <= 2 dims, got shape {self.shape}; use transpose(d0, d1)")
        return self if self.ndim < 2 else self.transpose(0, 1)

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[normalize_dims(dim, self.ndim)[0]]

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self):
        body = np.array2string(bounds.read_back(self.data), separator=", ", prefix="tensor(")
        extras = [] if self.device == "cpu" else [f"device='{self.device}'"]
        if self.dtype not in (backend.float32, backend.int64, backend.bool_):
            extras.append(f"dtype={self.dtype}")
        if self._ctx is not None:
            extras.append(f"grad_fn=<{type(self._ctx).__name__}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"tensor({', '.join([body] + extras)})"

    # --- autograd -------------------------------------------------------------------
    def _grad_node(self):
        return self._ctx if self._ctx is not None else (self if self._requires_grad else None)

    def _run_hooks(self, grad):
        for hook in self._hooks:
            grad = hook(grad)
        return grad

    def _accumulate(self, grad, owned=False):
        """Add grad into .grad. Unless the walk knows nobody else holds this array
        (`owned`), the first gradient is copied: backward may hand out views and shared arrays."""
        if grad.dtype != self.dtype:
            grad, owned = grad.astype(self.dtype), True
        if self._grad is None:
            self._grad = Tensor._wrap(grad if owned else grad.copy())
        else:
            self._grad.data = self._grad.data + grad

    def backward(self, gradient=None, retain_graph=False):
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad and has no grad_fn")
        if gradient is None:
            if self.numel() != 1:
                raise RuntimeError(f"grad can be implicitly created only for scalar outputs; this "
                                   f"tensor has shape {self.shape}: pass gradient=")
            grad = array_module(self.data).ones(self.shape, self.dtype)
        else:
            grad = as_array(gradient, self.dtype, self.device).copy()  # never alias the caller's array
            if grad.shape != self.shape:
                raise ValueError(f"gradient has shape {grad.shape}, expected the tensor's shape {self.shape}")
        autograd.backward(self, grad, retain_graph)

    def detach(self):
        """The same memory, outside the graph (in-place writes to either are seen by both)."""
        out = Tensor._wrap(self.data)
        out._version = self._version
        return out

    # --- in-place writes ------------------------------------------------------------
    # An in-place op writes into .data and counts the write in _version. In the graph it is
    # refused: a tensor that requires grad is written only under no_grad (the optimizer's way).
    def _write(self, what, value, index=Ellipsis):
        """Write value (array, number or tensor) into self.data[index], as in-place op `what`.

        With grad on, a write into a tensor of the graph (or of a value that requires grad) is
        recorded as a SetItem node, which this tensor then carries as its grad_fn, as in torch."""
        if is_grad_enabled() and (self._requires_grad or (isinstance(value, Tensor) and value._requires_grad)):
            if self._requires_grad and self._ctx is None:
                raise RuntimeError(f"{what} writes in place into a leaf tensor that requires grad; do it under "
                                   f"tg.no_grad() (as an optimizer does)")
            self._ctx, self._requires_grad = apply(V.SetItem, self, value, index)._ctx, True
        else:
            value = value.data if isinstance(value, Tensor) else value
            value = backend.to_device(value, self.device) if hasattr(value, "dtype") else value
            select, rest = V.split_ints(index)  # (torch's rules, as SetItem's)
            V.part(self.data, select)[rest] = value
        self._version[0] += 1
        return self

    def copy_(self, src):
        """Write src's values into this tensor's memory, cast to its dtype and moved to its device,
        broadcast to its shape (PyTorch's copy_). How a captured CUDA graph gets new inputs."""
        data = src.data if isinstance(src, Tensor) else src if backend.is_cuda_array(src) else np.asarray(src)
        _check_broadcasts_to(data.shape, self.shape, "copy_: the source")
        return self._write("copy_", data.astype(self.dtype, copy=False))

    def _inplace(self, what, op, other):
        """self = op(self, other), computed as the out-of-place op (torch's type promotion), then
        written back: the result must fit self's shape and cast to its dtype as torch allows. In
        the graph, op reads a clone of self, whose value the write leaves as it was."""
        in_graph = is_grad_enabled() and (self._requires_grad or (isinstance(other, Tensor) and other._requires_grad))
        with set_grad_enabled_to(in_graph):
            result = op(self.clone() if in_graph else self, other)
        _check_broadcasts_to(result.shape, self.shape, f"{what}: the result")
        if backend._category(result.dtype) > backend._category(self.dtype):
            raise RuntimeError(f"{what}: result type {result.dtype} can't be cast to the tensor's dtype {self.dtype}")
        return self._write(what, result)

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        """NumPy meets a tensor: `p.data += -lr * p.grad` (p.data is the raw array, the ufunc writes
        into it) computes on the raw arrays; `array + tensor` is the tensor op, as in torch."""
        if out is not None:
            raw_out = tuple(o.data if isinstance(o, Tensor) else o for o in out)
            return getattr(ufunc, method)(*(x.data if isinstance(x, Tensor) else x for x in inputs), out=raw_out,
                                          **kwargs)
        binary = {np.add: "__add__", np.subtract: "__sub__", np.multiply: "__mul__", np.true_divide: "__truediv__",
                  np.power: "__pow__", np.matmul: "__matmul__"}
        if method != "__call__" or ufunc not in binary or len(inputs) != 2 or kwargs:
            return NotImplemented
        a, b = (x if isinstance(x, Tensor) else Tensor(x, device=self.device) for x in inputs)
        return getattr(a, binary[ufunc])(b)

    def __iadd__(self, other): return self.add_(other)
    def __isub__(self, other): return self.sub_(other)
    def __imul__(self, other): return self.mul_(other)
    def __itruediv__(self, other): return self.div_(other)

    def add_(self, other, alpha=1):
        return self._inplace("add_", lambda a, b: a + b * alpha if alpha != 1 else a + b, other)

    def sub_(self, other, alpha=1):
        return self._inplace("sub_", lambda a, b: a - b * alpha if alpha != 1 else a - b, other)

    def mul_(self, other):
        return self._inplace("mul_", lambda a, b: a * b, other)

    def div_(self, other):
        return self._inplace("div_", lambda a, b: a / b, other)

    def clamp_(self, min=None, max=None):
        return self._inplace("clamp_", lambda a, _: a.clamp(min, max), None)

    def masked_fill_(self, mask, value):
        return self._inplace("masked_fill_", lambda a, _: a.masked_fill(mask, value), None)

    def fill_(self, value):
        return self._write("fill_", value.item() if isinstance(value, Tensor) else value)

    def zero_(self):
        return self._write("zero_", 0)

    def __setitem__(self, index, value):
        if isinstance(value, Tensor) and value.device != self.device:
            raise RuntimeError(f"cannot assign a tensor on {value.device} into a tensor on {self.device}")
        self._write("__setitem__", value, _index_arg(index, self))

    def requires_grad_(self, requires_grad=True):
        self.requires_grad = requires_grad
        return self

    def retain_grad(self):
        """Keep .grad on a non-leaf tensor too (leaves always keep it)."""
        if self._ctx is not None:
            self._ctx.retained = weakref.ref(self)

    def register_post_accumulate_grad_hook(self, hook):
        """hook(tensor), called after a backward has added into this leaf's .grad (torch's name):
        how DistributedDataParallel learns that a gradient is complete."""
        if self._ctx is not None or not self.requires_grad:
            raise RuntimeError("post-accumulate-grad hooks are for leaf tensors that require grad")
        if not self._post_hooks:
            self._post_hooks = []  # () until the first one: most tensors never get one
        self._post_hooks.append(hook)
        return RemovableHandle(self._post_hooks, hook)

    def _run_post_hooks(self):
        for hook in self._post_hooks:
            hook(self)

    def register_hook(self, hook):
        """hook(grad) -> None or a replacement gradient, called when grad is computed."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that does not require grad")
        def on_array(grad):  # the graph walk deals in arrays; the user's hook in tensors
            out = hook(Tensor._wrap(grad))
            if out is None:
                return grad
            if not isinstance(out, Tensor):
                raise TypeError(f"a gradient hook must return None or a Tensor, got {type(out).__name__}")
            if out.shape != grad.shape or out.dtype != grad.dtype:
                raise RuntimeError(f"a gradient hook returned shape {out.shape} and dtype {out.dtype}; expected "
                                   f"the gradient's shape {grad.shape} and dtype {grad.dtype}")
            return out.data

        hooks = self._hooks if self._ctx is None else self._ctx.hooks
        hooks.append(on_array)
        return RemovableHandle(hooks, on_array)

    # --- conversions ----------------------------------------------------------------
    def numpy(self):
        if self.requires_grad:
            raise RuntimeError("can't call numpy() on a tensor that requires grad; use .detach().numpy()")
        return bounds.read_back(self.data)

    def item(self):
        if self.numel() != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return bounds.read_back(self.data).item()

    def tolist(self):
        return bounds.read_back(self.data).tolist()

    def __bool__(self):
        return bool(self.item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        """A one-element integer tensor where Python wants an int (a slice bound, range, list index)."""
        if self.dtype.kind not in "iu" or self.numel() != 1:
            raise TypeError(f"only integer tensors of a single element can be converted to an index, got "
                            f"dtype {self.dtype} and shape {self.shape}")
        return int(self.item())

    def __format__(self, spec):
        """f"{loss:.4f}" formats a 0-d tensor's number, as torch does."""
        return format(self.item(), spec) if self.ndim == 0 else object.__format__(self, spec)

    def to(self, *args, dtype=None, device=None):
        """to(device), to(dtype) or to(device, dtype); differentiable, like PyTorch."""
        for a in args:
            if isinstance(a, str) and (a == "cpu" or a.startswith("cuda")):
                device = a
            else:
                dtype = a
        out = self
        if dtype is not None and parse_dtype(dtype) != self.dtype:
            dtype = parse_dtype(dtype)  # a cast to integers or bool is not differentiable: it cuts the graph
            out = apply(V.Cast, out if dtype in FLOAT_DTYPES else out.detach(), dtype)
        if device is not None and parse_device(device) != self.device:
            out = apply(V.ToDevice, out, parse_device(device))
        return out

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device="cuda"):
        return self.to(device)

    def float(self):
        return self.to(backend.float32)

    def double(self):
        return self.to(backend.float64)

    def half(self):
        return self.to(backend.float16)

    def bfloat16(self):
        return self.to(backend.bfloat16())

    def long(self):
        return self.to(backend.int64)

    def int(self):
        return self.to(backend.int32)

    def bool(self):
        return self.to(backend.bool_)

    def type_as(self, other):
        return self.to(other.dtype)

    def contiguous(self):
        """This tensor if its memory is in row-major order, else a copy that is (then .view works)."""
        return self if self.data.flags.c_contiguous else self.clone()

    def is_contiguous(self):
        return bool(self.data.flags.c_contiguous)

    # --- arithmetic -----------------------------------------------------------------
    def _operand(self, other):
        """A tensor operand checked against self, or a Python number passed as a constant."""
        if isinstance(other, Tensor):
            if device_of(other.data) != device_of(self.data):
                raise RuntimeError(f"expected both tensors on the same device, got "
                                   f"{self.device} and {other.device}")
            if other.shape != self.shape:
                try:
                    np.broadcast_shapes(self.shape, other.shape)
                except ValueError:
                    raise ValueError(f"shapes {self.shape} and {other.shape} cannot be broadcast "
                                     f"together") from None
            return other
        if isinstance(other, (bool, np.bool_)):
            return bool(other)
        if isinstance(other, (int, np.integer)):
            return int(other)
        if isinstance(other, (float, np.floating)):  # as a Python float: a NumPy float64 would promote
            return float(other)
        return Tensor(other, device=self.device)

    def _promoted(self, other):
        """The raw operands of self (op) other, cast to torch's result dtype."""
        other = self._operand(other)
        dtype = backend.result_type(self.data, other.data if isinstance(other, Tensor) else other)
        return (self.data.astype(dtype, copy=False),
                other.data.astype(dtype, copy=False) if isinstance(other, Tensor) else other)

    def _binary(self, op, other, reverse=False, true_division=False):
        """op(self, other) (or op(other, self)), the operands first cast to torch's result dtype."""
        other = self._operand(other)
        a, b = (other, self) if reverse else (self, other)
        same = (isinstance(other, Tensor) and other.dtype == self.dtype) or (
            isinstance(other, float) and backend.is_floating(self.dtype)) or (
            isinstance(other, int) and not isinstance(other, bool) and backend._category(self.dtype) > 0)
        dtype = self.dtype if same else backend.result_type(*(x.data if isinstance(x, Tensor) else x for x in (a, b)))
        if true_division and not backend.is_floating(dtype):
            dtype = backend.float32  # integers divide into the default float dtype, as torch
        a, b = (x.to(dtype) if isinstance(x, Tensor) and x.dtype != dtype else x for x in (a, b))
        return apply(op, a, b)

    def __add__(self, o): return self._binary(E.Add, o)
    def __radd__(self, o): return self._binary(E.Add, o, reverse=True)
    def __sub__(self, o): return self._binary(E.Sub, o)
    def __rsub__(self, o): return self._binary(E.Sub, o, reverse=True)
    def __mul__(self, o): return self._binary(E.Mul, o)
    def __rmul__(self, o): return self._binary(E.Mul, o, reverse=True)
    def __truediv__(self, o): return self._binary(E.Div, o, true_division=True)
    def __rtruediv__(self, o): return self._binary(E.Div, o, reverse=True, true_division=True)
    def __pow__(self, o): return self._binary(E.Pow, o)
    def __rpow__(self, o): return self._binary(E.Pow, o, reverse=True)
    def __neg__(self): return apply(E.Neg, self)
    def __matmul__(self, o): return self.matmul(o)
    def __rmatmul__(self, o): return self._operand(o).matmul(self)

    # Comparisons give bool tensors outside the graph.
    def _compare(self, o, op):
        o = self._operand(o)
        return Tensor._wrap(op(self.data, o.data if isinstance(o, Tensor) else o))

    # Logical and integer arithmetic: no gradients (torch has none for these either).
    def _bitwise(self, o, name, reverse=False):
        o = self._operand(o)
        operands = (o, self) if reverse else (self, o)
        if any(backend._category(x.dtype if isinstance(x, Tensor) else np.result_type(x)) == 2 for x in operands):
            raise TypeError(f"{name} is for bool and integer tensors, got dtypes "
                            f"{[str(x.dtype) if isinstance(x, Tensor) else type(x).__name__ for x in operands]}")
        a, b = (x.data if isinstance(x, Tensor) else x for x in operands)
        return Tensor._wrap(getattr(array_module(self.data), name)(a, b))

    def __and__(self, o): return self._bitwise(o, "bitwise_and")
    def __rand__(self, o): return self._bitwise(o, "bitwise_and", reverse=True)
    def __or__(self, o): return self._bitwise(o, "bitwise_or")
    def __ror__(self, o): return self._bitwise(o, "bitwise_or", reverse=True)
    def __xor__(self, o): return self._bitwise(o, "bitwise_xor")
    def __rxor__(self, o): return self._bitwise(o, "bitwise_xor", reverse=True)

    def __invert__(self):
        if backend.is_floating(self.dtype):
            raise TypeError(f"~ is for bool and integer tensors, got dtype {self.dtype}")
        return Tensor._wrap(~self.data)

    def logical_not(self): return Tensor._wrap(array_module(self.data).logical_not(self.data))
    def logical_and(self, o): return self.bool() & self._operand(o).bool()
    def logical_or(self, o): return self.bool() | self._operand(o).bool()

    def equal(self, other):
        """True when other has this shape and the same values (torch.equal)."""
        return self.shape == other.shape and bool((self == other).all())

    def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        a, b = self._promoted(other)
        return Tensor._wrap(array_module(self.data).isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return bool(self.isclose(other, rtol, atol, equal_nan).all())

    def __floordiv__(self, o):
        """Division rounded down (torch's //); not differentiable, like torch's floor_divide."""
        with no_grad():
            a, b = self._promoted(o)
            return Tensor._wrap(array_module(self.data).floor_divide(a, b))

    def __rfloordiv__(self, o):
        return self._operand(o).__floordiv__(self) if isinstance(o, Tensor) else \
            Tensor(o, dtype=backend.result_type(self.data, o), device=self.device) // self

    def __mod__(self, o):
        """The remainder with the divisor's sign (torch's %): self - (self // o) * o."""
        return self - (self // o) * o

    def __rmod__(self, o):
        return Tensor(o, dtype=backend.result_type(self.data, o), device=self.device) % self

    def __eq__(self, o): return self._compare(o, lambda a, b: a == b)
    def __ne__(self, o): return self._compare(o, lambda a, b: a != b)
    def __lt__(self, o): return self._compare(o, lambda a, b: a < b)
    def __le__(self, o): return self._compare(o, lambda a, b: a <= b)
    def __gt__(self, o): return self._compare(o, lambda a, b: a > b)
    def __ge__(self, o): return self._compare(o, lambda a, b: a >= b)

    def exp(self): return apply(E.Exp, self)
    def log(self): return apply(E.Log, self)
    def sqrt(self): return apply(E.Sqrt, self)
    def tanh(self): return apply(E.Tanh, self)
    def sigmoid(self): return apply(E.Sigmoid, self)
    def relu(self): return apply(E.Relu, self)
    def gelu(self, approximate="none"): return apply(E.Gelu, self, approximate=approximate)
    def abs(self): return apply(E.Abs, self)
    __abs__ = abs

    def clamp(self, min=None, max=None):
        if min is None and max is None:
            raise ValueError("clamp needs at least one of min and max")
        return apply(E.Clamp, self, min, max)

    def masked_fill(self, mask, value):
        """Where mask is True, put value (e.g. -inf before a softmax)."""
        mask = mask if isinstance(mask, Tensor) else Tensor(mask, device=self.device)
        if mask.dtype != backend.bool_:
            raise TypeError(f"masked_fill expects a bool mask, got dtype {mask.dtype}")
        self._operand(mask)  # checks device and broadcastability
        return apply(E.Where, mask.data, value, self)

    def pow(self, exponent): return self ** exponent
    def square(self): return self * self
    def rsqrt(self): return self ** -0.5  # a power, as torch's autocast lists it: float32 on the GPU
    def reciprocal(self): return self ** -1.0
    def neg(self): return -self
    def log2(self): return self.log() * (1 / math.log(2))
    def log10(self): return self.log() * (1 / math.log(10))
    def exp2(self): return 2.0 ** self
    def sin(self): return apply(U.Sin, self)
    def cos(self): return apply(U.Cos, self)
    def tan(self): return apply(U.Tan, self)
    def asin(self): return apply(U.Asin, self)
    def acos(self): return apply(U.Acos, self)
    def atan(self): return apply(U.Atan, self)
    def sinh(self): return apply(U.Sinh, self)
    def cosh(self): return apply(U.Cosh, self)
    def log1p(self): return apply(U.Log1p, self)
    def expm1(self): return apply(U.Expm1, self)
    def erf(self): return apply(U.Erf, self)
    def floor(self): return apply(U.Round, self, "floor")
    def ceil(self): return apply(U.Round, self, "ceil")
    def round(self): return apply(U.Round, self, "round")
    def trunc(self): return apply(U.Round, self, "trunc")
    def sign(self): return apply(U.Round, self, "sign")
    def silu(self): return self * self.sigmoid()

    def maximum(self, other):
        return self._binary(minmax.Maximum, other)

    def minimum(self, other):
        return self._binary(minmax.Minimum, other)

    def where(self, condition, other):
        """self where condition else other (torch's Tensor.where)."""
        return where(condition, self, other)

    # --- reductions -----------------------------------------------------------------
    @_keepdims_alias
    def sum(self, dim=None, keepdim=False):
        return apply(R.Sum, self, _reduced_dims(dim, self.ndim), keepdim)

    @_keepdims_alias
    def mean(self, dim=None, keepdim=False):
        return apply(R.Mean, self, _reduced_dims(dim, self.ndim), keepdim)

    @_keepdims_alias
    def var(self, dim=None, keepdim=False, unbiased=True):
        return apply(R.Var, self, _reduced_dims(dim, self.ndim), keepdim, unbiased)

    @_keepdims_alias
    def max(self, dim=None, keepdim=False):
        """max() -> Tensor; max(dim) -> (values, indices); max(other) -> torch.maximum, as in PyTorch."""
        if isinstance(dim, Tensor):
            return self.maximum(dim)
        if dim is None:
            return apply(R.Max, self, normalize_dims(None, self.ndim), False)
        (ax,) = normalize_dims(dim, self.ndim)
        R.check_nonempty("max", self.shape, (ax,))
        index = self.data.argmax(axis=ax)
        values = apply(R.Max, self, (ax,), keepdim, index)
        return return_types.max(values, Tensor._wrap(_kept(index, ax, keepdim, self.ndim)))

    @_keepdims_alias
    def min(self, dim=None, keepdim=False):
        if isinstance(dim, Tensor):
            return self.minimum(dim)
        R.check_nonempty("min", self.shape, None if dim is None else normalize_dims(dim, self.ndim))
        out = (-self).max(dim, keepdim)
        return -out if dim is None else return_types.min(-out.values, out.indices)

    @_keepdims_alias
    def amax(self, dim=None, keepdim=False):
        """The maximum over dims (several at once); ties share the gradient evenly, as torch."""
        return apply(R.Amax, self, _nonempty_dims("amax", dim, self.shape), keepdim)

    @_keepdims_alias
    def amin(self, dim=None, keepdim=False):
        _nonempty_dims("amin", dim, self.shape)
        return -(-self).amax(dim, keepdim)

    @_keepdims_alias
    def prod(self, dim=None, keepdim=False):
        """The product of all elements, or along one dim."""
        if dim is None:
            return apply(R.Prod, self.reshape(-1), 0, False)
        return apply(R.Prod, self, _one_dim(dim, self.ndim, "prod"), keepdim)

    @_keepdims_alias
    def logsumexp(self, dim, keepdim=False):
        return apply(R.LogSumExp, self, _reduced_dims(dim, self.ndim), keepdim)

    @_keepdims_alias
    def std(self, dim=None, keepdim=False, unbiased=True):
        return apply(R.Std, self, _reduced_dims(dim, self.ndim), keepdim, unbiased)

    def cumsum(self, dim):
        (ax,) = normalize_dims(dim, self.ndim)
        if self.ndim == 0:  # itself, as torch (NumPy's cumsum would give shape (1,))
            return self.reshape(1).cumsum(0).reshape(())
        return apply(cumsum.Cumsum, self, ax)

    @_keepdims_alias
    def all(self, dim=None, keepdim=False):
        axes = R.numpy_axes(self.data, normalize_dims(dim, self.ndim))
        return Tensor._wrap(self.data.astype(bool).all(axis=axes, keepdims=keepdim))

    @_keepdims_alias
    def any(self, dim=None, keepdim=False):
        axes = R.numpy_axes(self.data, normalize_dims(dim, self.ndim))
        return Tensor._wrap(self.data.astype(bool).any(axis=axes, keepdims=keepdim))

    def argsort(self, dim=-1, descending=False, stable=False):
        (ax,) = normalize_dims(dim, self.ndim)
        xp = array_module(self.data)
        order = xp.argsort(-self.data if descending else self.data, axis=ax, kind="stable")
        return Tensor._wrap(order)

    def sort(self, dim=-1, descending=False, stable=False):
        """(values, indices) along dim; equal values keep their order (a stable sort)."""
        indices = self.argsort(dim, descending)
        return return_types.sort(self.gather(dim, indices), indices)

    def topk(self, k, dim=-1, largest=True, sorted=True):
        """The k largest (or smallest) values along dim and their indices, largest first."""
        (ax,) = normalize_dims(dim, self.ndim)
        if not 0 <= k <= self.shape[ax]:
            raise IndexError(f"topk: k={k} is out of range for dim {dim} of size {self.shape[ax]}")
        indices = self.argsort(ax, descending=largest)[(slice(None),) * ax + (slice(0, k),)]
        return return_types.topk(self.gather(ax, indices), indices)

    def gather(self, dim, index):
        """out[i][j] = self[index[i][j]][j] for dim 0 (and so on): torch.gather. index may be smaller than
        the input in the other dims (it reads that corner), and a 0-d input or index counts as 1-d."""
        (ax,) = normalize_dims(dim, self.ndim)
        index = index if isinstance(index, Tensor) else Tensor(index, device=self.device)
        if index.dtype.kind not in "iu" or max(index.ndim, 1) != max(self.ndim, 1):
            raise ValueError(f"gather: index must be an integer tensor with the input's {self.ndim} dims, got "
                             f"dtype {index.dtype} and shape {index.shape}")
        if self.ndim == 0 or index.ndim == 0:
            return self.reshape(-1).gather(0, index.reshape(-1)).reshape(index.shape)
        if any(n > m for d, (n, m) in enumerate(zip(index.shape, self.shape)) if d != ax):
            raise RuntimeError(f"gather: index of shape {index.shape} is larger than the input's shape "
                               f"{self.shape} apart from dim {ax}")
        bounds.check(index.data, _bounds_report(ax, self.shape[ax], negative=False))
        return apply(gather.Gather, self, ax, index.data)

    def index_select(self, dim, index):
        """The entries at `index` (0-d or 1-d, each in range: no negative ones) along dim, in a new
        C-contiguous tensor, as torch.index_select; a 0-d input counts as one entry."""
        (ax,) = normalize_dims(dim, self.ndim)
        index = index if isinstance(index, Tensor) else Tensor(index, device=self.device)
        if index.dtype.kind not in "iu" or index.ndim > 1:
            raise IndexError(f"index_select(): Index is supposed to be a vector of integers, got dtype "
                             f"{index.dtype} and shape {index.shape}")
        if self.ndim == 0:
            if index.numel() != 1:
                raise RuntimeError(f"index_select(): Index to scalar can have only 1 value, got {index.numel()}")
            return self.reshape(1).index_select(0, index).reshape(())
        bounds.check(index.data, _bounds_report(ax, self.shape[ax], negative=False))
        return apply(V.GetItem, self, (slice(None),) * ax + (index.data.reshape(-1),), True)

    def scatter_(self, dim, index, src, reduce=None):
        """self[index[i][j]][j] = src[i][j] for dim 0 (and so on), in place (torch.scatter_);
        reduce="add" adds instead (scatter_add_)."""
        (ax,) = normalize_dims(dim, self.ndim)
        index = index if isinstance(index, Tensor) else Tensor(index, device=self.device)
        bounds.check(index.data, _bounds_report(ax, self.shape[ax], negative=False))
        xp = array_module(self.data)
        values = src.data if isinstance(src, Tensor) else src
        values = xp.broadcast_to(xp.asarray(values, dtype=self.dtype), index.shape)
        position = list(xp.indices(index.shape))
        position[ax] = index.data
        if reduce == "add":
            updated = self.data.copy()
            xp.add.at(updated, tuple(position), values)
            return self._write("scatter_add_", updated)
        if reduce is not None:
            raise ValueError(f"scatter_: reduce must be None or 'add', got {reduce!r}")
        return self._write("scatter_", values, tuple(position))

    def scatter_add_(self, dim, index, src):
        return self.scatter_(dim, index, src, reduce="add")

    def repeat(self, *sizes):
        """Tile the tensor sizes[i] times along each dim (new leading dims too), as torch.repeat."""
        sizes = shape_arg(sizes)
        if len(sizes) < self.ndim:
            raise ValueError(f"repeat needs at least {self.ndim} sizes for shape {self.shape}, got {sizes}")
        shape = (1,) * (len(sizes) - self.ndim) + self.shape
        spread = tuple(n for pair in zip((1,) * len(shape), shape) for n in pair)  # (1, n0, 1, n1, ...)
        tiled = tuple(n for pair in zip(sizes, shape) for n in pair)
        return self.reshape(spread).expand(tiled).reshape(tuple(r * n for r, n in zip(sizes, shape)))

    def roll(self, shifts, dims=None):
        if dims is None:
            return self.flatten().roll(shifts, 0).reshape(self.shape)
        shifts, dims = (shifts, dims) if isinstance(shifts, (tuple, list)) else ((shifts,), (dims,))
        if len(shifts) != len(dims):
            raise RuntimeError(f"roll: shifts and dims must align, got {len(shifts)} shifts and {len(dims)} dims")
        if self.ndim == 0:
            raise IndexError(f"roll: Dimension specified as {dims[0]} but tensor has no dimensions")
        out = self
        for shift, dim in zip(shifts, dims):
            (ax,) = normalize_dims(dim, self.ndim)
            n = self.shape[ax]
            xp = array_module(self.data)
            out = out.index_select(ax, Tensor._wrap((xp.arange(n) - shift) % max(n, 1)))
        return out

    def flip(self, dims):
        dims = normalize_dims(tuple(dims) if isinstance(dims, (tuple, list)) else dims, self.ndim)
        return self[tuple(slice(None, None, -1) if i in dims else slice(None) for i in range(self.ndim))]

    def tril(self, diagonal=0):
        return _triangle(self, diagonal, lower=True)

    def triu(self, diagonal=0):
        return _triangle(self, diagonal, lower=False)

    @_keepdims_alias
    def argmax(self, dim=None, keepdim=False):
        R.check_nonempty("argmax", self.shape, None if dim is None else normalize_dims(dim, self.ndim))
        if dim is None:
            return Tensor._wrap(self.data.argmax())
        (ax,) = normalize_dims(dim, self.ndim)
        return Tensor._wrap(_kept(self.data.argmax(axis=ax), ax, keepdim, self.ndim))

    @_keepdims_alias
    def argmin(self, dim=None, keepdim=False):
        return (-self.detach()).argmax(dim, keepdim)

    # --- movement -------------------------------------------------------------------
    def reshape(self, *shape):
        shape = shape_arg(shape)
        known = math.prod(n for n in shape if n != -1)
        if shape.count(-1) > 1 or (-1 in shape and (known == 0 or self.numel() % known)) \
                or (-1 not in shape and known != self.numel()):
            raise ValueError(f"cannot reshape a tensor of shape {self.shape} ({self.numel()} elements) "
                             f"into shape {shape}")
        return apply(V.Reshape, self, shape)

    def view(self, *shape):
        """reshape, but only where no copy is needed (torch raises otherwise; use reshape)."""
        out = self.reshape(*shape)
        if out.numel() and _storage(out.data) is not _storage(self.data):
            raise RuntimeError(f"view size is not compatible with input tensor's size and stride (shape "
                               f"{self.shape}, strides {self.data.strides}); use .reshape(...) instead")
        return out

    def view_as(self, other):
        return self.view(other.shape)

    def reshape_as(self, other):
        return self.reshape(other.shape)

    def expand_as(self, other):
        return self.expand(other.shape)

    def permute(self, *dims):
        dims = normalize_dims(shape_arg(dims), self.ndim)
        if len(dims) != self.ndim:
            raise ValueError(f"permute needs {self.ndim} dims for shape {self.shape}, got {dims}")
        return apply(V.Permute, self, dims)

    def transpose(self, dim0, dim1):
        dims = list(range(self.ndim))
        d0, d1 = normalize_dims((dim0,), self.ndim)[0], normalize_dims((dim1,), self.ndim)[0]
        if self.ndim:  # (a 0-d tensor's dims 0 and -1 are the tensor itself: nothing to swap)
            dims[d0], dims[d1] = dims[d1], dims[d0]
        return apply(V.Permute, self, tuple(dims))

    def unsqueeze(self, dim):
        (d,) = normalize_dims(dim, self.ndim + 1)
        return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

    def squeeze(self, dim=None):
        axes = normalize_dims(dim, self.ndim)
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if not (i in axes and n == 1)))

    def flatten(self, start_dim=0, end_dim=-1):
        s, e = normalize_dims((start_dim,), self.ndim)[0], normalize_dims((end_dim,), self.ndim)[0]
        if self.ndim == 0:
            return self.reshape(1)
        if s > e:
            raise RuntimeError(f"flatten(): start_dim ({start_dim}) cannot come after end_dim ({end_dim})")
        # the product, not -1: other dims of size 0 leave -1 undefined
        return self.reshape(self.shape[:s] + (math.prod(self.shape[s:e + 1]),) + self.shape[e + 1:])

    def expand(self, *sizes):
        sizes = shape_arg(sizes)
        extra = len(sizes) - self.ndim
        shape = tuple(self.shape[i - extra] if n == -1 and i >= extra else n for i, n in enumerate(sizes))
        if extra < 0 or any(old not in (1, new) for old, new in zip(self.shape, shape[extra:])):
            raise ValueError(f"cannot expand a tensor of shape {self.shape} to {sizes}")
        return apply(V.Expand, self, shape)

    def split(self, split_size_or_sections, dim=0):
        if self.ndim == 0:
            raise RuntimeError("split expects at least a 1-dimensional tensor")
        (d,) = normalize_dims(dim, self.ndim)
        n = self.shape[d]
        if isinstance(split_size_or_sections, int):
            if split_size_or_sections <= 0:
                raise ValueError(f"split size must be positive, got {split_size_or_sections}")
            # (a dim of size 0 splits into one empty piece, as torch)
            sizes = [min(split_size_or_sections, n - i) for i in range(0, n, split_size_or_sections)] or [0]
        else:
            sizes = list(split_size_or_sections)
            if any(size < 0 for size in sizes):
                raise ValueError(f"split sizes must be non-negative, got {sizes}")
            if sum(sizes) != n:
                raise ValueError(f"split sizes {sizes} sum to {sum(sizes)}, but dim {d} has size {n}")
        out, start = [], 0
        for size in sizes:
            out.append(self[(slice(None),) * d + (slice(start, start + size),)])
            start += size
        return tuple(out)

    def chunk(self, chunks, dim=0):
        if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks <= 0:
            raise RuntimeError(f"chunk expects `chunks` to be a positive int, got {chunks!r}")
        if self.ndim == 0:
            raise RuntimeError("chunk expects at least a 1-dimensional tensor")
        (d,) = normalize_dims(dim, self.ndim)
        if self.shape[d] == 0:  # torch: `chunks` empty pieces
            return self.split([0] * chunks, d)
        return self.split(max(1, -(-self.shape[d] // chunks)), d)

    def __getitem__(self, index):
        return apply(V.GetItem, self, _index_arg(index, self))

    # --- nn -------------------------------------------------------------------------
    def matmul(self, other):
        other = other if isinstance(other, Tensor) else Tensor(other, device=self.device)
        if other.device != self.device:
            raise RuntimeError(f"expected both tensors on the same device, got {self.device} and {other.device}")
        if self.ndim == 0 or other.ndim == 0:
            raise ValueError("matmul needs tensors with at least one dimension; use * for scalars")
        a, b = autocast_args(M.MatMul, self, other)
        if a.dtype != b.dtype:  # torch does not promote here either
            raise RuntimeError(f"matmul expects both operands to have the same dtype, got {a.dtype} and "
                               f"{b.dtype}")
        k_a = a.shape[-1]
        k_b = b.shape[-2] if b.ndim > 1 else b.shape[0]
        batch_ok = True
        try:
            np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError:
            batch_ok = False
        if k_a != k_b or not batch_ok:
            raise ValueError(f"matmul shapes {a.shape} and {b.shape} are not compatible "
                             f"(inner sizes {k_a} vs {k_b}; batch dims must broadcast)")
        return apply(M.MatMul, a, b)

    def softmax(self, dim):
        return apply(S.Softmax, self, _one_dim(dim, self.ndim, "softmax"))

    def log_softmax(self, dim):
        return apply(S.LogSoftmax, self, _one_dim(dim, self.ndim, "log_softmax"))


class Size(tuple):
    """A tensor's shape: a tuple of ints, with numel() (torch.Size); it prints as a tuple."""

    def numel(self):
        return math.prod(self)


def set_grad_enabled_to(mode):
    """enable_grad() or no_grad(), as a context manager."""
    return enable_grad() if mode else no_grad()


def _reduced_dims(dim, ndim):
    """A reduction's axes; dim=None or an empty tuple or list means every dim, as in torch."""
    return normalize_dims(None if isinstance(dim, (tuple, list)) and not dim else dim, ndim)


def _kept(index, ax, keepdim, ndim):
    """argmax's indices along dim ax, with that dim kept (size 1) for keepdim; a 0-d input has none
    to keep (torch's are 0-d)."""
    return array_module(index).expand_dims(index, ax) if keepdim and ndim else index


def _nonempty_dims(name, dim, shape):
    """amax's or amin's axes, after torch's errors for the maximum of nothing: named dims of size 0, or
    an empty tensor without dims (reduce.check_nonempty)."""
    axes = _reduced_dims(dim, len(shape))
    R.check_nonempty(name, shape, None if dim is None or (isinstance(dim, (tuple, list)) and not dim) else axes)
    return axes


def _one_dim(dim, ndim, name):
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{name}(): argument 'dim' must be an int, got {dim!r}")
    return normalize_dims(int(dim), ndim)[0]


def _triangle(t, diagonal, lower):
    """The lower (or upper) triangle of the last two dims, zeros elsewhere (tril, triu)."""
    if t.ndim < 2:
        raise ValueError(f"{'tril' if lower else 'triu'} needs a tensor of 2 or more dims, got shape {t.shape}")
    xp = array_module(t.data)
    rows, cols = t.shape[-2:]
    keep = xp.tril(xp.ones((rows, cols), dtype=bool), diagonal) if lower else \
        xp.triu(xp.ones((rows, cols), dtype=bool), diagonal)
    return apply(E.Where, keep, t, t.dtype.type(0))


def where(condition, input, other):
    """input where condition else other; either side may be a tensor or a number, promoted to
    torch's common dtype."""
    cond = condition if isinstance(condition, Tensor) else Tensor(condition)
    if cond.dtype != backend.bool_:
        raise TypeError(f"where expects a bool condition, got dtype {cond.dtype}")
    ref = next((t for t in (input, other, cond) if isinstance(t, Tensor)))
    a, b = ref._operand(input), ref._operand(other)
    ref._operand(cond)  # the same device, and shapes that broadcast
    dtype = backend.result_type(*(x.data if isinstance(x, Tensor) else x for x in (a, b)))
    a, b = (x.to(dtype) if isinstance(x, Tensor) and x.dtype != dtype else x for x in (a, b))
    return apply(E.Where, cond.data, a, b)


def _check_broadcasts_to(shape, target, what):
    """Raise unless an array of `shape` broadcasts to `target` (it may not grow it)."""
    try:
        fits = np.broadcast_shapes(tuple(shape), target) == target
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{what}'s shape {tuple(shape)} does not broadcast to this tensor's shape {target}")


def shape_arg(args):
    """Accept f(2, 3) and f((2, 3)) alike."""
    shape = tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else tuple(args)
    if not all(isinstance(n, (int, np.integer)) for n in shape):
        raise TypeError(f"sizes must be integers, got {shape}")
    return tuple(int(n) for n in shape)


def _index_arg(index, tensor):
    """Check an index and turn the tensors, lists and bools in it into arrays on the tensor's device;
    a 0-d integer array becomes an int (torch selects with it, as with an int)."""
    items = index if isinstance(index, tuple) else (index,)
    if all(type(i) in (int, slice) or i is None for i in items):  # ints and slices: NumPy's checks will do
        return index
    xp = array_module(tensor.data)
    out = []
    for i in items:
        if isinstance(i, Tensor):
            i = i.data
        elif isinstance(i, list):
            i = np.asarray(i)
            i = i.astype(np.int64) if i.size == 0 else i  # [] is an empty integer index (NumPy's is float)
        elif isinstance(i, bool):
            i = np.asarray(i)
        if isinstance(i, float) or (hasattr(i, "dtype") and i.dtype.kind == "f"):
            raise IndexError(f"tensors can only be indexed by integers, slices, None, Ellipsis, bools "
                             f"or integer tensors, not floats ({i!r})")
        if hasattr(i, "dtype"):
            i = xp.asarray(i)
            i = int(i) if i.ndim == 0 and i.dtype.kind in "iu" else i
        out.append(i)
    out = _check_index_bounds(_expand_ellipsis(out, tensor.ndim), tensor.shape)
    return tuple(out) if isinstance(index, tuple) or len(out) != 1 else out[0]


def _expand_ellipsis(items, ndim):
    """An Ellipsis as the slices it stands for: NumPy takes one that stands for no dims as a separator
    between integer arrays (which then move to the front), torch does not."""
    if sum(i is Ellipsis for i in items) != 1:
        return items  # (none, or several: NumPy's error)
    at = next(k for k, i in enumerate(items) if i is Ellipsis)
    takes = sum(0 if i is None or i is Ellipsis else i.ndim if is_mask(i) else 1 for i in items)
    return items[:at] + [slice(None)] * max(ndim - takes, 0) + items[at + 1:]


def _bounds_report(dim, size, negative=True):
    """Raises for an index out of range of a dim of `size`; negative=False: below 0 too (gather's)."""
    def report(lo, hi):
        if lo < (-size if negative else 0) or hi >= size:
            raise IndexError(f"index {hi if hi >= size else lo} is out of bounds for dim {dim} with size {size}")
    return report


def _check_index_bounds(items, shape):
    """Too many indices raise, and so do ints out of range; integer arrays out of range too (CuPy would
    wrap them silently) where the result has elements. torch reads and checks nothing for an empty
    result (unless an array indexes a dim of size 0); NumPy checks all the same, so there the arrays
    are replaced by zeros (returns the items)."""
    takes = [0 if i is None or i is Ellipsis else i.ndim if is_mask(i) else 1 for i in items]
    if sum(takes) > len(shape):
        raise IndexError(f"too many indices for a tensor of shape {shape}")
    arrays, kept, dim = [], [], 0  # arrays: (dim, array); kept: the sizes of the result's other dims
    for i, k in zip(items, takes):
        if i is Ellipsis:
            kept += shape[dim:dim + len(shape) - sum(takes)]
            dim += len(shape) - sum(takes)
        elif isinstance(i, int) and not -shape[dim] <= i < shape[dim]:
            raise IndexError(f"index {i} is out of bounds for dim {dim} with size {shape[dim]}")
        elif isinstance(i, slice):
            kept.append(len(range(*i.indices(shape[dim]))))
        elif hasattr(i, "dtype"):
            arrays.append((dim, i))
        dim += k
    kept += shape[dim:]
    integer = [(d, i) for d, i in arrays if i.dtype.kind in "iu"]
    if not integer:
        return items
    nothing = _broadcasts_to_nothing([i for _, i in arrays])
    if math.prod(kept) and not nothing:  # the result has elements: every index must be in range
        for d, i in integer:
            bounds.check(i, _bounds_report(d, shape[d]))
        return items
    if not nothing and any(shape[d] == 0 for d, _ in integer):  # (torch checks this one all the same)
        raise IndexError(f"index is out of bounds for a dim of size 0 (shape {shape})")
    xp = array_module(integer[0][1])
    return tuple(xp.zeros_like(i) if hasattr(i, "dtype") and i.dtype.kind in "iu" else i for i in items)


def _broadcasts_to_nothing(arrays):
    """Whether integer arrays and masks (a mask counts as its number of Trues) broadcast to 0 elements."""
    shapes = [(int(a.sum()),) if is_mask(a) else a.shape for a in arrays]
    try:
        return math.prod(np.broadcast_shapes(*shapes)) == 0
    except ValueError:  # they do not broadcast: NumPy says so
        return False
