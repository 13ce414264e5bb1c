"""Matrix products: batched, broadcasting, and 1-D on either side (as torch.matmul)."""
from ..backend import array_module
from ..function import Function


class MatMul(Function):
    reads = (0, 1)

    @classmethod
    def reads_for(cls, needs_grad):
        return tuple(i for i, other in ((0, 1), (1, 0)) if needs_grad[other])  # each gradient reads the other input

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):
        xp, a, b = array_module(g), self.a, self.b
        # Treat 1-D operands as a row (a) or a column (b), then drop that axis again;
        # the graph walk sums away broadcast batch dims.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g[..., None] if b.ndim == 1 else g
        g2 = g2[..., None, :] if a.ndim == 1 else g2
        ga = gb = None
        if self.needs_grad[0]:
            ga = g2 @ xp.swapaxes(b2, -1, -2)
            ga = ga[..., 0, :] if a.ndim == 1 else ga
        if self.needs_grad[1]:
            gb = xp.swapaxes(a2, -1, -2) @ g2
            gb = gb[..., 0] if b.ndim == 1 else gb
        return ga, gb
