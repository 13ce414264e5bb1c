"""A fully connected layer: y = x W^T + b, and ReLU after it on request."""
from ..backend import array_module
from ..function import Function


class Linear(Function):
    """y = x @ weight.T + bias (bias may be None); activation="relu" gives max(y, 0)."""
    reads = (0, 1)

    @classmethod
    def reads_for(cls, needs_grad):
        return tuple(i for i, other in ((0, 1), (1, 0)) if needs_grad[other])  # gx reads weight, gw reads x

    def forward(self, x, weight, bias, activation):
        self.x, self.weight = x, weight
        y = x @ weight.T
        if bias is not None:
            y = y + bias
        self.relu_out = array_module(y).maximum(y, 0) if activation == "relu" else None
        return y if self.relu_out is None else self.relu_out

    def backward(self, g):
        if self.relu_out is not None:  # ReLU's backward (ops/elementwise.py): 0 where the output is <= 0, a select
            g = array_module(g).where(self.relu_out <= 0, g.dtype.type(0), g)
        gx = g @ self.weight if self.needs_grad[0] else None
        # W and b are shared by every row of x: their gradients sum over all leading axes.
        g2, x2 = g.reshape(-1, g.shape[-1]), self.x.reshape(-1, self.x.shape[-1])
        gw = g2.T @ x2 if self.needs_grad[1] else None
        gb = g2.sum(axis=0) if self.needs_grad[2] else None
        return gx, gw, gb
