"""erf/erfc (tinygrad_tf/ops/special.py, Cody's rational approximations) against Python's math
module, and exact GELU built on them against PyTorch and a float64 gradcheck."""
import math

import numpy as np
import pytest

import tinygrad_tf as tg
import tinygrad_tf.nn.functional as F
from tinygrad_tf.ops.special import erf, erfc

EPS = np.finfo(np.float64).eps
GRID = np.concatenate([
    np.linspace(-10, 10, 200001),                      # dense, step 1e-4, across all three intervals
    np.geomspace(1e-300, 30, 5000), -np.geomspace(1e-300, 30, 5000),  # tiny to past underflow
    [0.5, -0.5, np.nextafter(0.5, 1), 4.0, np.nextafter(4.0, 5), -4.0, 26.5, -26.5, 5e-324],
])


def _ref(fn, x):
    return np.array([fn(v) for v in x])


def test_erf_matches_math_erf_to_float64():
    ours, ref = erf(GRID), _ref(math.erf, GRID)
    assert ours.dtype == np.float64
    nz = ref != 0
    assert np.max(np.abs(ours - ref)[nz] / np.abs(ref[nz])) <= 4 * EPS  # measured: 4.3e-16 = 1.95 eps
    np.testing.assert_array_equal(ours[~nz], ref[~nz])


def test_erfc_matches_math_erfc_in_the_tail():
    ours, ref = erfc(GRID), _ref(math.erfc, GRID)
    normal = ref > np.finfo(np.float64).tiny  # relative accuracy down to 1e-308 (x ~ 26.5)
    assert np.max(np.abs(ours - ref)[normal] / ref[normal]) <= 8 * EPS  # measured: 8.8e-16 = 3.98 eps
    assert np.max(np.abs(ours - ref)[~normal]) < 1e-307  # subnormal results, and exact 0 past x ~ 26.6


def test_special_values():
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e308, -1e308, 30.0, -30.0])
    e, c = erf(x), erfc(x)
    np.testing.assert_array_equal(e, [1, -1, np.nan, 0, 0, 1, -1, 1, -1])
    np.testing.assert_array_equal(c, [0, 2, np.nan, 1, 1, 0, 2, 0, 2])
    assert np.signbit(e[4]) and not np.signbit(e[3])  # erf(-0.0) is -0.0
    assert erf(5e-324) == 5e-324  # 2/sqrt(pi) * the smallest subnormal rounds back to it
    np.testing.assert_allclose(erf(-1e-300), -2 / math.sqrt(math.pi) * 1e-300, rtol=2 * EPS)


def test_float32_stays_float32_and_is_accurate():
    x = np.linspace(-10, 10, 20001).astype(np.float32)
    ref = _ref(math.erf, x.astype(np.float64))
    for fn, mref in [(erf, ref), (erfc, 1 - ref)]:
        out = fn(x)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, mref, rtol=4e-7, atol=2e-7)  # a few float32 ulps
    np.testing.assert_allclose(erfc(np.float32(8.0)), math.erfc(8.0), rtol=1e-6)  # tail in float32
    assert erf(x.astype(np.float16)).dtype == np.float16
    assert erf(np.arange(3)).dtype == np.float64


def _gelu(x, dtype, lib):
    """(values, gradients of their sum) of exact GELU, in tinygrad_tf or torch."""
    if lib == "torch":
        torch = pytest.importorskip("torch")
        t = torch.tensor(x, dtype=getattr(torch, np.dtype(dtype).name), requires_grad=True)
        y = torch.nn.functional.gelu(t)
    else:
        t = tg.tensor(x, dtype=dtype, requires_grad=True)
        y = F.gelu(t)
    y.sum().backward()
    return y.detach().numpy(), t.grad.numpy()


GELU_X = np.linspace(-10, 10, 40001)


def test_gelu_float64_matches_torch():
    (y, g), (ty, tgrad) = _gelu(GELU_X, np.float64, "tg"), _gelu(GELU_X, np.float64, "torch")
    assert y.dtype == g.dtype == np.float64
    # atol: torch's Phi = (1 + erf)/2 cancels for x << 0 (abs error ~|x| * 2^-53); ours doesn't.
    np.testing.assert_allclose(y, ty, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g, tgrad, rtol=1e-12, atol=1e-14)


def test_gelu_float64_is_accurate_where_torch_cancels():
    x = np.array([-10.0, -8.0, -6.0, -3.0, -1.0, 0.5, 2.0, 9.0])
    y, g = _gelu(x, np.float64, "tg")
    phi = np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    cdf = _ref(lambda v: 0.5 * math.erfc(-v * math.sqrt(0.5)), x)
    # the bound is erfc's own conditioning: a rounding of x/sqrt2 moves erfc by ~x^2 ulps
    np.testing.assert_allclose(y, x * cdf, rtol=2e-14, atol=0)
    np.testing.assert_allclose(g, cdf + x * phi, rtol=2e-14, atol=0)
    assert y[0] < 0  # -10 * Phi(-10) = -7.6e-23, not 0


def test_gelu_float32_matches_torch():
    x = GELU_X.astype(np.float32)
    (y, g), (ty, tgrad) = _gelu(x, np.float32, "tg"), _gelu(x, np.float32, "torch")
    assert y.dtype == g.dtype == np.float32
    np.testing.assert_allclose(y, ty, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(g, tgrad, rtol=1e-6, atol=1e-6)


def test_gelu_gradcheck_float64():
    x = np.concatenate([np.linspace(-9, 9, 37), [-0.7518, 1e-3, -1e-3]])
    t = tg.tensor(x, dtype=tg.float64, requires_grad=True)
    assert tg.gradcheck(lambda a: F.gelu(a), [t], atol=1e-8, rtol=1e-6)
