"""Elementwise ops. Broadcasting is undone by the graph walk, not here."""
import math

from ..backend import array_module
from ..function import Function
from .special import erfc


class Add(Function):
    reads = ()

    def forward(self, a, b):
        return a + b

    def backward(self, g):
        return g, g


class Sub(Function):
    reads = ()

    def forward(self, a, b):
        return a - b

    def backward(self, g):
        return g, -g


class Mul(Function):
    reads = (0, 1)

    @classmethod
    def reads_for(cls, needs_grad):
        return tuple(i for i, other in ((0, 1), (1, 0)) if needs_grad[other])  # each gradient reads the other input

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        return g * self.b, g * self.a


class Div(Function):
    reads, reads_output = (1,), True

    def forward(self, a, b):
        self.b, self.out = b, a / b
        return self.out

    def backward(self, g):
        ga = g / self.b
        return ga, -ga * self.out  # d(a/b)/db = -a/b^2 = -(1/b) * out


class Pow(Function):
    """a ** b for tensors or numbers on either side. At a = 0 the gradients follow torch's rules."""
    reads, reads_output = None, True

    def forward(self, a, b):
        self.a, self.b, self.out = a, b, a ** b
        return self.out

    def backward(self, g):
        xp, a, b, zero = array_module(self.out), self.a, self.b, g.dtype.type(0)
        ga = gb = None
        if self.needs_grad[0]:  # b a^(b-1); 0 where b = 0: a^0 is constant, at a = 0 too (not 0 * 0^-1 = nan)
            ga = g * xp.where(xp.asarray(b == 0), zero, b * a ** (b - 1))
        if self.needs_grad[1]:  # a^b log(a); 0 where a = 0 and b >= 0 (not 0 * log 0 = nan), as torch
            gb = g * xp.where(xp.asarray((a == 0) & (b >= 0)), zero, self.out * xp.log(a))
        return ga, gb


class Neg(Function):
    reads = ()

    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


class Exp(Function):
    reads, reads_output = (), True

    def forward(self, a):
        self.out = array_module(a).exp(a)
        return self.out

    def backward(self, g):
        return g * self.out


class Log(Function):
    reads = (0,)

    def forward(self, a):
        self.a = a
        return array_module(a).log(a)

    def backward(self, g):
        return g / self.a


class Sqrt(Function):
    reads, reads_output = (), True

    def forward(self, a):
        self.out = array_module(a).sqrt(a)
        return self.out

    def backward(self, g):
        return g / (2 * self.out)


class Tanh(Function):
    reads, reads_output = (), True

    def forward(self, a):
        self.out = array_module(a).tanh(a)
        return self.out

    def backward(self, g):
        return g * (1 - self.out * self.out)


class Sigmoid(Function):
    reads, reads_output = (), True

    def forward(self, a):
        # 0.5 * (1 + tanh(a/2)) never overflows, unlike 1 / (1 + exp(-a)).
        self.out = 0.5 * (array_module(a).tanh(0.5 * a) + 1)
        return self.out

    def backward(self, g):
        return g * self.out * (1 - self.out)


class Relu(Function):
    """Saves its output, not a mask: the next layer keeps that array anyway."""
    reads, reads_output = (), True

    def forward(self, a):
        self.out = array_module(a).maximum(a, 0)
        return self.out

    def backward(self, g):
        # torch's rule: 0 where out <= 0, so NaN passes the gradient on; a select, not g times a 0/1
        # mask, so that a NaN or inf gradient does not leak where the input was cut (nan * 0 = nan)
        return array_module(g).where(self.out <= 0, g.dtype.type(0), g)


class Gelu(Function):
    """GELU: x * Phi(x), Phi the normal CDF through a float64-exact erfc (ops/special.py);
    approximate="tanh" is the GPT-2 formula."""
    reads = (0,)

    def forward(self, a, approximate="none"):
        xp = array_module(a)
        self.a, self.approximate = a, approximate
        if approximate == "tanh":
            self.t = xp.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a ** 3))
            return 0.5 * a * (1 + self.t)
        if approximate != "none":
            raise ValueError(f"gelu approximate must be 'none' or 'tanh', got {approximate!r}")
        # Phi(x) = erfc(-x/sqrt2)/2, not (1 + erf(x/sqrt2))/2: no cancellation for x << 0.
        self.cdf = 0.5 * erfc(a * -math.sqrt(0.5))
        return a * self.cdf

    def backward(self, g):
        xp, a = array_module(self.a), self.a
        if self.approximate == "tanh":
            dt = (1 - self.t ** 2) * math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * a * a)
            return g * (0.5 * (1 + self.t) + 0.5 * a * dt)
        pdf = xp.exp(-0.5 * a * a) * (1 / math.sqrt(2 * math.pi))
        return g * (self.cdf + a * pdf)


class Abs(Function):
    reads = (0,)

    def forward(self, a):
        self.a = a
        return abs(a)

    def backward(self, g):
        xp = array_module(self.a)
        return g * xp.sign(xp.nan_to_num(self.a))  # torch's sign(NaN) is 0, NumPy's is NaN


class Clamp(Function):
    reads = ()

    def forward(self, a, lo=None, hi=None):
        xp = array_module(a)
        out = a if lo is None else xp.maximum(a, lo)
        out = out if hi is None else xp.minimum(out, hi)
        # The gradient passes where lo <= a <= hi, as torch: not at NaN, nowhere when lo > hi.
        self.inside = (a >= (-math.inf if lo is None else lo)) & (a <= (math.inf if hi is None else hi))
        return out

    def backward(self, g):
        return array_module(g).where(self.inside, g, g.dtype.type(0))  # a select: no nan * 0 = nan outside


class Where(Function):
    """where(cond, a, b); masked_fill is where(mask, value, x)."""
    reads = ()

    def forward(self, cond, a, b):
        self.cond = cond
        return array_module(cond).where(cond, a, b)

    def backward(self, g):
        xp = array_module(g)
        zero = g.dtype.type(0)
        ga = xp.where(self.cond, g, zero) if self.needs_grad[1] else None
        gb = xp.where(self.cond, zero, g) if self.needs_grad[2] else None
        return None, ga, gb
