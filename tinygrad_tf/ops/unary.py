"""More elementwise functions of one tensor: trigonometric, hyperbolic, exp/log variants, erf,
and rounding (whose gradient is zero wherever it is defined, as torch takes it everywhere)."""
import math

from ..backend import array_module
from ..function import Function
from .special import erf


class Sin(Function):
    reads = (0,)

    def forward(self, a):
        self.a = a
        return array_module(a).sin(a)

    def backward(self, g):
        return g * array_module(g).cos(self.a)


class Cos(Function):
    reads = (0,)

    def forward(self, a):
        self.a = a
        return array_module(a).cos(a)

    def backward(self, g):
        return -g * array_module(g).sin(self.a)


class Tan(Function):
    reads, reads_output = (), True

    def forward(self, a):
        self.out = array_module(a).tan(a)
        return self.out

    def backward(self, g):
        return g * (1 + self.out * self.out)  # d tan = 1 / cos^2 = 1 + tan^2


class Asin(Function):
    reads = (0,)

    def forward(self, a):
        self.a = a
        return array_module(a).arcsin(a)

    def backward(self, g):
        return g / array_module(g).sqrt(1 - self.a * self.a)


class Acos(Function):
    reads = (0,)

    def forward(self, a):
        self.a = a
        return array_module(a).arccos(a)

    def backward(self, g):
        return -g / array_module(g).sqrt(1 - self.a * self.a)


class Atan(Function):
    reads = (0,)

    def forward(self, a):
        self.a = a
        return array_module(a).arctan(a)

    def backward(self, g):
        return g / (1 + self.a * self.a)


class Sinh(Function):
    reads = (0,)

    def forward(self, a):
        self.a = a
        return array_module(a).sinh(a)

    def backward(self, g):
        return g * array_module(g).cosh(self.a)


class Cosh(Function):
    reads = (0,)

    def forward(self, a):
        self.a = a
        return array_module(a).cosh(a)

    def backward(self, g):
        return g * array_module(g).sinh(self.a)


class Log1p(Function):
    """log(1 + a), exact for tiny a where 1 + a would round to 1."""
    reads = (0,)

    def forward(self, a):
        self.a = a
        return array_module(a).log1p(a)

    def backward(self, g):
        return g / (1 + self.a)


class Expm1(Function):
    """exp(a) - 1, exact for tiny a."""
    reads, reads_output = (), True

    def forward(self, a):
        self.out = array_module(a).expm1(a)
        return self.out

    def backward(self, g):
        return g * (self.out + 1)


class Erf(Function):
    reads = (0,)

    def forward(self, a):
        self.a = a
        return erf(a)

    def backward(self, g):
        return g * (2 / math.sqrt(math.pi)) * array_module(g).exp(-self.a * self.a)


class Round(Function):
    """floor, ceil, round (half to even, as torch), trunc or sign: piecewise constant."""
    reads = ()

    def forward(self, a, how):
        return getattr(array_module(a), {"round": "rint"}.get(how, how))(a)

    def backward(self, g):
        return array_module(g).zeros_like(g)  # zeros, not g * 0: a NaN or inf gradient stops here, as torch
