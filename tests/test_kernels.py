"""The two layers: every fused op (tinygrad_tf/kernels/) against the textbook op it replaces
(tinygrad_tf/ops/), from the one table in tinygrad_tf/check.py that `python -m tinygrad_tf.check`
runs too; coverage of that table; and what the layers promise each other."""
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_tf as tg
from tinygrad_tf import check, dispatch, kernels, ops
from tinygrad_tf.function import Function
from tinygrad_tf.kernels import opmath
from tinygrad_tf.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("dtype", check.DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("case", check.CASES, ids=[f"{c.fused.__module__.split('.')[-2]}-{c.fused.name}-{c.label}"
                                                   for c in check.CASES])
def test_fused_op_matches_its_textbook_op(case, dtype):
    row = check.check_case(case, dtype)
    if row["passed"] is None:
        pytest.skip(row["note"])
    assert row["passed"], row


@pytest.mark.parametrize("dtype", check.HALF_DTYPES, ids=[d.name for d in check.HALF_DTYPES])
@pytest.mark.parametrize("case", check.half_cases(), ids=[f"{c.fused.name}-{c.label}" for c in check.half_cases()])
def test_16_bit_fused_op_matches_its_textbook_op_in_float32(case, dtype):
    row = check.check_case(case, dtype)
    if row["passed"] is None:
        pytest.skip(row["note"])
    assert row["passed"], row


def test_16_bit_rows_cover_the_products_and_elementwise_kernels():
    assert {c.fused.name for c in check.half_cases()} == {"add", "relu", "dropout", "matmul", "linear", "attention", "cast"}


@pytest.mark.parametrize("dtype", check.DTYPES, ids=["float64", "float32"])
def test_fused_adam_matches_the_textbook_update_bit_for_bit(dtype):
    row = check.check_adam(dtype)
    if row["passed"] is None:
        pytest.skip(row["note"])
    assert row["passed"], row


def _modules(package):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        yield importlib.import_module(info.name)


def _functions_defined_in(package):
    return {obj for module in _modules(package) for obj in vars(module).values()
            if inspect.isclass(obj) and issubclass(obj, Function) and obj.__module__ == module.__name__}


def test_every_fused_op_is_dispatched_and_has_a_parity_case():
    fused = _functions_defined_in(kernels)
    assert fused == set(dispatch.FUSED), "a fused Function that dispatch.py does not know, or the reverse"
    assert fused <= {case.fused for case in check.CASES}, "a fused Function without a parity case in check.py"
    for op in fused:
        assert op.replaces in _functions_defined_in(ops) and op.name in kernels.NAMES, op


def test_textbook_ops_do_not_reach_for_the_fast_layer():
    for path in (ROOT / "tinygrad_tf" / "ops").glob("*.py"):
        assert "kernels" not in path.read_text(), f"{path.name} mentions kernels"


def test_dispatch_picks_the_fused_op_only_when_switched_on():
    x = np.ones((3, 4))
    args = (x, x[0], x[0], 1, 1e-5)
    fused = dispatch.choose(ops.layer_norm.LayerNorm, args, {})
    # Numba's twin where numba is installed (tests/test_numba.py), else the NumPy twin.
    assert fused is (kernels.numba.layer_norm.LayerNorm if kernels.numba._numba.usable() else
                     kernels.cpu.layer_norm.LayerNorm)
    with kernels.selected("-layer_norm"):
        assert dispatch.choose(ops.layer_norm.LayerNorm, args, {}) is ops.layer_norm.LayerNorm
    with kernels.selected("none"):
        x_t = tg.tensor(x, requires_grad=True)
        assert type(tg.nn.functional.layer_norm(x_t, (4,)).grad_fn) is ops.layer_norm.LayerNorm
    assert type(tg.nn.functional.layer_norm(tg.tensor(x, requires_grad=True), (4,)).grad_fn) is fused


def test_kernel_specs():
    with kernels.selected("-adam,-dropout"):
        assert not kernels.enabled("adam") and kernels.enabled("attention")
    with kernels.selected("linear,matmul"):
        assert kernels.enabled("linear") and not kernels.enabled("attention")
    with kernels.selected("none"):
        assert not any(kernels.enabled(n) for n in kernels.NAMES)
    assert all(kernels.enabled(n) for n in kernels.NAMES)
    for bad, message in (("softmaxx", "unknown kernel"), ("linear,-adam", "mixes")):
        with pytest.raises(ValueError, match=message):
            kernels.select(bad)


def test_check_command_prints_its_table():
    out = subprocess.run([sys.executable, "-m", "tinygrad_tf.check", "--dtype", "float64"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "cpu/layer_norm" in out.stdout and "pass" in out.stdout and "FAIL" not in out.stdout


def _rss_after(code):
    """Resident memory (KiB) that stays after `code`, then a 256 MiB NumPy array made, touched and freed."""
    script = ("import numpy as np\n" + code + "\n"
              "def rss(): return int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])\n"
              "before = rss()\na = np.ones(256 << 17)\ndel a\nprint(rss() - before)")
    return int(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                              cwd=ROOT).stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and glibc's malloc")
def test_importing_leaves_the_allocator_alone():
    """glibc returns a freed 256 MiB block to the OS; after tg.backend.keep_freed_memory() (mallopt)
    it keeps it. Importing tinygrad_tf must not change that (an earlier version called mallopt)."""
    assert _rss_after("import tinygrad_tf") < 50_000  # freed: importing us changed nothing
    tuned = _rss_after("import tinygrad_tf; assert tinygrad_tf.backend.keep_freed_memory()")
    assert tuned > 200_000  # the test can tell, and keep_freed_memory() does keep the block


def test_float16_on_the_cpu_goes_to_the_textbook_op_in_float32():
    """NumPy has no BLAS for float16: the CPU's twins built on GEMMs leave it to the textbook op,
    which computes in float32 and rounds once (kernels/opmath.py), as PyTorch does."""
    r = np.random.default_rng(0)
    x, w, b = (r.standard_normal(s).astype(np.float16) for s in [(8, 16), (4, 16), (4,)])
    q = r.standard_normal((1, 2, 5, 4)).astype(np.float16)
    calls = [(ops.linear.Linear, [x, w, b, None]), (ops.attention.Attention, [q, q, q, None, 0.5, 0.0, 0, True])]
    for op, args in calls:
        assert dispatch.choose(op, args, {}) is opmath.in_float32(op), op
    got = F.linear(tg.tensor(x), tg.tensor(w), tg.tensor(b)).numpy()
    want = (x.astype(np.float32) @ w.astype(np.float32).T + b.astype(np.float32)).astype(np.float16)
    assert got.dtype == np.float16 and np.array_equal(got, want)
