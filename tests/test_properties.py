"""Property-based checks (hypothesis): random broadcastable shapes and reductions."""
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402
from hypothesis.extra.numpy import mutually_broadcastable_shapes  # noqa: E402

import tinygrad_tf as tg  # noqa: E402

SHAPES = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=3)


def leaf(shape, seed):
    return tg.tensor(np.random.default_rng(seed).standard_normal(shape), dtype=tg.float64, requires_grad=True)


@settings(max_examples=40, deadline=None)
@given(shapes=SHAPES, seed=st.integers(0, 2**16))
def test_broadcasting_arithmetic_gradchecks(shapes, seed):
    a, b = leaf(shapes.input_shapes[0], seed), leaf(shapes.input_shapes[1], seed + 1)
    assert tg.gradcheck(lambda a, b: (a * b - a / (b * b + 1)) + 2 * a, (a, b))


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), keepdim=st.booleans(),
       data=st.data(), seed=st.integers(0, 2**16))
def test_reductions_match_numpy_and_gradcheck(shape, keepdim, data, seed):
    dims = data.draw(st.lists(st.integers(0, len(shape) - 1), unique=True, min_size=1))
    x = leaf(tuple(shape), seed)
    for op in ("sum", "mean"):
        out = getattr(x, op)(tuple(dims), keepdim=keepdim)
        ref = getattr(x.detach().numpy(), op)(axis=tuple(dims), keepdims=keepdim)
        np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-12)
        assert tg.gradcheck(lambda t: getattr(t, op)(tuple(dims), keepdim=keepdim), (x,))
