"""Ops that move data around: reshape, permute, expand, indexing, concatenation."""
from ..backend import array_module, device_of, to_device
from ..function import Function


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


class GetItem(Function):
    reads = ()

    def forward(self, a, index):
        self.shape, self.dtype, self.index = a.shape, a.dtype, index
        return a[index]

    def backward(self, g):
        out = array_module(g).zeros(self.shape, self.dtype)
        if is_basic_index(self.index):
            out[self.index] = g
        else:
            scatter_add(out, self.index, g)
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
    write landed, the old values of a no longer matter (their gradient is 0) and value's count."""
    reads = ()

    def forward(self, a, value, index):
        a[index] = value
        self.index = index
        return a

    def backward(self, g):
        ga = g.copy()
        ga[self.index] = 0
        return ga, g[self.index], None


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
