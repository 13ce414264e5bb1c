"""erf and erfc on plain xp arrays, accurate to float64 (NumPy has neither; SciPy is no dependency).

The method is W. J. Cody, "Rational Chebyshev approximations for the error function",
Math. Comp. 23 (1969) 631-638: near-minimax rational functions on three intervals, with the
coefficients of Cody's double-precision tables (as in his SPECFUN package, 1990):

    |x| <= 0.5:   erf(x)  = x A(x^2) / B(x^2)
    0.5 < x <= 4: erfc(x) = exp(-x^2) C(x) / D(x)
    x > 4:        erfc(x) = exp(-x^2) / x * (1/sqrt(pi) - z P(z) / Q(z)),  z = 1/x^2

Why this method: each rational function is accurate to about 1e-18 relative, so in float64 only
rounding is left, and erfc is computed directly on the outer intervals, so the tail keeps its
relative accuracy where 1 - erf(x) would cancel to nothing. Negative x uses erf(-x) = -erf(x) and
erfc(-x) = 2 - erfc(x). exp(-x^2) is taken as exp(-s^2) exp(-(x - s)(x + s)) with s = x cut to a
multiple of 1/16, so s^2 is exact and the rounding of x*x is not amplified by exp.

Every interval is evaluated on the whole array (clamped to its interval) and picked with where:
no branches or boolean indexing, so the same code runs on NumPy and CuPy. float32 is computed in
float32 (the formulas are far more accurate than float32 needs), float16 in float32.
"""
import math

from ..backend import array_module, float32, float64

_A = (1.85777706184603153e-1, 3.16112374387056560e0, 1.13864154151050156e2,
      3.77485237685302021e2, 3.20937758913846947e3)
_B = (1.0, 2.36012909523441209e1, 2.44024637934444173e2, 1.28261652607737228e3,
      2.84423683343917062e3)
_C = (2.15311535474403846e-8, 5.64188496988670089e-1, 8.88314979438837594e0,
      6.61191906371416295e1, 2.98635138197400131e2, 8.81952221241769090e2,
      1.71204761263407058e3, 2.05107837782607147e3, 1.23033935479799725e3)
_D = (1.0, 1.57449261107098347e1, 1.17693950891312499e2, 5.37181101862009858e2,
      1.62138957456669019e3, 3.29079923573345963e3, 4.36261909014324716e3,
      3.43936767414372164e3, 1.23033935480374942e3)
_P = (1.63153871373020978e-2, 3.05326634961232344e-1, 3.60344899949804439e-1,
      1.25781726111229246e-1, 1.60837851487422766e-2, 6.58749161529837803e-4)
_Q = (1.0, 2.56852019228982242e0, 1.87295284992346047e0, 5.27905102951428412e-1,
      6.05183413124413191e-2, 2.33520497626869185e-3)


def _poly(coeffs, z):
    """Horner's rule, coefficients from the highest power down."""
    out = coeffs[0]
    for c in coeffs[1:]:
        out = out * z + c
    return out


def _prepare(x):
    """(xp, x in the dtype to compute in, dtype to return): float16 and ints go up a size."""
    xp = array_module(x)
    x = xp.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else float64
    return xp, x.astype(float32 if dtype.itemsize < 4 else dtype, copy=False), dtype


def _erf_small(xp, x):
    """erf on |x| <= 0.5 (x is clamped there)."""
    x = xp.clip(x, -0.5, 0.5)
    z = x * x
    return x * _poly(_A, z) / _poly(_B, z)


def _erfc_tail(xp, y):
    """erfc(y) for y >= 0.5 (smaller y is clamped to 0.5); nan stays nan, +inf gives 0."""
    mid = xp.clip(y, 0.5, 4.0)
    big = xp.clip(y, 4.0, 30.0)  # erfc(30) underflows to 0 even in float64
    z = 1 / (big * big)
    r_mid = _poly(_C, mid) / _poly(_D, mid)
    r_big = (1 / math.sqrt(math.pi) - z * _poly(_P, z) / _poly(_Q, z)) / big
    y = xp.where(y <= 4.0, mid, big)
    s = xp.trunc(y * 16) / 16
    return xp.exp(-s * s) * xp.exp(-(y - s) * (y + s)) * xp.where(y <= 4.0, r_mid, r_big)


def erf(x):
    """The error function, 2/sqrt(pi) * integral of exp(-t^2) from 0 to x, elementwise."""
    xp, x, dtype = _prepare(x)
    ax = abs(x)
    out = xp.where(ax <= 0.5, _erf_small(xp, x), xp.copysign(1 - _erfc_tail(xp, ax), x))
    return out.astype(dtype, copy=False)


def erfc(x):
    """1 - erf(x), elementwise, without the cancellation: relative accuracy in the tail too."""
    xp, x, dtype = _prepare(x)
    tail = _erfc_tail(xp, abs(x))
    out = xp.where(abs(x) <= 0.5, 1 - _erf_small(xp, x), xp.where(x > 0, tail, 2 - tail))
    return out.astype(dtype, copy=False)
