"""Neural-network ops, each fused into one forward and one backward for stability
and speed (fewer temporaries than composing them from elementwise ops)."""
import numpy as np

from .. import kernels
from ..backend import array_module
from ..function import Function
from .elementwise import relu_backward


def row_sum(a):
    """Sum over the last axis (keepdims) as a matrix-vector product: for rows of a few
    hundred floats BLAS does this ~5x faster than NumPy's reduction (measured)."""
    xp = array_module(a)
    flat = xp.ascontiguousarray(a).reshape(-1, a.shape[-1])
    return (flat @ xp.ones((a.shape[-1], 1), a.dtype)).reshape(a.shape[:-1] + (1,))


def column_sum(a):
    """Sum over the rows of a 2-D array. CPU: a vector-matrix product, as BLAS does this
    ~2-4x faster than NumPy's axis-0 sum here (measured); GPU: one kernel, as CuPy's
    axis-0 sum of a tall matrix is slow (kernels/reduce.py)."""
    xp = array_module(a)
    if xp is np:
        return xp.ones(a.shape[0], a.dtype) @ a
    if kernels.use("column_sum", a) and kernels.reduce.supports(a):
        return kernels.reduce.column_sum(a)
    return a.sum(axis=0)


def add_rows(target, index, rows):
    """target[index[i]] += rows[i] for a 1-D index with repeats (embedding backward).

    NumPy's add.at is slow for rows (~7x here), so on the CPU we sort the indices
    and sum each run with add.reduceat. On the GPU, CuPy's add.at is an atomic scatter
    that sums repeats in a different order each run; kernels/embedding.py sums in
    sorted order instead, so seeded GPU runs repeat bit for bit."""
    xp = array_module(target)
    if xp is not np:
        if kernels.use("embedding", target) and kernels.embedding.supports(target, rows):
            kernels.embedding.add_rows(target, index, rows)
        else:
            xp.add.at(target, index, rows)
        return
    order = np.argsort(index, kind="stable")
    sorted_index = index[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_index[1:] != sorted_index[:-1])))
    target[sorted_index[starts]] += np.add.reduceat(rows[order], starts, axis=0)


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
        self.smoothing, self.reduction, self.fused = label_smoothing, reduction, None
        if kernels.use("cross_entropy", logits) and kernels.cross_entropy.supports(logits):
            # GPU: one kernel each way; keeps (N,) log-sum-exps instead of (N, C) log-probs
            loss, lse = kernels.cross_entropy.forward(logits, target, ignore_index, label_smoothing)
            self.fused, valid = (logits, target, lse, ignore_index), target != ignore_index
        else:
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
        if reduction == "none":
            return loss
        total = loss.sum()
        if reduction == "sum":
            return total
        self.count = valid.sum(dtype=logits.dtype)
        return total / self.count  # nan when every target is ignored, as PyTorch

    def backward(self, g):
        xp = array_module(g)
        if self.fused is not None:
            logits, target, lse, ignore_index = self.fused
            scale = g / self.count if self.reduction == "mean" else g  # per row for "none"
            return kernels.cross_entropy.backward(logits, target, lse, scale, ignore_index, self.smoothing), None
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
    """Normalise over the last `ndim` axes, then scale and shift (weight/bias optional).

    Works on a 2-D (rows, features) view so each statistic is one row reduction;
    in-place updates of fresh temporaries keep the number of passes low."""

    def forward(self, x, weight, bias, ndim, eps):
        xp = array_module(x)
        self.shape, self.param_shape = x.shape, x.shape[x.ndim - ndim:]
        x2 = x.reshape(-1, int(np.prod(self.param_shape)))
        self.weight = None if weight is None else weight.reshape(-1)
        self.fused = kernels.use("layer_norm", x) and kernels.layer_norm.supports(x, weight, bias)
        if self.fused:  # GPU: one kernel each way (kernels/layer_norm.py)
            out, self.xhat, self.rstd = kernels.layer_norm.forward(
                x2, self.weight, None if bias is None else bias.reshape(-1), eps)
            return out.reshape(self.shape)
        d = x2.shape[1]
        xhat = x2 - row_sum(x2) / d                       # centred
        var = xp.einsum("nd,nd->n", xhat, xhat)[:, None] / d
        self.rstd = 1 / xp.sqrt(var + eps)
        xhat *= self.rstd
        self.xhat = xhat
        out = xhat if weight is None else xhat * self.weight
        if bias is not None:
            out = out + bias.reshape(-1) if out is xhat else xp.add(out, bias.reshape(-1), out=out)
        return out.reshape(self.shape)

    def backward(self, g):
        xp, xhat = array_module(g), self.xhat
        g2 = g.reshape(xhat.shape)
        if self.fused:
            gx, gw, gb = kernels.layer_norm.backward(g2, xhat, self.rstd, self.weight, self.needs_grad)
            return (None if gx is None else gx.reshape(self.shape),
                    None if gw is None else gw.reshape(self.param_shape),
                    None if gb is None else gb.reshape(self.param_shape))
        d = xhat.shape[1]
        gw = xp.einsum("nd,nd->d", g2, xhat).reshape(self.param_shape) if self.needs_grad[1] else None
        gb = column_sum(g2).reshape(self.param_shape) if self.needs_grad[2] else None
        gx = None
        if self.needs_grad[0]:
            # d xhat / d x: remove the mean and the component along xhat, then scale by 1/std.
            gxhat = g2 * (1 if self.weight is None else self.weight)
            along = xp.einsum("nd,nd->n", gxhat, xhat)[:, None] / d
            gxhat -= row_sum(gxhat) / d
            gxhat -= xhat * along
            gxhat *= self.rstd
            gx = gxhat.reshape(self.shape)
        return gx, gw, gb


class Embedding(Function):
    """weight[idx]; backward scatter-adds rows so repeated tokens sum their grads."""

    def forward(self, idx, weight):
        self.idx, self.weight_shape, self.dtype = idx, weight.shape, weight.dtype
        return weight[idx]

    def backward(self, g):
        xp = array_module(g)
        grad = xp.zeros(self.weight_shape, self.dtype)
        add_rows(grad, self.idx.reshape(-1), g.reshape(-1, self.weight_shape[-1]))
        return None, grad


class Dropout(Function):
    """Zero each element with probability p and scale the rest by 1/(1-p)."""

    def forward(self, x, p, generator):
        if kernels.use("dropout", x):  # GPU: the mask is a hash of a seed, so backward keeps no mask
            self.p, self.seed, self.mask = p, kernels.random.next_seed(generator, x.device.id), None
            return kernels.dropout.apply(x, p, self.seed)
        keep = generator.random(x.shape, dtype=x.dtype) >= p
        self.mask = keep * x.dtype.type(1 / (1 - p))
        return x * self.mask

    def backward(self, g):
        if self.mask is None:
            return kernels.dropout.apply(g, self.p, self.seed)
        return g * self.mask


class Linear(Function):
    """x @ weight.T + bias as one 2-D GEMM over all leading dims (BLAS's best case), and
    ReLU after it when activation="relu". On the GPU the bias and the ReLU are applied in
    the GEMM's epilogue (kernels/linear.py): no extra passes over the output."""

    def forward(self, x, weight, bias, activation):
        self.x2 = x.reshape(-1, x.shape[-1])
        self.weight, self.x_shape = weight, x.shape
        relu = activation == "relu"
        self.lt = kernels.use("linear", x)
        out = kernels.linear.matmul(self.x2, weight, trans_b=True, bias=bias, relu=relu) if self.lt else None
        if out is None:
            out = self._plain(self.x2, weight, trans_b=True)
            if bias is not None:
                out += bias
            if relu:
                array_module(out).maximum(out, 0, out=out)
        self.relu_out = out if relu else None  # ReLU's backward needs only where the output is positive
        return out.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, g):
        g2 = g.reshape(-1, g.shape[-1])
        if self.relu_out is not None:
            g2 = relu_backward(g2, self.relu_out)
        gx = self._matmul(g2, self.weight).reshape(self.x_shape) if self.needs_grad[0] else None
        gw = self._matmul(g2, self.x2, trans_a=True) if self.needs_grad[1] else None
        gb = column_sum(g2) if self.needs_grad[2] else None
        return gx, gw, gb

    def _matmul(self, a, b, trans_a=False):
        """op(a) @ b; on the GPU through cuBLASLt (less host time than cupy.matmul) unless cuBLAS's
        own choice timed faster for this shape: for the weight gradients (k = rows) cuBLAS's
        split-K GEMMs beat cuBLASLt's first eight candidates (fp32 H100: 6.8 against 9.5 ms a step)."""
        def plain():
            return self._plain(a, b, trans_a)
        out = kernels.linear.matmul(a, b, trans_a, fallback=plain) if self.lt else None
        return plain() if out is None else out

    def _plain(self, a, b, trans_a=False, trans_b=False):
        """op(a) @ op(b) by cuBLAS: on the GPU through kernels/gemm.py (which a CUDA graph can
        capture, unlike cupy.matmul), else xp's @."""
        if self.lt:
            return kernels.gemm.matmul(a, b, trans_a, trans_b)
        return (a.T if trans_a else a) @ (b.T if trans_b else b)


class Attention(Function):
    """softmax(q k^T * scale + bias) v, with dropout on the weights, as one node.

    One node instead of six: the T x T weights are saved once, and the backward is
    the chain rule written out: dV = P^T g, dP = g V^T, dS = P * (dP - rowsum(dP * P))
    (the softmax Jacobian), dQ = dS K * scale, dK = dS^T Q * scale, d bias = dS."""

    def forward(self, q, k, v, bias, scale, dropout_p, generator, fused_causal=False):
        self.fused = None
        if fused_causal:  # GPU, is_causal (see F.scaled_dot_product_attention): kernels/attention.py
            seed = kernels.random.next_seed(generator, q.device.id) if dropout_p else 0
            out, self.fused = kernels.attention.forward(q, k, v, scale, dropout_p, seed)
            return out
        xp = array_module(q)
        self.q_scaled = q * q.dtype.type(scale)  # scale the (T, d) side, not the (T, T) scores
        scores = self.q_scaled @ xp.ascontiguousarray(xp.swapaxes(k, -1, -2))  # contiguous: BLAS's fast path
        if bias is not None:
            scores += bias
        scores -= scores.max(axis=-1, keepdims=True)  # max-shift: stable, and -inf masks give 0
        weights = xp.exp(scores, out=scores)
        weights *= 1 / row_sum(weights)
        self.weights, self.mask = weights, None
        if dropout_p:
            keep = generator.random(weights.shape, dtype=weights.dtype) >= dropout_p
            self.mask = keep * weights.dtype.type(1 / (1 - dropout_p))
            weights = weights * self.mask
        self.k, self.v, self.scale, self.dropped = k, v, scale, weights
        return weights @ v

    def backward(self, g):
        if self.fused is not None:
            return kernels.attention.backward(g, self.fused, self.needs_grad[:3]) + (None,)
        xp, p = array_module(g), self.weights
        gv = xp.swapaxes(self.dropped, -1, -2) @ g if self.needs_grad[2] else None
        ds = g @ xp.ascontiguousarray(xp.swapaxes(self.v, -1, -2))  # dL/d(dropped weights)
        if self.mask is not None:
            ds *= self.mask
        ds *= p
        ds -= p * row_sum(ds)  # softmax Jacobian: P * (dP - rowsum(dP * P))
        gbias = ds if self.needs_grad[3] else None
        gq = (ds @ self.k) * g.dtype.type(self.scale) if self.needs_grad[0] else None
        gk = xp.swapaxes(ds, -1, -2) @ self.q_scaled if self.needs_grad[1] else None
        return gq, gk, gv, gbias
