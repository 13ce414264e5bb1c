"""Numba's attention (tinygrad_tf/kernels/numba/attention.py) against the textbook op it replaces
(forward and every gradient, float64 and float32, dropout included: both draw the same
counter-based mask), its dropout bits against ops/random.py bit for bit, its softmax weights
against a softmax taken in more precision, what it declines, and F.scaled_dot_product_attention
run through it against torch's. Skipped where numba is not installed."""
import numpy as np
import pytest

pytest.importorskip("numba")

import tinygrad_tf as tg  # noqa: E402
from tinygrad_tf import check, dispatch, kernels, ops  # noqa: E402
from tinygrad_tf.check import Case, _blind_bias, _qkv, _r  # noqa: E402
from tinygrad_tf.kernels.cpu import attention as cpu_attention  # noqa: E402
from tinygrad_tf.kernels.numba import _numba, attention as numba_attention, random as numba_random  # noqa: E402
from tinygrad_tf.nn import functional as F  # noqa: E402
from tinygrad_tf.ops.random import dropout_scale, uniform  # noqa: E402

Attention = numba_attention.Attention
DTYPES = pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
pytestmark = pytest.mark.skipif(not _numba.usable(), reason="the numba kernels are switched off")

CASES = [
    Case(Attention, "causal", (*_qkv(2, 3, 16, 8), None, 0.35, 0.0, None, True)),
    Case(Attention, "causal, 70 keys, 1 batch dim of 2", (*_qkv(2, 70, 16), None, 0.25, 0.0, None, True)),
    Case(Attention, "causal, dropout 0.3", (*_qkv(2, 3, 67, 8), None, 0.35, 0.3, 7, True)),
    Case(Attention, "no mask, dropout 0.3", (*_qkv(2, 3, 40, 8), None, 0.35, 0.3, 8, False)),
    Case(Attention, "float mask", (_r(2, 4, 3), _r(2, 5, 3, seed=1), _r(2, 5, 3, seed=2), _r(4, 5, seed=4), 0.5,
                                   0.0, None, False)),
    Case(Attention, "float mask, dropout 0.3",
         (_r(2, 4, 3), _r(2, 5, 3, seed=1), _r(2, 5, 3, seed=2), _r(4, 5, seed=4), 0.5, 0.3, 7, False)),
    Case(Attention, "a query that sees no key",
         (_r(2, 4, 3), _r(2, 5, 3, seed=1), _r(2, 5, 3, seed=2), _blind_bias(), 0.5, 0.3, 7, False)),
    Case(Attention, "a query that sees no key, causal",
         (_r(2, 4, 3), _r(2, 5, 3, seed=1), _r(2, 5, 3, seed=2), _blind_bias(), 0.5, 0.0, None, True)),
    Case(Attention, "0 queries", (_r(2, 0, 3), _r(2, 5, 3, seed=1), _r(2, 5, 3, seed=2), None, 0.5, 0.0, None, False)),
    Case(Attention, "0 keys", (_r(2, 4, 3), _r(2, 0, 3, seed=1), _r(2, 0, 3, seed=2), None, 0.5, 0.0, None, False)),
    Case(Attention, "2-D, causal, more queries than keys", (_r(9, 4), _r(5, 4, seed=1), _r(5, 6, seed=2), None, 0.5,
                                                            0.0, None, True)),
    Case(Attention, "broadcast batch, a mask per batch, causal, dropout 0.2",
         (_r(2, 3, 7, 4), _r(3, 9, 4, seed=1), _r(1, 9, 5, seed=2), _r(2, 1, 7, 9, seed=4), 0.5, 0.2, 11, True)),
    Case(Attention, "a mask per matrix, dropout 0.4",
         (_r(3, 5, 6, 4), _r(3, 5, 8, 4, seed=1), _r(3, 5, 8, 2, seed=2), _r(3, 5, 6, 8, seed=4), 0.5, 0.4, 13,
          False)),
]


@DTYPES
@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_matches_the_textbook_op(case, dtype):
    row = check.check_case(case, dtype)
    assert row["passed"], row


@DTYPES
@pytest.mark.parametrize("case", [c for c in CASES if c.args[0].ndim > 2], ids=lambda c: c.label)
def test_split_over_threads_matches_the_textbook_op_and_the_serial_bits(case, dtype, split, monkeypatch):
    """The matrices split over numba's threads (the mask's rows and the dropout counters follow
    each matrix's place): the textbook op's results, and the serial kernels' bits."""
    row = check.check_case(case, dtype)
    assert row["passed"], row
    assert True in numba_attention._forward.variants and True in numba_attention._backward.variants
    args = [a.astype(dtype) if isinstance(a, np.ndarray) else a for a in case.args]
    g = np.random.default_rng(2).standard_normal(Attention().forward(*args).shape).astype(dtype)
    results = []
    for parallel_from in (0, 1 << 62):
        monkeypatch.setattr(_numba, "PARALLEL_FROM", parallel_from)
        fn = Attention()
        results.append([fn.forward(*args), *fn.backward(g)])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("scipy_has_its_own", [True, False], ids=["own-copy", "shared"])
def test_blas_runs_on_one_thread_inside_the_split_kernels(split, monkeypatch, scipy_has_its_own):
    """While the parallel variant runs, the kernels' BLAS is on one thread. After: SciPy's own
    copy stays there and every other BLAS is as before; a BLAS it shares is restored."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    own, shared = _numba._kernels_blas()
    everything = threadpoolctl.ThreadpoolController().select(user_api="blas").lib_controllers
    if not scipy_has_its_own:
        own, shared = (), tuple(everything)
        monkeypatch.setattr(_numba, "_kernels_blas", lambda: (own, shared))
    elif not own:
        pytest.skip("SciPy here has no BLAS of its own (not a wheel's)")
    seen = []
    compiled = numba_attention._forward.compiled

    def spy(parallel):
        run = compiled(parallel)
        return lambda *args: (seen.append([library.get_num_threads() for library in own + shared]), run(*args))[1]
    monkeypatch.setattr(numba_attention._forward, "compiled", spy)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        Attention().forward(*_qkv(2, 3, 16, 8), None, 0.35, 0.0, None, True)
        after = {library.filepath: library.get_num_threads() for library in everything}
    assert seen == [[1] * len(own + shared)]
    held = {library.filepath for library in own}
    assert after == {library.filepath: 1 if library.filepath in held else 2 for library in everything}


def test_without_scipy_the_numpy_twin_runs(monkeypatch):
    """numba calls BLAS through SciPy: without it the attention goes to kernels/cpu's twin."""
    args = (*_qkv(2, 3, 16, 8), None, 0.35, 0.0, None, True)
    assert dispatch.choose(ops.attention.Attention, args, {}) is Attention
    monkeypatch.setattr(_numba, "has_blas", lambda: False)
    assert dispatch.choose(ops.attention.Attention, args, {}) is cpu_attention.Attention


def _forward_only(op, args, needs):
    fn = op()
    fn.needs_grad = needs
    return fn, fn.forward(*args)


@DTYPES
@pytest.mark.parametrize("p", [0.0, 0.3])
def test_without_gradients_and_with_some(dtype, p):
    """Nothing kept without a gradient (dropout written over the weights), and only the gradients asked for."""
    q, k, v = (a.astype(dtype) for a in _qkv(2, 3, 20, 8))
    args = (q, k, v, None, 0.35, p, 5, True)
    textbook_fn, expected = _forward_only(ops.attention.Attention, args, (True,) * 3 + (False,) * 5)
    fn, out = _forward_only(Attention, args, (False,) * 8)
    assert check._relative_difference(out, expected) <= check.TOLERANCE[dtype] and not hasattr(fn, "weights")
    fn, out = _forward_only(Attention, args, (True, False, False) + (False,) * 5)
    g = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    gq, gk, gv, gbias = fn.backward(g)
    assert gk is None and gv is None and gbias is None
    assert check._relative_difference(gq, textbook_fn.backward(g)[0]) <= check.TOLERANCE[dtype]
    no_queries = (q[:, :, :0], k, v, None, 0.35, p, 5, True)  # the scratch weights have 0 rows too
    assert _forward_only(Attention, no_queries, (False,) * 8)[1].shape == (2, 3, 0, 8)


@DTYPES
def test_head_split_views_are_read_in_place_and_the_heads_merge_without_a_copy(dtype):
    """The GPT's q, k, v: (B, T, C) arrays seen as (B, H, T, D) views. The kernels read them where
    they are (nothing copied and kept), the output and the input gradients come in (B, T, H, D)
    order, so that merging the heads is a view; every result the textbook op's. A transposed
    matrix (no contiguous rows) is copied and gives the same results."""
    B, T, H, D = 2, 9, 3, 4
    x = [_r(B, T, H * D, seed=s).astype(dtype) for s in range(3)]
    g = _r(B, T, H * D, seed=5).astype(dtype)
    results = {}
    for spec in ("all", "none"):
        with kernels.selected(spec):
            qkv = [tg.tensor(a, requires_grad=True) for a in x]
            heads = [t.view(B, T, H, D).transpose(1, 2) for t in qkv]
            out = F.scaled_dot_product_attention(*heads, is_causal=True)
            merged = out.transpose(1, 2).contiguous().view(B, T, H * D)
            if spec == "all":
                fn = out.grad_fn
                assert type(fn) is Attention and all(np.shares_memory(a, t.detach().numpy()) for a, t in
                                                     zip((fn.q, fn.k, fn.v), qkv))
                assert out.transpose(1, 2).detach().numpy().flags.c_contiguous
            merged.backward(tg.tensor(g))
            results[spec] = [merged.detach().numpy()] + [t.grad.numpy() for t in qkv]
            assert spec == "none" or all(t.grad.numpy().flags.c_contiguous for t in qkv)
    for fused, textbook in zip(results["all"], results["none"]):
        assert check._relative_difference(fused, textbook) <= check.TOLERANCE[dtype]
    q, k, v = (a.astype(dtype) for a in _qkv(2, 3, 5, 4))
    args = (q.transpose(0, 1, 3, 2).copy().transpose(0, 1, 3, 2), k, v, None, 0.5, 0.0, None, True)
    fn, out = _forward_only(Attention, args, (True,) * 3 + (False,) * 5)
    assert not np.shares_memory(fn.q, args[0])
    assert check._relative_difference(out, _forward_only(ops.attention.Attention, args, (False,) * 8)[1]) \
        <= check.TOLERANCE[dtype]


@DTYPES
@pytest.mark.parametrize("p", [0.3, 0.5 + 2 ** -26, np.float64(0.5 + 2 ** -26), 1 - 2 ** -30, 2 ** -60])
def test_dropout_threshold_is_numpys_comparison(dtype, p):
    """(hash >> shift) >= threshold exactly where NumPy finds u >= p, u = (hash >> shift) * 2^-bits
    of `dtype` (a Python float p is compared at that dtype, a NumPy float64 at float64)."""
    shift, threshold = numba_random.dropout_bits(np.dtype(dtype), p)
    bits = 64 - int(shift)
    around = np.arange(max(int(threshold) - 5, 0), min(int(threshold) + 5, 2 ** bits), dtype=np.uint64)
    u = around.astype(dtype) * dtype(2.0 ** -bits)
    assert np.array_equal(around >= threshold, u >= p)


@DTYPES
@pytest.mark.parametrize("p", [0.3, 0.75])
def test_dropout_mask_is_ops_random_bit_for_bit(dtype, p):
    """The forward's and the backward's masks are ops/random.py's, for rows that start anywhere."""
    dtype, (rows, n, seed) = np.dtype(dtype), (301, 77, 2 ** 63 + 12345)
    shift, threshold = numba_random.dropout_bits(dtype, p)
    keep = dtype.type(1 / (1 - p))
    expected = np.full((rows, n), dtype.type(1) / dtype.type(n)) * dropout_scale(seed, (rows, n), p, dtype)
    kept = uniform(seed, (rows, n), dtype) >= p
    no_mask = numba_attention.Attention._bias_rows(None, (rows, n), dtype)
    for first in (0, 100):  # the rows from `first` on, as a later chunk has them
        weights, dropped = np.zeros((rows - first, n), dtype), np.empty((rows - first, n), dtype)
        numba_attention._forward_rows(weights, first, rows, False, dtype.type(1), dtype.type(-np.inf),
                                 dtype == np.float32, no_mask, True, np.uint64(seed), shift, threshold, keep, dropped)
        assert np.array_equal(dropped, expected[first:]) and np.array_equal(dropped != 0, kept[first:])
        redrawn, gd = np.empty_like(dropped), np.ones_like(dropped)
        numba_attention._backward_rows(weights, gd, first, rows, False, dtype.type(1), True, np.uint64(seed), shift,
                                  threshold, keep, redrawn)
        assert np.array_equal(redrawn, dropped)


@DTYPES
@pytest.mark.parametrize("causal", [False, True])
def test_weights_are_a_softmax_taken_in_more_precision(dtype, causal):
    """The weights over scores of every range (exp is the kernel's own polynomial): a few ulp from
    a softmax of the same shifted scores taken in float64 (for float32) or long double (for
    float64); weights under 2^-126 (2^-1022) within that of it."""
    dtype = np.dtype(dtype)
    wide = np.longdouble if dtype == np.float64 else np.float64
    if np.finfo(wide).eps >= np.finfo(dtype).eps / 100:
        pytest.skip("no wider float here")
    rng = np.random.default_rng(3)
    rows, n = 4000, 97
    scores = (rng.uniform(-1, 0.2, (rows, n)) * rng.choice([0.1, 3, 30, 100, 800], (rows, 1))).astype(dtype)
    scores[::17, 5] = -np.inf
    weights = scores.copy()
    numba_attention._forward_rows(weights, 0, rows, causal, dtype.type(1), dtype.type(-np.inf), dtype == np.float32,
                             numba_attention.Attention._bias_rows(None, (rows, n), dtype), False, np.uint64(0),
                             np.uint64(0), np.uint64(0), dtype.type(1), weights)
    if causal:
        scores[np.arange(n) > np.arange(rows)[:, None]] = -np.inf
    e = np.exp((scores - scores.max(axis=-1, keepdims=True)).astype(wide))  # the shift in dtype, as both ops take it
    reference = e / e.sum(axis=-1, keepdims=True)
    tiny = 2.0 ** (-126 if dtype == np.float32 else -1022)
    error = np.abs(weights.astype(wide) - reference)
    normal = reference >= tiny
    assert (error[normal] / reference[normal]).max() <= 4 * np.finfo(dtype).eps
    assert error[~normal].max(initial=0) <= tiny


def test_declines_what_it_does_not_take():
    x, mask = _r(2, 4, 3), _r(4, 4)
    assert Attention.supports(x, x, x, mask, 0.5, 0.0, None, False)
    for args in [(x.astype(np.float16),) * 3 + (None,), (x, x.astype(np.float32), x, None),
                 (x, x, x, mask.astype(np.float32)), (x, x, x, mask > 0), (x, x, _r(3, 2, 4, 3), None),
                 (x, x, x, _r(3, 2, 4, 4)), (x[0, 0], x[0, 0], x[0, 0], None), (x, x, _r(2, 5, 3), None)]:
        assert not Attention.supports(*args, 0.5, 0.0, None, False), [getattr(a, "shape", a) for a in args]
    with kernels.selected("-numba"):
        assert not Attention.supports(x, x, x, mask, 0.5, 0.0, None, False)


def _sdpa(q, k, v, mask, causal, dtype, torch=None):
    """F.scaled_dot_product_attention (tinygrad_tf, or torch's): the output and the gradients of q, k, v."""
    g = np.random.default_rng(6).standard_normal(q.shape[:-1] + v.shape[-1:]).astype(dtype)
    if torch is None:
        ts = [tg.tensor(a.astype(dtype), requires_grad=True) for a in (q, k, v)]
        out = F.scaled_dot_product_attention(*ts, attn_mask=mask, is_causal=causal)
        out.backward(tg.tensor(g))
        return [out.detach().numpy()] + [t.grad.numpy() for t in ts]
    ts = [torch.tensor(a.astype(dtype), requires_grad=True) for a in (q, k, v)]
    out = torch.nn.functional.scaled_dot_product_attention(*ts, attn_mask=None if mask is None else
                                                           torch.tensor(mask), is_causal=causal)
    out.backward(torch.tensor(g))
    return [out.detach().numpy()] + [t.grad.numpy() for t in ts]


@DTYPES
@pytest.mark.parametrize("mask", ["causal", "float", "bool", "bool, a query that sees no key"])
def test_scaled_dot_product_attention_through_numba_matches_torch(mask, dtype, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setitem(dispatch.TWINS, ops.attention.Attention, (Attention,))  # however dispatch.py orders it
    q, k, v = _r(2, 3, 11, 8), _r(2, 3, 13, 8, seed=1), _r(2, 3, 13, 5, seed=2)
    m = {"causal": None, "float": _r(11, 13, seed=3).astype(dtype), "bool": _r(11, 13, seed=3) > -0.5}.get(mask)
    if m is None and mask != "causal":
        m = _r(11, 13, seed=3) > -0.5
        m[4] = False
    raw = (q.astype(dtype), k.astype(dtype), v.astype(dtype), None, 0.5, 0.0, None, mask == "causal")
    assert dispatch.choose(ops.attention.Attention, raw, {}) is Attention
    ours, theirs = _sdpa(q, k, v, m, mask == "causal", dtype), _sdpa(q, k, v, m, mask == "causal", dtype, torch)
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype and check._relative_difference(a, b) <= check.TOLERANCE[dtype]


@DTYPES
@pytest.mark.parametrize("case", [c for c in CASES if c.args[0].size], ids=lambda c: c.label)
def test_split_row_passes_match_the_textbook_and_their_serial_bits(case, dtype, monkeypatch):
    """The row passes' parallel variants (prange over rows, numba's threads): the textbook op's
    results, and the serial passes' bits."""
    numba = _numba.load()
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has one thread here")
    args = tuple(a.astype(dtype) if isinstance(a, np.ndarray) else a for a in case.args)
    g = _r(*_forward_only(Attention, args, (True,) * 4)[1].shape, seed=9).astype(dtype)
    results = {}
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(2)
        for threshold in (0, 1 << 62):
            monkeypatch.setattr(_numba, "PARALLEL_FROM", threshold)
            if threshold == 0:
                row = check.check_case(case, dtype)
                assert row["passed"], row
            fn, out = _forward_only(Attention, args, (True,) * 4)
            results[threshold] = [out] + [a for a in fn.backward(g) if a is not None]
    finally:
        numba.set_num_threads(before)
    assert True in numba_attention._forward.variants and True in numba_attention._backward.variants
    for a, b in zip(results[0], results[1 << 62]):
        np.testing.assert_array_equal(a, b)
