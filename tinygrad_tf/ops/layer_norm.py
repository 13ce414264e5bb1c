"""Layer normalisation over the last `ndim` axes."""
from ..backend import array_module
from ..function import Function


class LayerNorm(Function):
    """y = xhat * weight + bias, xhat = (x - mean) / sqrt(var + eps), the mean and the (biased)
    variance taken over the normalised axes; weight and bias may be None. float16 inputs are
    normalised in float32, as torch does: float16's (x - mean)^2 overflows past 256."""
    reads = (1,)

    def forward(self, x, weight, bias, ndim, eps):
        xp = array_module(x)
        self.dtype = x.dtype
        x = x.astype(xp.promote_types(x.dtype, xp.float32), copy=False)  # float16 -> float32 (see above)
        self.axes = tuple(range(x.ndim - ndim, x.ndim))
        mean = x.mean(axis=self.axes, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=self.axes, keepdims=True)
        self.rstd = 1 / xp.sqrt(var + eps)
        self.xhat, self.weight = (x - mean) * self.rstd, weight
        y = self.xhat if weight is None else self.xhat * weight
        return (y if bias is None else y + bias).astype(self.dtype, copy=False)

    def backward(self, g):
        g = g.astype(self.xhat.dtype, copy=False)  # in float32 for float16, as the forward
        shared = tuple(range(g.ndim - len(self.axes)))  # every row uses the same weight and bias
        gw = (g * self.xhat).sum(axis=shared) if self.needs_grad[1] else None
        gb = g.sum(axis=shared) if self.needs_grad[2] else None
        gx = None
        if self.needs_grad[0]:
            # Through xhat: remove the gradient's mean and its component along xhat, scale by 1/std.
            gxhat = g if self.weight is None else g * self.weight
            mean_g = gxhat.mean(axis=self.axes, keepdims=True)
            along = (gxhat * self.xhat).mean(axis=self.axes, keepdims=True)
            gx = (gxhat - mean_g - self.xhat * along) * self.rstd
        return tuple(None if grad is None else grad.astype(self.dtype, copy=False) for grad in (gx, gw, gb))
