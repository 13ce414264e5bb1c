"""Neural-network ops, each fused into one forward and one backward for stability
and speed (fewer temporaries than composing them from elementwise ops)."""
from ..backend import array_module
from ..function import Function
from .movement import scatter_add


class Softmax(Function):
    def forward(self, a, dim):
        xp = array_module(a)
        e = xp.exp(a - a.max(axis=dim, keepdims=True))  # max-shift: stable for large logits
        self.out, self.dim = e / e.sum(axis=dim, keepdims=True), dim
        return self.out

    def backward(self, g):
        # Softmax Jacobian-vector product: y * (g - sum(g * y)).
        y = self.out
        return y * (g - (g * y).sum(axis=self.dim, keepdims=True))


class LogSoftmax(Function):
    def forward(self, a, dim):
        xp = array_module(a)
        shifted = a - a.max(axis=dim, keepdims=True)
        self.out = shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))
        self.dim = dim
        return self.out

    def backward(self, g):
        xp = array_module(g)
        return g - xp.exp(self.out) * g.sum(axis=self.dim, keepdims=True)


class CrossEntropy(Function):
    """Mean/sum/none of -log softmax(logits)[target] over rows (N, C).

    Fused: backward is softmax - smoothed one-hot, never materialising d log_softmax."""

    def forward(self, logits, target, ignore_index, reduction, label_smoothing):
        xp = array_module(logits)
        n, c = logits.shape
        shifted = logits - logits.max(axis=1, keepdims=True)
        logsumexp = xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        logp = shifted - logsumexp
        valid = target != ignore_index
        safe_target = xp.where(valid, target, 0)
        picked = xp.take_along_axis(logp, safe_target[:, None], axis=1)[:, 0]
        loss = -(1 - label_smoothing) * picked
        if label_smoothing:
            loss = loss - (label_smoothing / c) * logp.sum(axis=1)
        loss = loss * valid
        self.logp, self.target, self.valid = logp, safe_target, valid
        self.smoothing, self.reduction = label_smoothing, reduction
        if reduction == "none":
            return loss
        total = loss.sum()
        if reduction == "sum":
            return total
        self.count = valid.sum(dtype=logits.dtype)
        return total / self.count  # nan when every target is ignored, as PyTorch

    def backward(self, g):
        xp = array_module(g)
        n, c = self.logp.shape
        grad = xp.exp(self.logp)
        grad[xp.arange(n), self.target] -= 1 - self.smoothing
        if self.smoothing:
            grad -= self.smoothing / c
        scale = self.valid.astype(grad.dtype)
        if self.reduction == "none":
            scale = scale * g
        elif self.reduction == "mean":
            scale = scale * (g / self.count)
        else:
            scale = scale * g
        return grad * scale[:, None], None


class LayerNorm(Function):
    """Normalise over the last `ndim` axes, then scale and shift (weight/bias optional)."""

    def forward(self, x, weight, bias, ndim, eps):
        xp = array_module(x)
        axes = tuple(range(x.ndim - ndim, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        centered = x - mean
        var = (centered * centered).mean(axis=axes, keepdims=True)
        self.rstd = 1 / xp.sqrt(var + eps)
        self.xhat, self.weight, self.axes = centered * self.rstd, weight, axes
        out = self.xhat if weight is None else self.xhat * weight
        return out if bias is None else out + bias

    def backward(self, g):
        gw = g * self.xhat if self.needs_grad[1] else None  # summed to weight's shape by the walk
        gb = g if self.needs_grad[2] else None
        gxhat = g if self.weight is None else g * self.weight
        gx = None
        if self.needs_grad[0]:
            mean_g = gxhat.mean(axis=self.axes, keepdims=True)
            mean_gx = (gxhat * self.xhat).mean(axis=self.axes, keepdims=True)
            gx = self.rstd * (gxhat - mean_g - self.xhat * mean_gx)
        return gx, gw, gb


class Embedding(Function):
    """weight[idx]; backward scatter-adds rows so repeated tokens sum their grads."""

    def forward(self, idx, weight):
        self.idx, self.weight_shape, self.dtype = idx, weight.shape, weight.dtype
        return weight[idx]

    def backward(self, g):
        xp = array_module(g)
        grad = xp.zeros(self.weight_shape, self.dtype)
        scatter_add(grad, self.idx.reshape(-1), g.reshape(-1, self.weight_shape[-1]))
        return None, grad


class Dropout(Function):
    """Zero each element with probability p and scale the rest by 1/(1-p)."""

    def forward(self, x, p, generator):
        keep = generator.random(x.shape, dtype=x.dtype) >= p
        self.mask = keep * x.dtype.type(1 / (1 - p))
        return x * self.mask

    def backward(self, g):
        return g * self.mask


class Linear(Function):
    """x @ weight.T + bias as one 2-D GEMM over all leading dims (BLAS's best case)."""

    def forward(self, x, weight, bias):
        self.x2 = x.reshape(-1, x.shape[-1])
        self.weight, self.x_shape = weight, x.shape
        out = self.x2 @ weight.T
        if bias is not None:
            out += bias
        return out.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, g):
        g2 = g.reshape(-1, g.shape[-1])
        gx = (g2 @ self.weight).reshape(self.x_shape) if self.needs_grad[0] else None
        gw = g2.T @ self.x2 if self.needs_grad[1] else None
        gb = g2.sum(axis=0) if self.needs_grad[2] else None
        return gx, gw, gb
