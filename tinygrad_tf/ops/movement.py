"""Ops that move data around: reshape, permute, expand, indexing, concatenation."""
from ..backend import array_module, device_of, to_device
from ..function import Function
from .layout import is_mask, lay_out, torch_order


class Reshape(Function):
    reads = ()

    def forward(self, a, shape):
        self.shape = a.shape
        return a.reshape(shape)

    def backward(self, g):
        return g.reshape(self.shape)


class Permute(Function):
    reads = ()

    def forward(self, a, dims):
        self.dims = dims
        return a.transpose(dims)

    def backward(self, g):
        inverse = [0] * len(self.dims)
        for i, d in enumerate(self.dims):
            inverse[d] = i
        return g.transpose(inverse)


class Expand(Function):
    """broadcast_to; its backward is the graph walk's unbroadcast."""
    reads = ()

    def forward(self, a, shape):
        return array_module(a).broadcast_to(a, shape)

    def backward(self, g):
        return g


def scatter_add(target, index, values):
    """target[index] += values with repeated indices adding up (unlike `+=`)."""
    array_module(target).add.at(target, index, values)


def is_basic_index(index):
    """Ints, slices, None and Ellipsis never repeat an element: plain assignment undoes them."""
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice)) or i is None or i is Ellipsis for i in items)


def split_ints(index):
    """(select, rest): torch applies an index's ints first (select: a view), then its integer arrays and
    masks (rest) to what is left. NumPy counts an int as one more integer array, which moves the arrays'
    dims to the front when a slice lies between them: x[0, :, [0, 1]] is (3, 2) in torch, (2, 3) in
    NumPy, and x[select][rest] in both. select is None where the two agree (no ints, or no arrays)."""
    items = index if isinstance(index, tuple) else (index,)
    if not (any(isinstance(i, int) for i in items) and any(hasattr(i, "dtype") for i in items)):
        return None, index
    select = tuple(i if isinstance(i, int) or i is Ellipsis else slice(None)
                   for i in items if i is not None for _ in range(i.ndim if is_mask(i) else 1))
    if Ellipsis not in select:  # (with one, ints on every dim give a 0-d view, not a NumPy scalar)
        select += (Ellipsis,)
    return select, tuple(i for i in items if not isinstance(i, int))


def part(a, select):
    """a[select], a view (a itself for None)."""
    return a if select is None else a[select]


class GetItem(Function):
    """a[index] with torch's rules (split_ints; tensor.py makes the rest of the index NumPy's). An index
    with integer arrays or masks makes a new array, laid out as torch lays it out (layout.py), or
    C-contiguous (`contiguous`: index_select's), so that a view of it works where torch's does."""
    reads = ()

    def forward(self, a, index, contiguous=False):
        self.shape, self.dtype = a.shape, a.dtype
        self.select, self.index = split_ints(index)
        out = part(a, self.select)[self.index]
        if out.ndim < 2 or is_basic_index(index) or out.size == 0:  # (a view, or one way to lay it out)
            return out
        return lay_out(out, list(range(out.ndim)) if contiguous else torch_order(a, index, out))

    def backward(self, g):
        out = array_module(g).zeros(self.shape, self.dtype)
        if is_basic_index(self.index):
            part(out, self.select)[self.index] = g
        else:
            scatter_add(part(out, self.select), self.index, g)  # (into out, through the view)
        return out


class Cat(Function):
    reads = ()

    def forward(self, *arrays, dim):
        self.dim = dim
        self.bounds = []
        total = 0
        for a in arrays[:-1]:
            total += a.shape[dim]
            self.bounds.append(total)
        return array_module(arrays[0]).concatenate(arrays, axis=dim)

    def backward(self, g):
        return tuple(array_module(g).split(g, self.bounds, axis=self.dim))


class SetItem(Function):
    """a[index] = value, written into a itself: an in-place write recorded in the graph. Where the
    write landed, the old values of a no longer matter (their gradient is 0) and value's count.
    torch's rules for the index, as GetItem's."""
    reads = ()

    def forward(self, a, value, index):
        self.select, self.index = split_ints(index)
        part(a, self.select)[self.index] = value
        return a

    def backward(self, g):
        ga = g.copy()
        part(ga, self.select)[self.index] = 0
        return ga, part(g, self.select)[self.index], None


class Clone(Function):
    """A copy in new memory; the gradient passes through unchanged."""
    reads = ()

    def forward(self, a):
        return a.copy()

    def backward(self, g):
        return g


class Cast(Function):
    """Change dtype; the gradient goes back in the input's dtype."""
    reads = ()

    def forward(self, a, dtype):
        self.dtype = a.dtype
        return a.astype(dtype)

    def backward(self, g):
        return g.astype(self.dtype)


class ToDevice(Function):
    """Move between CPU and GPU; the gradient moves back."""
    reads = ()

    def forward(self, a, device):
        self.device = device_of(a)
        return to_device(a, device)

    def backward(self, g):
        return to_device(g, self.device)
