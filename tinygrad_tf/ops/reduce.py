"""Reductions over `dim` (None, an int or a tuple), with keepdim as in PyTorch."""
import math

from ..backend import array_module
from ..function import Function


def normalize_dims(dim, ndim):
    """dim -> tuple of non-negative axes; out-of-range dims name the tensor's ndim."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    out = []
    for d in dims:
        if not isinstance(d, int) or not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(f"dim {d!r} is out of range for a tensor with {ndim} dimension(s)")
        out.append(d % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"dim {dim!r} names a dimension twice")
    return tuple(out)


def keepdim_shape(shape, axes):
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def numpy_axes(a, axes):
    """The axes for NumPy: torch reduces a 0-d tensor over its dim 0 (itself), NumPy has no axis 0 there."""
    return axes if a.ndim else ()


def check_nonempty(name, shape, axes=None):
    """torch's errors for max, min or argmax over nothing, which have no identity: of an empty
    tensor without a dim (axes None), or along a dim of size 0."""
    if math.prod(shape) > 0:  # (a 0-d tensor too)
        return
    if axes is None:
        raise RuntimeError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0. "
                           "Specify the reduction dim with the 'dim' argument.")
    for ax in axes:
        if shape[ax] == 0:
            raise IndexError(f"{name}(): Expected reduction dim {ax} to have non-zero size.")


class Sum(Function):
    reads = ()

    def forward(self, a, axes, keepdim):
        axes = numpy_axes(a, axes)
        self.shape, self.axes = a.shape, axes
        return a.sum(axis=axes, keepdims=keepdim)

    def backward(self, g):
        xp = array_module(g)
        return xp.broadcast_to(g.reshape(keepdim_shape(self.shape, self.axes)), self.shape)


class Mean(Function):
    reads = ()

    def forward(self, a, axes, keepdim):
        axes = numpy_axes(a, axes)
        self.shape, self.axes = a.shape, axes
        self.n = 1
        for ax in axes:
            self.n *= a.shape[ax]
        return a.mean(axis=axes, keepdims=keepdim)

    def backward(self, g):
        xp = array_module(g)
        return xp.broadcast_to(g.reshape(keepdim_shape(self.shape, self.axes)) / self.n, self.shape)


class Var(Function):
    """Variance with Bessel's correction when unbiased, as torch.var."""
    reads = ()

    def forward(self, a, axes, keepdim, unbiased):
        axes = numpy_axes(a, axes)
        n = 1
        for ax in axes:
            n *= a.shape[ax]
        self.denom = max(n - 1, 0) if unbiased else n  # 0 for one element (unbiased) or none: nan, as torch
        self.diff = a - a.mean(axis=axes, keepdims=True)
        self.shape, self.axes = a.shape, axes
        return (self.diff * self.diff).sum(axis=axes, keepdims=keepdim) / self.denom

    def backward(self, g):
        g = g.reshape(keepdim_shape(self.shape, self.axes))
        return 2 * self.diff * g / self.denom  # an array / 0: nan as torch, not ZeroDivisionError


class Std(Var):
    """The square root of Var. Where it is 0 its gradient is 0, as torch's (not g / 0 = inf, times
    Var's a - mean = 0: nan)."""
    reads, reads_output = (), True

    def forward(self, a, axes, keepdim, unbiased):
        self.out = array_module(a).sqrt(super().forward(a, axes, keepdim, unbiased))
        return self.out

    def backward(self, g):
        xp, zero = array_module(g), self.out == 0
        return super().backward(xp.where(zero, g.dtype.type(0), g / (2 * xp.where(zero, 1, self.out))))


class Max(Function):
    """max() (over every dim) or max(dim). Ties: a full reduction shares the gradient evenly between
    the maxima; max(dim) gives it to the index it returns (as PyTorch does). amax is Amax."""
    reads = ()

    def forward(self, a, axes, keepdim, index=None):
        axes = numpy_axes(a, axes)
        # (a reduction over every dim has no dim to name)
        check_nonempty("max", a.shape, None if index is None and len(axes) == a.ndim else axes)
        out = a.max(axis=axes, keepdims=True)
        if index is None or not axes:  # a full reduction (or max(0) of a 0-d tensor)
            # A NaN is the max (NumPy's max and torch's propagate it): its gradient goes to the NaNs, as torch.
            self.mask = (a == out) | array_module(a).isnan(a)
            self.count = self.mask.sum(axis=axes, keepdims=True)
        else:
            xp = array_module(a)
            ax = axes[0]
            positions = xp.arange(a.shape[ax]).reshape(keepdim_shape(a.shape, tuple(
                i for i in range(a.ndim) if i != ax)))
            self.mask = positions == xp.expand_dims(index, ax)
            self.count = 1
        self.keep_shape = out.shape
        return out if keepdim else out.reshape([n for i, n in enumerate(a.shape) if i not in axes])

    def backward(self, g):
        # A select, not mask * g: a NaN or inf gradient must not reach the values not picked (nan * 0 = nan).
        return array_module(g).where(self.mask, g.reshape(self.keep_shape) / self.count, g.dtype.type(0))


class Amax(Function):
    """amax over dims (amin is -amax(-a)). Ties share the gradient evenly. Its gradient is torch's
    product g / count * (a == max), not Max's select: a NaN gradient spreads over the reduced values,
    and so does a NaN among them (then none equals the max: g / 0 * 0), as in torch."""
    reads = ()

    def forward(self, a, axes, keepdim):
        axes = numpy_axes(a, axes)
        check_nonempty("amax", a.shape, None if len(axes) == a.ndim else axes)
        out = a.max(axis=axes, keepdims=True)
        self.mask = a == out
        self.count = self.mask.sum(axis=axes, keepdims=True)
        self.keep_shape = out.shape
        return out if keepdim else out.reshape([n for i, n in enumerate(a.shape) if i not in axes])

    def backward(self, g):
        return g.reshape(self.keep_shape) / self.count * self.mask


class Prod(Function):
    """The product along one axis. d out / d a_i is the product of the other elements: the
    running products before and after i, so a zero among them needs no division by zero."""
    reads = (0,)

    def forward(self, a, axis, keepdim):
        self.a, self.axis, self.keepdim = a, axis, keepdim
        return a.prod(axis=axis, keepdims=keepdim)

    def backward(self, g):
        xp = array_module(g)
        a = xp.moveaxis(self.a, self.axis, -1)
        ones = xp.ones(a.shape[:-1] + (1,), a.dtype)
        before = xp.cumprod(xp.concatenate([ones, a[..., :-1]], axis=-1), axis=-1)
        after = xp.flip(xp.cumprod(xp.flip(xp.concatenate([a[..., 1:], ones], axis=-1), -1), axis=-1), -1)
        g = g if self.keepdim else xp.expand_dims(g, self.axis)
        return g * xp.moveaxis(before * after, -1, self.axis)


class LogSumExp(Function):
    """log(sum(exp(a))) along axes, shifted by the max as softmax is (a row of -inf gives -inf);
    its gradient is the softmax of a."""
    reads, reads_output = (0,), True

    def forward(self, a, axes, keepdim):
        xp = array_module(a)
        m = a.max(axis=axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)  # no inf - inf = nan for a row of -inf
        self.a, self.axes, self.keepdim = a, axes, keepdim
        self.out = m + xp.log(xp.exp(a - m).sum(axis=axes, keepdims=True))
        return self.out if keepdim else self.out.reshape([n for i, n in enumerate(a.shape) if i not in axes])

    def backward(self, g):
        g = g.reshape(self.out.shape)
        return g * array_module(g).exp(self.a - self.out)
