"""The Numba CPU kernels (tinygrad_tf/kernels/numba/, the optional `cpu` extra): parity with the
textbook ops through the Tensor API (forward and every gradient, float64 and float32, edge
shapes), the "numba" switch, the NumPy path when numba is missing, tg.set_num_threads, the
Adam update, and the one-line announcement of a compile. Skipped where numba is not installed
(check.py's table, run by test_kernels.py, skips their rows there too)."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tinygrad_tf as tg
from tinygrad_tf import check, dispatch, kernels, ops
from tinygrad_tf.kernels import cpu
from tinygrad_tf.kernels.numba import _numba, adam, add, cross_entropy, dropout, embedding, layer_norm, linear, relu
from tinygrad_tf.models.gpt import GPT, GPTConfig
from tinygrad_tf.nn import functional as F

if _numba.load() is None:  # not installed, or it fails to import: the library runs the NumPy path then
    pytest.skip("numba is not installed (the `cpu` extra)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
DTYPES = pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])


def _grads(fn, arrays, dtype, spec):
    """fn's output and the gradients of its float inputs (a fixed random output gradient), under
    `spec`; dropout seeds from manual_seed(0)."""
    tg.manual_seed(0)
    with kernels.selected(spec):
        ts = [tg.tensor(a.astype(dtype), requires_grad=True) if a.dtype.kind == "f" else tg.tensor(a) for a in arrays]
        out = fn(*ts)
        g = np.random.default_rng(5).standard_normal(out.shape).astype(dtype)
        out.backward(tg.tensor(g))
        return [out.detach().numpy()] + [t.grad.numpy() for t in ts if t.requires_grad]


def _assert_same(fn, arrays, dtype):
    """Numba's kernels ("all") against the textbook ops ("none"), within check.py's tolerance."""
    fused, textbook = _grads(fn, arrays, dtype, "all"), _grads(fn, arrays, dtype, "none")
    for f, t in zip(fused, textbook):
        assert f.shape == t.shape and f.dtype == t.dtype
        assert check._relative_difference(f.astype(np.float64), t.astype(np.float64)) <= check.TOLERANCE[dtype]


def _r(*shape, seed=0, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


@DTYPES
@pytest.mark.parametrize("rows", [0, 1, 3, 130])
def test_layer_norm(rows, dtype):
    _assert_same(lambda x, w, b: F.layer_norm(x, (24,), w, b), [_r(rows, 24, scale=3) + 5, _r(24, seed=1),
                                                               _r(24, seed=2)], dtype)
    _assert_same(lambda x: F.layer_norm(x, (2, 5)), [_r(rows, 2, 5)], dtype)


@DTYPES
@pytest.mark.filterwarnings("ignore:invalid value encountered")  # the mean of no rows: nan, in both
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy(reduction, smoothing, dtype):
    targets = np.random.default_rng(3).integers(0, 65, 50)
    targets[::4] = 7  # ignore_index=7 below: a class that also shows up as a target
    for logits, t, ignore in ((_r(50, 65, scale=4), targets, 7), (_r(1, 65), targets[:1], -100),
                              (_r(0, 65), targets[:0], -100), (_r(3, 65), np.full(3, -100), -100)):
        _assert_same(lambda x, y: F.cross_entropy(x, y, ignore_index=ignore, reduction=reduction,
                                                  label_smoothing=smoothing).reshape(-1), [logits, t], dtype)


@DTYPES
def test_embedding_with_repeated_ids(dtype):
    ids = np.random.default_rng(4).integers(0, 5, (3, 40))
    _assert_same(lambda i, w: F.embedding(i, w), [ids, _r(5, 16)], dtype)
    _assert_same(lambda i, w: F.embedding(i, w), [ids[:0], _r(5, 16)], dtype)


@DTYPES
@pytest.mark.parametrize("activation", [None, "relu"])
def test_relu_and_linear(activation, dtype):
    _assert_same(lambda x: x.relu(), [_r(3, 50, 7)], dtype)
    _assert_same(lambda x, w, b: F.linear(x, w, b, activation=activation), [_r(2, 70, 24), _r(40, 24, seed=1),
                                                                              _r(40, seed=2)], dtype)
    _assert_same(lambda x, w: F.linear(x, w, activation=activation), [_r(1, 24), _r(40, 24, seed=1)], dtype)
    _assert_same(lambda x, w, b: F.linear(x.transpose(0, 1), w, b, activation=activation),
                 [_r(24, 9), _r(40, 24, seed=1), _r(40, seed=2)], dtype)  # a strided x
    _assert_same(lambda x, w, b: F.linear(x, w, b, activation=activation), [_r(24), _r(40, 24, seed=1),
                                                                              _r(40, seed=2)], dtype)  # one vector
    _assert_same(lambda x, w, b: F.linear(x, w, b, activation=activation), [_r(0, 24), _r(40, 24, seed=1),
                                                                              _r(40, seed=2)], dtype)  # no rows


@DTYPES
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_is_the_textbook_mask_bit_for_bit(p, dtype):
    """Forward and backward equal the textbook op's exactly (the same mask from the seed, the same
    product), over several counter chunks and a partial last one; the mask is never kept."""
    x = tg.tensor(_r(3, 50, 61).astype(dtype), requires_grad=True)  # 9150 elements: 2 chunks and a part
    g = tg.tensor(_r(3, 50, 61, seed=1).astype(dtype))
    results = []
    for spec in ("all", "none"):
        with kernels.selected(spec):
            tg.manual_seed(4)
            y = F.dropout(x, p)
            assert (type(y.grad_fn) is dropout.Dropout) == (spec == "all")
            y.backward(g)
            results.append((y.detach().numpy(), x.grad.numpy()))
            x.grad = None
    for fused, textbook in zip(*results):
        assert fused.dtype == dtype and np.array_equal(fused, textbook)
    kept = results[0][0] != 0
    assert abs(kept.mean() - (1 - p)) < 0.02 and np.array_equal(results[0][1] != 0, kept)


@DTYPES
def test_add_of_one_shape_and_what_it_leaves_to_numpy(dtype):
    _assert_same(lambda a, b: a + b, [_r(3, 50, 7), _r(3, 50, 7, seed=1)], dtype)
    _assert_same(lambda a, b: a.transpose(1, 2) + b, [_r(3, 7, 50), _r(3, 50, 7, seed=1)], dtype)
    x = np.ones((3, 4), dtype)
    assert dispatch.choose(ops.elementwise.Add, (x, x), {}) is add.Add
    for other in (x[0], np.float64(2.0), x.astype(np.float16 if dtype == np.float32 else np.float32)):
        assert dispatch.choose(ops.elementwise.Add, (x, other), {}) is not add.Add  # broadcast, scalar, promotion


def test_dropout_leaves_16_bit_inputs_to_the_textbook_op():
    x = np.ones((4, 4), np.float16)
    assert issubclass(dispatch.choose(ops.dropout.Dropout, (x, 0.5, 3), {}), ops.dropout.Dropout)  # in float32
    assert dispatch.choose(ops.dropout.Dropout, (x.astype(np.float32), 0.5, 3), {}) is dropout.Dropout


def test_relu_keeps_nan_and_passes_no_nan_gradient_where_cut():
    x = tg.tensor([-1.0, np.nan, 2.0, 0.0], requires_grad=True)
    y = x.relu()
    assert type(y.grad_fn) is relu.Relu
    y.backward(tg.tensor([np.nan, 1.0, 2.0, np.inf]))
    np.testing.assert_array_equal(y.detach().numpy(), [0.0, np.nan, 2.0, 0.0])
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 2.0, 0.0])


@DTYPES
def test_a_gpt_step_matches_the_numpy_path_and_the_textbook(dtype):
    """Loss and every gradient of a small GPT: Numba's kernels, the NumPy twins and the textbook ops."""
    results = {}
    idx = np.random.default_rng(1).integers(0, 11, (3, 8))
    targets = np.random.default_rng(2).integers(0, 11, (3, 8))
    for spec in ("all", "-numba", "none"):
        with kernels.selected(spec):
            tg.manual_seed(0)
            model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.0)).to(dtype)
            _, loss = model(tg.tensor(idx), tg.tensor(targets))
            loss.backward()
            results[spec] = [loss.detach().numpy()] + [p.grad.numpy() for p in model.parameters()]
    for other in ("-numba", "none"):
        for a, b in zip(results["all"], results[other]):
            assert check._relative_difference(a.astype(np.float64), b.astype(np.float64)) <= 10 * check.TOLERANCE[dtype]


def test_the_switch_picks_numba_then_numpy_then_textbook():
    x = np.ones((3, 4))
    cases = [(ops.layer_norm.LayerNorm, (x, x[0], x[0], 1, 1e-5), layer_norm.LayerNorm, cpu.layer_norm.LayerNorm),
             (ops.linear.Linear, (x, x, x[:, 0], "relu"), linear.Linear, cpu.linear.Linear),
             (ops.embedding.Embedding, (np.zeros(3, np.int64), x), embedding.Embedding, cpu.embedding.Embedding),
             (ops.cross_entropy.CrossEntropy, (x, np.zeros(3, np.int64), -100, "mean", 0.0),
              cross_entropy.CrossEntropy, ops.cross_entropy.CrossEntropy),
             (ops.elementwise.Relu, (x,), relu.Relu, ops.elementwise.Relu)]
    for op, args, numba_op, numpy_op in cases:
        assert dispatch.choose(op, args, {}) is numba_op
        with kernels.selected("-numba"):
            assert dispatch.choose(op, args, {}) is numpy_op
        with kernels.selected("none"):
            assert dispatch.choose(op, args, {}) is op
    assert dispatch.choose(ops.linear.Linear, (x, x, None, None), {}) is linear.Linear  # the GEMMs on numba's pool too
    for odd in ((x, x.astype(np.float32), None, None), (x, x, x[:2, 0], None), (x, x[:, :3], None, None),
                (x, x, None, "gelu")):  # mixed dtypes, a bias or weight that does not fit, another activation
        assert dispatch.choose(ops.linear.Linear, odd, {}) is not linear.Linear
    assert dispatch.choose(ops.layer_norm.LayerNorm, (x.astype(np.float16), None, None, 1, 1e-5), {}) \
        is cpu.layer_norm.LayerNorm
    assert not adam.supports(x, x, x, x.T.copy().T)  # a strided moment: the flat loop cannot take it
    with kernels.selected("-numba"):
        assert not adam.supports(x, x, x, x) and _numba.missing() == "the numba kernels are switched off"
    assert adam.supports(x, x, x, x) and _numba.missing() is None


def test_without_numba_the_numpy_path_runs_and_its_rows_are_skipped(monkeypatch):
    monkeypatch.setattr(_numba, "numba", None)  # as load() leaves it when numba is not installed
    x = np.ones((3, 4))
    assert dispatch.choose(ops.layer_norm.LayerNorm, (x, x[0], x[0], 1, 1e-5), {}) is cpu.layer_norm.LayerNorm
    assert _numba.missing() == "numba is not installed"
    case = next(c for c in check.CASES if c.fused is layer_norm.LayerNorm)
    assert check.check_case(case, np.float64)["passed"] is None
    assert check.check_numba_adam(np.float64)["note"] == "numba is not installed"


def _python(code, **env):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})


def test_hidden_numba_gives_the_numpy_path(tmp_path):
    """A numba package that fails to import, first on the path: as if numba were not installed."""
    (tmp_path / "numba").mkdir()
    (tmp_path / "numba" / "__init__.py").write_text("raise ImportError('hidden by test_numba.py')\n")
    out = _python("""
        import numpy as np, tinygrad_tf as tg
        from tinygrad_tf import check, dispatch, ops
        x = np.ones((3, 4))
        print(dispatch.choose(ops.layer_norm.LayerNorm, (x, x[0], x[0], 1, 1e-5), {}).__module__)
        rows = check.run_all((np.float64,))
        print(sum(r["passed"] is False for r in rows), sorted({r["note"] for r in rows if r["passed"] is None}))
        tg.set_num_threads(1)
        print(tg.get_num_threads())
        """, PYTHONPATH=str(tmp_path))
    assert out.returncode == 0, out.stderr
    module, failed, threads = out.stdout.split("\n")[:3]
    assert module == "tinygrad_tf.kernels.cpu.layer_norm"
    assert failed.startswith("0 ") and "numba is not installed" in failed
    assert threads == "1"


def test_importing_starts_no_thread_and_does_not_import_numba():
    out = _python("""
        import sys, numpy  # NumPy's BLAS starts its own threads when it loads
        def threads(): return int(open('/proc/self/status').read().split('Threads:')[1].split()[0])
        before = threads()
        import tinygrad_tf
        print('numba' in sys.modules, threads() - before)
        """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "0"]


def test_set_num_threads_sets_numba_and_blas_and_results_do_not_depend_on_it():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before, blas_before = tg.get_num_threads(), threadpoolctl.threadpool_info()
    x = _r(300, 64, scale=2).astype(np.float32)
    try:
        runs = []
        for n in (1, 2):
            tg.set_num_threads(n)
            assert tg.get_num_threads() == min(n, _numba.load().config.NUMBA_NUM_THREADS)
            assert all(p["num_threads"] == n for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas")
            runs.append(_grads(lambda t: F.layer_norm(t, (64,), tg.ones(64), tg.zeros(64)), [x], np.float32, "all"))
        for a, b in zip(*runs):  # the kernels run on the calling thread: the same bits whatever the count
            np.testing.assert_array_equal(a, b)
        with pytest.raises(ValueError):
            tg.set_num_threads(0)
    finally:
        tg.set_num_threads(before)
        threadpoolctl.threadpool_limits(limits={p["prefix"]: p["num_threads"] for p in blas_before})


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("threads", ["serial", "split"])
def test_adam_update_matches_the_textbook_bit_for_bit(dtype, threads, request, monkeypatch):
    """On one thread, and split over two (each element's update is its own: the same bits)."""
    if threads == "split":
        request.getfixturevalue("split")
    else:
        monkeypatch.setattr(_numba, "PARALLEL_FROM", 1 << 62)
    row = check.check_numba_adam(dtype)
    assert row["passed"] and row["worst"] == 0.0, row
    assert (True in adam._update.variants) or threads == "serial"


def test_adam_update_without_weight_decay_and_a_float32_param():
    p = _r(4, 3).astype(np.float32)
    opt = tg.optim.Adam([tg.tensor(p.copy(), requires_grad=True)], lr=0.1, fused=False)
    m, v, q = np.zeros_like(p), np.zeros_like(p), p.copy()
    for step in (1, 2):
        g = _r(4, 3, seed=step).astype(np.float32)
        opt.param_groups[0]["params"][0].grad = tg.tensor(g)
        opt.step()
        adam.update([q], [g], [m], [v], lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0, decoupled=False,
                    step=step)
    np.testing.assert_array_equal(q, opt.param_groups[0]["params"][0].detach().numpy())
    assert q.dtype == np.float32


@pytest.mark.parametrize("cls", [tg.optim.AdamW, tg.optim.Adam])
def test_the_optimizer_takes_the_numba_update_by_default_bit_for_bit_with_fused_false(cls, monkeypatch):
    """AdamW/Adam(fused=None) on the CPU call kernels/numba/adam.update (one call for all params of
    a dtype), equal bit for bit to fused=False; a found_inf from a GradScaler skips the step."""
    calls = []
    real = adam.update
    monkeypatch.setattr(adam, "update", lambda params, *a, **k: calls.append(len(params)) or real(params, *a, **k))
    shapes = [(5, 3), (3,), (2, 4, 2)]
    runs = {}
    for fused in (None, False):
        params = [tg.tensor(_r(*s, seed=i).astype(np.float32), requires_grad=True) for i, s in enumerate(shapes)]
        opt = cls(params, lr=0.05, weight_decay=0.1, fused=fused)
        for step in range(3):
            for i, p in enumerate(params):
                p.grad = tg.tensor(_r(*shapes[i], seed=10 * step + i).astype(np.float32))
            opt.step(found_inf=np.float32(step == 1))  # the second step is skipped
        runs[fused] = [p.detach().numpy() for p in params], opt.state_dict()["state"][0]["step"]
    assert calls == [3, 3]  # fused=None: steps 1 and 3 in one call each; fused=False never
    for a, b in zip(runs[None][0], runs[False][0]):
        np.testing.assert_array_equal(a, b)
    assert runs[None][1] == runs[False][1] == 2
    with kernels.selected("-numba"):  # the NumPy path: the textbook update
        p = tg.tensor(np.ones(2, np.float32), requires_grad=True)
        p.grad = tg.tensor(np.ones(2, np.float32))
        cls([p]).step()
    assert calls == [3, 3]


def test_a_compile_is_announced_once_and_the_cache_is_used(tmp_path):
    code = """
        import numpy as np, tinygrad_tf as tg
        x = tg.tensor(np.arange(6.0) - 3, requires_grad=True)
        x.relu().sum().backward()
        tg.tensor(np.arange(6.0, dtype=np.float32)).relu()
        print(x.grad.numpy().tolist())
        """
    cold = _python(code, NUMBA_CACHE_DIR=str(tmp_path))
    warm = _python(code, NUMBA_CACHE_DIR=str(tmp_path))
    assert cold.returncode == 0 and warm.returncode == 0, cold.stderr + warm.stderr
    assert cold.stdout == warm.stdout == "[0.0, 0.0, 0.0, 0.0, 1.0, 1.0]\n"
    assert cold.stderr.count("compiling CPU kernels") == 1 and cold.stderr.count("\n") == 1, cold.stderr
    assert warm.stderr == ""


ALL = None  # every output and gradient the same bits split and serial
SPLIT_CASES = [  # (fn, arrays, the kernels that must have run their parallel variant, the results of the same bits)
    (lambda x, w, b: F.layer_norm(x, (24,), w, b), [_r(130, 24, scale=3) + 5, _r(24, seed=1), _r(24, seed=2)],
     [layer_norm._forward, layer_norm._backward], ALL),
    (lambda x, y: F.cross_entropy(x, y, label_smoothing=0.1), [_r(70, 65, scale=4), np.arange(70) % 65],
     [cross_entropy._forward], ALL),
    # Linear: the GEMMs' bits are BLAS's, which depend on the blocks (one a thread); the bias
    # gradient's sums are the kernel's own, over the rows in order: results [out, gx, gw, gb].
    (lambda x, w, b: F.linear(x, w, b, activation="relu"), [_r(3, 70, 24), _r(40, 24, seed=1), _r(40, seed=2)],
     [linear._forward, linear._backward], [3]),
    (lambda x, w: F.linear(x, w), [_r(3, 70, 24), _r(41, 24, seed=1)], [linear._forward, linear._backward], []),
    (lambda x: x.relu(), [_r(3, 50, 7)], [relu._forward, relu._backward], ALL),
    (lambda x: F.dropout(x, 0.3), [_r(3, 50, 61)], [dropout._masked], ALL),
    (lambda a, b: a + b, [_r(3, 50, 7), _r(3, 50, 7, seed=1)], [add._add], ALL),
]


@DTYPES
@pytest.mark.parametrize("case", range(len(SPLIT_CASES)),
                         ids=["layer_norm", "cross_entropy", "linear_relu", "linear", "relu", "dropout", "add"])
def test_split_kernels_match_the_textbook_and_their_serial_bits(case, dtype, split, monkeypatch):
    """The parallel variants: the textbook op's results, and the serial kernel's bits where the
    kernel takes its own sums (across rows per fixed chunk of rows, not per thread); 130 and 210
    rows: a partial last chunk."""
    fn, arrays, kernels_split, same_bits = SPLIT_CASES[case]
    _assert_same(fn, arrays, dtype)
    assert all(True in k.variants for k in kernels_split)
    parallel = _grads(fn, arrays, dtype, "all")
    monkeypatch.setattr(_numba, "PARALLEL_FROM", 1 << 62)  # the serial kernels
    serial = _grads(fn, arrays, dtype, "all")
    for i in range(len(parallel)) if same_bits is ALL else same_bits:
        np.testing.assert_array_equal(parallel[i], serial[i])


def test_the_split_threshold_comes_from_the_environment_and_a_bad_one_is_named():
    """Unset: 65536 where SciPy's BLAS lets the GEMMs join numba's pool, else 2^24 (nothing splits)."""
    assert _numba._parallel_from(None, blas=True) == 1 << 16 and _numba._parallel_from(None, blas=False) == 1 << 24
    assert _numba._parallel_from("4096", blas=False) == 4096
    for bad in ("lots", "-1", "1e6"):
        with pytest.raises(ValueError, match=f"TINYGRAD_TF_PARALLEL_FROM must be a count of elements.*{bad!r}"):
            _numba._parallel_from(bad, blas=True)
    run = subprocess.run([sys.executable, "-c", "import tinygrad_tf.kernels.numba._numba as n; print(n.PARALLEL_FROM)"],
                         capture_output=True, text=True, env=dict(os.environ, TINYGRAD_TF_PARALLEL_FROM="65536"))
    assert run.stdout == "65536\n", run.stderr


def test_small_calls_stay_serial_and_read_no_thread_count(monkeypatch):
    """Below the threshold a split kernel runs its serial variant without asking numba its thread
    count (which would start numba's threads)."""
    monkeypatch.setattr(_numba.numba, "get_num_threads", lambda: pytest.fail("asked for the thread count"))
    x = tg.tensor(_r(4, 8))
    F.layer_norm(x, (8,))
    assert layer_norm._forward.variants.get(False) is not None
