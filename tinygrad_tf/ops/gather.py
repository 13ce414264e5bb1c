"""Gather: values picked along one axis by an index array (torch.gather; sort and topk too)."""
from ..backend import array_module
from ..function import Function


class Gather(Function):
    """out[..., j, ...] = a[..., index[..., j, ...], ...] along `dim` (index has a's ndim, and may be
    smaller than a in the other dims: out has index's shape)."""
    reads = ()

    def forward(self, a, dim, index):
        self.shape, self.dim, self.index = a.shape, dim, index
        # only the corner of a that index covers in the other dims, as torch: take_along_axis would broadcast
        corner = a[tuple(slice(None) if d == dim else slice(0, n) for d, n in enumerate(index.shape))]
        return array_module(a).take_along_axis(corner, index, axis=dim)

    def backward(self, g):
        # Each picked value sends its gradient back to where it came from; an element picked
        # twice gets both (add.at adds repeats, a plain assignment would keep one).
        xp = array_module(g)
        grad = xp.zeros(self.shape, g.dtype)
        position = list(xp.indices(self.index.shape))
        position[self.dim] = self.index
        xp.add.at(grad, tuple(position), g)
        return grad, None, None
