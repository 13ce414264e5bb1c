"""Edges where the ops must do what torch does (issue 14, item 3): gradient conventions at special
points (a ** 0 at 0, NaN and kinks, every target ignored, a query that sees no key, one-element
variance), float16 layer norm, and empty (0-size) tensors.

Each case is fn(lib, F, *inputs) written once for both libraries, as in test_ops.py, and runs on
the textbook ops and on the fused ops this machine picks; where torch is installed, values and
gradients (float64) are compared with its own, NaN for NaN. NumPy's warnings about the nan and
inf these edges make on purpose are silenced here.
"""
import contextlib
import math

import numpy as np
import pytest

import tinygrad_tf as tg
import tinygrad_tf.nn.functional as TF
from tinygrad_tf import backend, kernels
from tinygrad_tf.kernels.cuda import cross_entropy as cuda_cross_entropy
from tinygrad_tf.ops import attention, cross_entropy, layer_norm, reduce as R
from tinygrad_tf.tensor import apply

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore:var():UserWarning")

rng = np.random.default_rng(14)
NAN, INF = math.nan, math.inf


def r(*shape):
    return rng.standard_normal(shape)


def empty(*shape):
    return np.zeros(shape)


ALL_IGNORED = np.array([-100, -100, -100])
NO_TARGETS = np.zeros(0, dtype=np.int64)
BLIND_ROW = np.zeros((3, 4))
BLIND_ROW[1] = -INF  # query 1 may see no key
BLIND_ROW[2, 1] = -INF
BLIND_BOOL = np.ones((3, 4), dtype=bool)
BLIND_BOOL[0] = False
SPECIAL = [0.0, -0.0, 1.0, -1.5, 2.0, NAN]

def linear_relu(lib, F, x, w):
    """Ours applies the ReLU inside linear (the CPU twin, with fused ops); torch composes the two."""
    return F.linear(x, w, activation="relu") if lib is tg else F.relu(F.linear(x, w))


CASES = [
    # (id, fn(lib, F, *inputs), inputs)
    # --- pow: torch's rules at a = 0, and a negative base -------------------------------------
    # (No -0.0: torch's x ** 0.5 backward takes x ** -0.5 as rsqrt, which is -inf there, not inf.)
    *[(f"pow_scalar_exponent_{e}", lambda lib, F, x, e=e: x ** e, [[0.0, -1.5, 2.0, NAN]])
      for e in (0, 0.0, 1, 2, 3, -1, -2, 0.5, 2.5)],
    ("pow_tensor_exponent_zero_base", lambda lib, F, x, y: x ** y,
     [[0.0, 0.0, 0.0, 0.0, 0.0, 2.0], [0.0, 0.5, 1.0, 2.0, -1.0, 0.0]]),
    ("pow_negative_base_tensor_exponent", lambda lib, F, x, y: x ** y,
     [[-2.0, -2.0, -2.0, -0.5], [3.0, 2.0, 0.5, -1.0]]),
    ("pow_broadcast_zero_exponent", lambda lib, F, x, y: x ** y, [[[0.0], [1.5]], [0.0, 2.0, 0.5]]),
    ("rpow_zero_base", lambda lib, F, y: 0 ** y, [[0.0, 1.0, -1.0, 0.5]]),
    ("rpow_negative_base", lambda lib, F, y: (-2.0) ** y, [[2.0, 3.0, 0.5]]),
    ("rpow_positive_base", lambda lib, F, y: 2 ** y, [[0.0, -1.0, 1.5]]),
    # --- relu, abs, clamp and max at NaN and at the kink ---------------------------------------
    ("relu_nan_kink", lambda lib, F, x: x.relu(), [SPECIAL]),
    ("abs_nan_kink", lambda lib, F, x: x.abs(), [SPECIAL]),
    ("clamp_nan_bounds", lambda lib, F, x: x.clamp(0.0, 1.0), [[NAN, 0.0, 1.0, 0.5, 2.0, -1.0]]),
    ("clamp_min_only", lambda lib, F, x: x.clamp(min=0.0), [SPECIAL]),
    ("clamp_max_only", lambda lib, F, x: x.clamp(max=1.0), [SPECIAL]),
    ("clamp_min_above_max", lambda lib, F, x: x.clamp(1.0, 0.0), [[0.0, 0.5, 1.0, 2.0, NAN]]),
    ("max_nan", lambda lib, F, x: x.max(), [[1.0, NAN, 3.0, NAN]]),
    ("max_ties", lambda lib, F, x: x.max(), [[1.0, 3.0, 3.0, -1.0]]),
    ("max_dim_nan_and_ties", lambda lib, F, x: x.max(1)[0], [[[1.0, NAN, 3.0, NAN], [1.0, 3.0, 3.0, 0.0]]]),
    ("min_nan", lambda lib, F, x: x.min(), [[1.0, NAN, -2.0]]),
    ("min_dim_ties", lambda lib, F, x: x.min(0)[0], [[[1.0, NAN], [1.0, 2.0]]]),
    # --- a NaN or inf gradient coming in: the inputs not picked get 0, as torch (a select, not g * 0) --
    ("minimum_nan_gradient", lambda lib, F, x, y: lib.minimum(x, y).sqrt(), [[4.0, 1.0], [-1.0, 2.0]]),
    ("maximum_nan_input", lambda lib, F, x, y: lib.maximum(x, y.sqrt()), [[1.0, 2.0], [-1.0, 4.0]]),
    ("max_dim_nan_gradient", lambda lib, F, x: x.max(0)[0].sqrt() + x.min(0)[0].sqrt(), [[-1.0, -4.0]]),
    ("max_all_nan_gradient", lambda lib, F, x: x.max().sqrt() + x.min().sqrt(), [[-1.0, -4.0]]),
    ("relu_clamp_inf_gradient", lambda lib, F, x: x.relu().sqrt() + x.clamp(min=0.0).sqrt(), [[-1.0, 4.0]]),
    ("linear_relu_inf_gradient", lambda lib, F, x, w: linear_relu(lib, F, x, w).sqrt(), [r(3, 4), r(5, 4)]),
    ("rounding_nan_gradient", lambda lib, F, x: (x.floor() + x.ceil() + x.round() + x.trunc() + x.sign()).sqrt(),
     [[-1.5, 2.5]]),
    # amax/amin: torch's gradient is a product, g / count * (x == max): NaN spreads over the values
    ("amax_nan_value", lambda lib, F, x: x.sqrt().amax(0) + x.sqrt().amin(0), [[-1.0, 4.0]]),
    ("amax_nan_gradient", lambda lib, F, x: (x.amax(0) - 5.0).sqrt(), [[1.0, 4.0]]),
    # --- std where it is 0: gradient 0, as torch (not g / 0 * 0) ------------------------------------
    ("std_equal_values", lambda lib, F, x: x.std(1), [[[1.0, 1.0], [1.0, 2.0]]]),
    ("std_one_value_biased", lambda lib, F, x: x.std(0, unbiased=False), [1.5]),
    # --- cross-entropy where every target is ignored ---------------------------------------------
    *[(f"cross_entropy_all_ignored_{red}_smoothing_{s}", lambda lib, F, x, red=red, s=s: F.cross_entropy(
        x, lib.tensor(ALL_IGNORED), reduction=red, label_smoothing=s), [r(3, 4)])
      for red in ("mean", "sum", "none") for s in (0.0, 0.1)],
    # --- a query that may see no key -------------------------------------------------------------
    ("sdpa_blind_row_float_mask", lambda lib, F, q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
     [r(2, 3, 5), r(2, 4, 5), r(2, 4, 5), BLIND_ROW]),
    ("sdpa_blind_row_bool_mask", lambda lib, F, q, k, v: F.scaled_dot_product_attention(
        q, k, v, attn_mask=lib.tensor(BLIND_BOOL)), [r(2, 2, 3, 4), r(2, 2, 4, 4), r(2, 2, 4, 3)]),
    ("sdpa_blind_row_broadcast_mask", lambda lib, F, q, k, v, m: F.scaled_dot_product_attention(
        q, k, v, attn_mask=m), [r(2, 3, 5), r(2, 4, 5), r(2, 4, 5), BLIND_ROW[None]]),
    # --- variance of one element -----------------------------------------------------------------
    ("var_one_element", lambda lib, F, x: x.var(), [[2.0]]),
    ("var_one_element_biased", lambda lib, F, x: x.var(unbiased=False), [[2.0]]),
    ("var_one_row_dim", lambda lib, F, x: x.var(0), [[[2.0, 3.0]]]),
    ("var_one_row_dim_biased", lambda lib, F, x: x.var(0, unbiased=False), [[[2.0, 3.0]]]),
    ("var_0d", lambda lib, F, x: x.var(), [2.0]),
    # --- softmax of a row of only -inf: nan, as torch --------------------------------------------
    ("softmax_all_neginf_row", lambda lib, F, x: x.softmax(-1), [[[-INF, -INF, -INF], [1.0, 2.0, -INF]]]),
    ("log_softmax_all_neginf_row", lambda lib, F, x: x.log_softmax(-1), [[[-INF, -INF, -INF], [1.0, 2.0, -INF]]]),
    # --- 0-d tensors: dim 0 is the tensor itself ---------------------------------------------------
    ("sum_0d_dim", lambda lib, F, x: x.sum(0), [2.0]),
    ("mean_0d_dim", lambda lib, F, x: x.mean(-1, keepdim=True), [2.0]),
    ("var_0d_dim", lambda lib, F, x: x.var(0), [2.0]),
    ("softmax_0d", lambda lib, F, x: x.softmax(0) + x.log_softmax(-1), [2.0]),
    # --- empty tensors ---------------------------------------------------------------------------
    *[(f"{op}_empty_{label}", lambda lib, F, x, op=op, dim=dim: getattr(x, op)(*(() if dim is None else (dim,))),
       [empty(0, 3)]) for op in ("sum", "mean", "var")
      for label, dim in (("all", None), ("dim0", 0), ("dim1", 1), ("dims01", (0, 1)))],
    ("var_empty_biased", lambda lib, F, x: x.var(unbiased=False), [empty(0, 3)]),
    ("sum_empty_keepdim", lambda lib, F, x: x.sum(0, keepdim=True), [empty(0, 3)]),
    ("softmax_empty_dim", lambda lib, F, x: x.softmax(-1), [empty(3, 0)]),
    ("softmax_empty_rows", lambda lib, F, x: x.softmax(1), [empty(0, 3)]),
    ("softmax_over_empty_rows", lambda lib, F, x: x.softmax(0), [empty(0, 3)]),
    ("log_softmax_empty_dim", lambda lib, F, x: F.log_softmax(x, dim=-1), [empty(2, 0)]),
    ("log_softmax_empty_rows", lambda lib, F, x: F.log_softmax(x, dim=-1), [empty(0, 2)]),
    ("layer_norm_zero_rows", lambda lib, F, x, w, b: F.layer_norm(x, (4,), w, b), [empty(0, 4), r(4), r(4)]),
    ("layer_norm_zero_batch", lambda lib, F, x: F.layer_norm(x, (2, 4)), [empty(0, 2, 4)]),
    ("layer_norm_zero_features", lambda lib, F, x: F.layer_norm(x, (0,)), [empty(3, 0)]),
    *[(f"cross_entropy_zero_rows_{red}", lambda lib, F, x, red=red: F.cross_entropy(
        x, lib.tensor(NO_TARGETS), reduction=red, label_smoothing=0.1), [empty(0, 5)])
      for red in ("mean", "sum", "none")],
    ("cross_entropy_zero_positions", lambda lib, F, x: F.cross_entropy(x, lib.tensor(np.zeros((2, 0), np.int64))),
     [empty(2, 5, 0)]),
    ("sdpa_zero_queries", lambda lib, F, q, k, v: F.scaled_dot_product_attention(q, k, v),
     [empty(2, 0, 3), r(2, 4, 3), r(2, 4, 3)]),
    ("sdpa_zero_queries_causal", lambda lib, F, q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
     [empty(2, 0, 3), r(2, 4, 3), r(2, 4, 3)]),
    ("sdpa_zero_queries_mask", lambda lib, F, q, k, v: F.scaled_dot_product_attention(
        q, k, v, attn_mask=lib.tensor(np.ones((0, 4), dtype=bool))), [empty(2, 0, 3), r(2, 4, 3), r(2, 4, 3)]),
    ("sdpa_zero_keys", lambda lib, F, q, k, v: F.scaled_dot_product_attention(q, k, v),
     [r(2, 3, 3), empty(2, 0, 3), empty(2, 0, 3)]),
    ("sdpa_zero_batch", lambda lib, F, q, k, v: F.scaled_dot_product_attention(q, k, v),
     [empty(0, 3, 3), empty(0, 4, 3), empty(0, 4, 3)]),
]


def leaves(lib, arrays):
    return [lib.tensor(np.array(a, dtype=np.float64), dtype=lib.float64, requires_grad=True) for a in arrays]


def forward_backward(lib, F, fn, arrays, ops=None):
    """(output, input gradients) as NumPy arrays, the gradient of sum(out * fixed weights)."""
    inputs = leaves(lib, arrays)
    with kernels.selected(ops or "all") if lib is tg else contextlib.nullcontext():
        out = fn(lib, F, *inputs)
        weight = np.random.default_rng(1).standard_normal(tuple(out.shape))
        (out * lib.tensor(weight, dtype=lib.float64)).sum().backward()
    assert all(x.grad is not None for x in inputs), "every input takes part: each gets a gradient"
    return out.detach().numpy(), [x.grad.numpy() for x in inputs]


@pytest.mark.parametrize("ops", ["none", "all"], ids=["textbook", "fused"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_torch(case, ops):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as TorchF
    _, fn, arrays = case
    out, grads = forward_backward(tg, TF, fn, arrays, ops)
    ref, ref_grads = forward_backward(torch, TorchF, fn, arrays)
    assert out.shape == ref.shape and out.dtype == ref.dtype
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-12, equal_nan=True)
    for g, ref_g in zip(grads, ref_grads):
        assert g.shape == ref_g.shape
        np.testing.assert_allclose(g, ref_g, rtol=1e-10, atol=1e-12, equal_nan=True)


# The headline rules, checked without torch too.

@pytest.mark.parametrize("ops", ["none", "all"], ids=["textbook", "fused"])
def test_headline_rules_without_torch(ops):
    with kernels.selected(ops):
        x = tg.tensor([0.0, 2.0], dtype=tg.float64, requires_grad=True)
        (x ** 0).sum().backward()
        assert x.grad.tolist() == [0.0, 0.0]
        for reduction, expected in (("mean", NAN), ("sum", 0.0)):
            logits = tg.tensor(r(3, 4), requires_grad=True)
            loss = TF.cross_entropy(logits, tg.tensor(ALL_IGNORED), reduction=reduction)
            assert np.isnan(loss.item()) if np.isnan(expected) else loss.item() == expected
            loss.backward()
            assert not np.any(logits.grad.numpy()), "every target ignored: gradient 0, not nan"
        q, k, v = (tg.tensor(r(2, n, 5), requires_grad=True) for n in (3, 4, 4))
        out = TF.scaled_dot_product_attention(q, k, v, attn_mask=tg.tensor(BLIND_BOOL))
        out.sum().backward()
        assert not np.any(out.detach().numpy()[:, 0]) and not np.any(q.grad.numpy()[:, 0])
        assert np.isfinite(k.grad.numpy()).all() and np.isfinite(v.grad.numpy()).all()
        assert np.isnan(tg.tensor([2.0]).var().item()) and tg.tensor([2.0]).var(unbiased=False).item() == 0.0


def test_blind_query_with_dropout_gets_zeros():
    """torch draws other dropout masks, so this one is checked on its own: output and gradients 0."""
    for ops in ("none", "all"):
        with kernels.selected(ops):
            q, k, v = leaves(tg, [r(2, 3, 5), r(2, 4, 5), r(2, 4, 5)])
            m = tg.tensor(BLIND_ROW, dtype=tg.float64, requires_grad=True)
            tg.manual_seed(0)
            out = TF.scaled_dot_product_attention(q, k, v, attn_mask=m, dropout_p=0.5)
            out.sum().backward()
        assert not np.any(out.detach().numpy()[:, 1]) and not np.any(q.grad.numpy()[:, 1])
        assert not np.any(m.grad.numpy()[1]) and np.isfinite(m.grad.numpy()).all()


@pytest.mark.parametrize("ops", ["none", "all"], ids=["textbook", "fused"])
def test_max_dim_indices_at_nan_and_ties(ops):
    torch = pytest.importorskip("torch")
    x = np.array([[1.0, NAN, 3.0, NAN], [1.0, 3.0, 3.0, 0.0], [-INF, -INF, -INF, -INF]])
    with kernels.selected(ops):
        ours = tg.tensor(x).max(1)[1].numpy()
    assert ours.tolist() == torch.tensor(x).max(1)[1].tolist() == [1, 1, 0]


# Reductions with no identity: torch's errors, at the op, and in Tensor.max/min/argmax (which
# compute max(dim)'s indices before the op runs, so they call reduce.check_nonempty first).

def test_max_of_nothing_raises_torchs_errors():
    x = tg.tensor(empty(0, 3))
    with pytest.raises(RuntimeError, match=r"max\(\): Expected reduction dim to be specified for input.numel"):
        apply(R.Max, x, R.normalize_dims(None, 2), False)
    with pytest.raises(IndexError, match=r"max\(\): Expected reduction dim 0 to have non-zero size"):
        apply(R.Max, x, (0,), False, np.zeros(3, np.int64))
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match="Expected reduction dim to be specified"):
        torch.zeros(0, 3).max()
    with pytest.raises(IndexError, match="Expected reduction dim 0 to have non-zero size"):
        torch.zeros(0, 3).max(0)


@pytest.mark.parametrize("ops", ["none", "all"], ids=["textbook", "fused"])
def test_max_over_a_nonempty_dim_of_an_empty_tensor(ops):
    """The op takes max(1) of a (0, 3) tensor as torch does: empty values, an empty gradient."""
    x = tg.tensor(empty(0, 3), dtype=tg.float64, requires_grad=True)
    with kernels.selected(ops):
        values = apply(R.Max, x, (1,), False, np.zeros(0, np.int64))
        values.sum().backward()
    assert values.shape == (0,) and x.grad.shape == (0, 3)


def test_tensor_max_of_empty_tensors_as_torch():
    x = tg.tensor(empty(0, 3))
    with pytest.raises(RuntimeError, match=r"max\(\): Expected reduction dim to be specified"):
        x.max()
    values, indices = x.max(1)
    assert values.shape == indices.shape == (0,)
    with pytest.raises(IndexError, match=r"max\(\): Expected reduction dim 0 to have non-zero size"):
        x.max(0)
    with pytest.raises(IndexError, match=r"min\(\): Expected reduction dim 0 to have non-zero size"):
        x.min(0)
    with pytest.raises(IndexError, match=r"argmax\(\): Expected reduction dim 0 to have non-zero size"):
        x.argmax(0)


# float16 layer norm: statistics in float32, a float16 result, textbook and CPU twin alike.

HALF_X = np.array([[300.0, 301.0, 302.0, 310.0], [-1000.0, 0.0, 500.0, 1000.0], [0.5, 0.25, -0.5, 0.0]])


@pytest.mark.parametrize("affine", [False, True], ids=["plain", "affine"])
@pytest.mark.parametrize("ops", ["none", "all"], ids=["textbook", "fused"])
def test_float16_layer_norm(ops, affine):
    def run(lib, F):
        x = lib.tensor(HALF_X, dtype=lib.float16, requires_grad=True)
        w = lib.tensor([1.0, 2.0, 0.5, -1.0], dtype=lib.float16, requires_grad=True) if affine else None
        b = lib.tensor([0.0, 1.0, -1.0, 0.5], dtype=lib.float16, requires_grad=True) if affine else None
        out = F.layer_norm(x, (4,), w, b)
        out.backward(lib.tensor(np.arange(12.0).reshape(3, 4) / 10, dtype=lib.float16))
        return out, [t.grad for t in (x, w, b) if t is not None]

    with kernels.selected(ops):
        out, grads = run(tg, TF)
        if ops == "none":  # the textbook op, in float32 for float16 (kernels/opmath.py)
            assert isinstance(out.grad_fn, layer_norm.LayerNorm) and type(out.grad_fn).__module__.endswith("opmath")
        else:
            assert type(out.grad_fn) is kernels.cpu.layer_norm.LayerNorm
    assert out.dtype == tg.float16 and all(g.dtype == tg.float16 for g in grads)
    values = out.detach().numpy().astype(np.float64)
    assert np.abs(values[:2]).max() > 1, "float16 statistics overflowed: the rows came out as zeros"
    xd = HALF_X.astype(np.float16).astype(np.float64)
    xhat = (xd - xd.mean(-1, keepdims=True)) / np.sqrt(xd.var(-1, keepdims=True) + 1e-5)
    expected = xhat * [1.0, 2.0, 0.5, -1.0] + [0.0, 1.0, -1.0, 0.5] if affine else xhat
    np.testing.assert_allclose(values, expected, rtol=2e-3, atol=2e-3)
    torch = pytest.importorskip("torch")
    import torch.nn.functional as TorchF
    ref, ref_grads = run(torch, TorchF)
    assert ref.dtype == torch.float16
    np.testing.assert_allclose(values, ref.detach().double().numpy(), rtol=2e-3, atol=2e-3)
    for g, ref_g in zip(grads, ref_grads):
        np.testing.assert_allclose(g.numpy().astype(np.float64), ref_g.double().numpy(), rtol=5e-3, atol=5e-3)


def test_float16_layer_norm_twin_matches_textbook():
    x, w, b = HALF_X.astype(np.float16), np.float16([1.0, 2.0, 0.5, -1.0]), np.float16([0.0, 1.0, -1.0, 0.5])
    g = (np.arange(12.0).reshape(3, 4) / 10).astype(np.float16)
    results = []
    for op in (layer_norm.LayerNorm, kernels.cpu.layer_norm.LayerNorm):
        fn = op()
        fn.needs_grad = (True, True, True)
        out = fn.forward(x, w, b, 1, 1e-5)
        results.append([out, *fn.backward(g)])
    for textbook, twin in zip(*results):
        assert textbook.dtype == twin.dtype == np.float16
        np.testing.assert_allclose(twin.astype(np.float64), textbook.astype(np.float64), rtol=2e-3, atol=2e-3)


# The twins at these edges, op against op (on the GPU where there is one).

def test_cpu_attention_twin_blind_rows_match_the_textbook_op():
    q, k, v = r(2, 3, 5), r(2, 4, 5), r(2, 4, 5)
    g = r(2, 3, 5)
    results = []
    for op in (attention.Attention, kernels.cpu.attention.Attention):
        fn = op()
        fn.needs_grad = (True, True, True, True)
        assert op is attention.Attention or op.supports(q, k, v, BLIND_ROW, 0.5, 0.0, None, False)
        out = fn.forward(q, k, v, BLIND_ROW, 0.5, 0.0, None, False)
        results.append([out, *fn.backward(g)])
    for textbook, twin in zip(*results):
        assert np.isfinite(twin).all()
        np.testing.assert_allclose(twin, textbook, rtol=1e-10, atol=1e-12)
    assert not np.any(results[1][0][:, 1]) and not np.any(results[1][1][:, 1]) and not np.any(results[1][4][:, 1])


@pytest.mark.skipif(not backend.cuda_available(), reason="no GPU here")
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cuda_cross_entropy_twin_all_ignored_gives_zero_gradients(reduction):
    cupy = backend.cupy
    for dtype in (np.float64, np.float32):
        logits, target = cupy.asarray(r(5, 40).astype(dtype)), cupy.full((5,), -100, dtype=np.int64)
        outs = []
        for op in (cross_entropy.CrossEntropy, cuda_cross_entropy.CrossEntropy):
            fn = op()
            fn.needs_grad = (True, False)
            assert op is cross_entropy.CrossEntropy or op.supports(logits, target, -100, reduction, 0.1)
            loss = fn.forward(logits, target, -100, reduction, 0.1)
            grad = fn.backward(cupy.ones_like(cupy.asarray(loss)))[0]
            outs.append((cupy.asnumpy(cupy.asarray(loss)), cupy.asnumpy(grad)))
        for loss, grad in outs:
            assert not np.any(grad) and np.isfinite(grad).all()
            if reduction == "mean":
                assert np.isnan(loss)
            else:
                assert not np.any(loss)


# Argument checks: torch's kind of error, with a message that names the argument.
@pytest.mark.parametrize("call, error, message", [
    (lambda t: t.softmax(None), TypeError, "softmax.*dim"),
    (lambda t: t.log_softmax(1.5), TypeError, "log_softmax.*dim"),
    (lambda t: t.flatten(1, 0), RuntimeError, "start_dim .* cannot come after end_dim"),
    (lambda t: t.split([-1, 4], 1), ValueError, "non-negative"),
    (lambda t: t.split(-1, 1), ValueError, "split size must be positive"),
    (lambda t: t.chunk(0), RuntimeError, "chunks"),
    (lambda t: tg.arange(0, 5, 0), ValueError, "step must be nonzero"),
    (lambda t: tg.arange(0, float("nan")), ValueError, "bounds"),
    (lambda t: tg.full(3, 1.0), TypeError, "size tuple"),
    (lambda t: tg.randint(0, 5, 3), TypeError, "size tuple"),
    (lambda t: tg.zeros(-1), ValueError, "non-negative"),
    (lambda t: t.topk(5), IndexError, "k=5 is out of range"),
], ids=["softmax-None", "log_softmax-float", "flatten-1-0", "split-negative-sections", "split-negative",
        "chunk-0", "arange-step-0", "arange-nan", "full-int-size", "randint-int-size", "zeros-negative", "topk-k"])
def test_bad_arguments_raise_torchs_kind_of_error(call, error, message):
    with pytest.raises(error, match=message):
        call(tg.randn(2, 3))


def test_an_empty_dim_list_reduces_every_dim_as_torch():
    x = tg.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert x.sum(dim=()).item() == 10.0 and x.mean(dim=[]).item() == 2.5 and x.amax(dim=()).item() == 4.0
