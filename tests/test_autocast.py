"""bfloat16 tensors and tg.autocast, against PyTorch's autocast where torch is installed.

The table below runs each op under autocast in both libraries on the same inputs and compares
the dtype of the result: it is the statement, per op, of which dtype autocast gives. On a GPU
machine the same table runs on "cuda" against torch's CUDA autocast (whose lists differ)."""
import os
import tempfile

import numpy as np
import pytest

import tinygrad_tf as tg
import tinygrad_tf.nn.functional as F
from tinygrad_tf import backend
from tinygrad_tf.tensor import observed

pytest.importorskip("ml_dtypes")
try:
    import torch
except ImportError:  # the comparisons skip; the rest runs
    torch = None

DEVICES = ["cpu"] + (["cuda"] if tg.cuda.is_available() else [])


def _ops(m, F, device, low):
    """name -> a function of one library (tg or torch) returning the op's result; xb is in `low`."""
    r = np.random.default_rng(0)

    def t(*shape):
        return m.tensor(r.standard_normal(shape).astype(np.float32), device=device)
    x, w, b, q = t(4, 8), t(8, 8), t(8), t(1, 2, 4, 8)
    ids = m.tensor(np.array([1, 2, 3, 4]), device=device)
    xb = x.to(low)
    return {
        "matmul": lambda: x @ w, "linear": lambda: F.linear(x, w, b), "linear of float16": lambda: F.linear(x.half(), w, b),
        "matmul of float64": lambda: x.double() @ w.double(),
        "attention": lambda: F.scaled_dot_product_attention(q, q, q, is_causal=True),
        "softmax": lambda: xb.softmax(-1), "log_softmax": lambda: xb.log_softmax(-1),
        "layer_norm": lambda: F.layer_norm(xb, (8,)), "layer_norm float32, affine": lambda: F.layer_norm(x, (8,), w[0], b),
        "cross_entropy": lambda: F.cross_entropy(xb, ids), "mse_loss": lambda: F.mse_loss(xb, xb),
        "l1_loss": lambda: F.l1_loss(xb, xb), "nll_loss": lambda: F.nll_loss(xb, ids),
        "sum": lambda: xb.sum(), "mean": lambda: xb.mean(), "var": lambda: xb.var(), "prod": lambda: xb.prod(),
        "cumsum": lambda: xb.cumsum(0), "logsumexp": lambda: xb.logsumexp(0), "max": lambda: xb.max(),
        "exp": lambda: xb.exp(), "log": lambda: xb.abs().log(), "pow": lambda: xb ** 2, "sqrt": lambda: xb.abs().sqrt(),
        "rsqrt": lambda: xb.abs().rsqrt(), "reciprocal": lambda: xb.reciprocal(), "tan": lambda: xb.tan(), "sinh": lambda: xb.sinh(),
        "log1p": lambda: xb.abs().log1p(), "expm1": lambda: xb.expm1(), "tanh": lambda: xb.tanh(),
        "sigmoid": lambda: xb.sigmoid(), "relu": lambda: xb.relu(), "gelu": lambda: F.gelu(xb),
        "dropout": lambda: F.dropout(xb, 0.5), "low + float32": lambda: xb + x, "low / float32": lambda: xb / x,
        "where": lambda: m.where(x > 0, xb, x), "embedding": lambda: F.embedding(ids, w),
        "cat": lambda: m.cat([xb, x]), "stack": lambda: m.stack([xb, x]),
    }


def _dtype_names(m, F, device, low):
    with m.autocast(device, dtype=low):
        return {name: str(fn().dtype).replace("torch.", "") for name, fn in _ops(m, F, device, low).items()}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("low", ["bfloat16", "float16"])
def test_autocast_dtype_table_matches_torch(device, low):
    if torch is None:
        pytest.skip("needs torch")
    ours = _dtype_names(tg, F, device, getattr(tg, low))
    theirs = _dtype_names(torch, torch.nn.functional, device, getattr(torch, low))
    differ = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs[k]}
    assert not differ, f"(ours, torch's) dtypes differ under autocast({device!r}, {low}): {differ}"


def test_autocast_gradients_come_back_in_each_inputs_dtype():
    x = tg.randn(4, 8, requires_grad=True)
    w = tg.randn(8, 8, requires_grad=True)
    with tg.autocast("cpu", dtype=tg.bfloat16):
        y = x @ w
        assert y.dtype == tg.bfloat16
        loss = F.cross_entropy(y, tg.tensor([0, 1, 2, 3]))
    assert loss.dtype == tg.float32
    loss.backward()
    assert x.grad.dtype == tg.float32 and w.grad.dtype == tg.float32  # master weights stay float32


def test_autocast_off_outside_the_block_nested_and_disabled():
    x = tg.randn(2, 3)
    w = tg.randn(3, 3)
    assert not tg.is_autocast_enabled("cpu")
    with tg.autocast("cpu"):  # torch's default for the CPU: bfloat16
        assert tg.is_autocast_enabled("cpu") and tg.get_autocast_dtype("cpu") == tg.bfloat16
        assert (x @ w).dtype == tg.bfloat16
        with tg.autocast("cpu", enabled=False):
            assert (x @ w).dtype == tg.float32
        with tg.autocast("cuda", dtype=tg.bfloat16):  # another device type: CPU ops unchanged
            assert (x @ w).dtype == tg.bfloat16
        assert (x @ w).dtype == tg.bfloat16
    assert (x @ w).dtype == tg.float32 and not tg.is_autocast_enabled("cpu")


def test_autocast_as_decorator():
    @tg.autocast("cpu", dtype=tg.bfloat16)
    def f(a, b):
        return a @ b
    assert f(tg.randn(2, 2), tg.randn(2, 2)).dtype == tg.bfloat16
    assert (tg.randn(2, 2) @ tg.randn(2, 2)).dtype == tg.float32


def test_autocast_casts_a_weight_once_per_forward_and_again_after_it_changes():
    w = tg.nn.Parameter(tg.randn(8, 8))
    x = tg.randn(4, 8)
    casts = []
    with _count_casts(casts):
        with tg.autocast("cpu", dtype=tg.bfloat16):
            y = x @ w + x @ w
            with tg.no_grad():
                w.mul_(2.0)
            z = x @ w
    # x is no weight: cast at each use (3); w: once for the two uses, once after its write
    assert casts.count("Cast") == 3 + 2
    assert np.allclose((z.float() - 2 * (y / 2).float()).detach().numpy(), 0, atol=0.1)


def _count_casts(casts):
    class Counter:
        def before(self, fn, raw, kwargs):
            casts.append(type(fn).__name__)

        def after(self, fn, out):
            pass
    return observed(Counter())


def test_autocast_argument_errors():
    with pytest.raises(ValueError, match="device_type must be 'cuda' or 'cpu'"):
        tg.autocast("tpu")
    with pytest.raises(ValueError, match="bfloat16 or tg.float16"):
        tg.autocast("cpu", dtype=tg.float32)
    with pytest.raises(TypeError, match="enabled must be a bool"):
        tg.autocast("cpu", enabled="yes")


def test_bfloat16_tensors_cast_print_and_promote():
    a = tg.tensor([1.0, 2.5, -3.0]).bfloat16()
    assert a.dtype == tg.bfloat16 and a.to("bfloat16").dtype == tg.bfloat16
    assert "dtype=bfloat16" in repr(a)
    assert (a * 2).dtype == tg.bfloat16 and (a * 0.5).dtype == tg.bfloat16  # ml_dtypes alone gives float32
    assert (a + a.float()).dtype == tg.float32 and (a + a.half()).dtype == tg.float32  # as torch
    assert a.float().tolist() == [1.0, 2.5, -3.0]
    assert tg.zeros(2, dtype=tg.bfloat16).dtype == tg.bfloat16
    b = tg.tensor([1.0, 2.0], requires_grad=True)
    (b.bfloat16() * 3).sum().backward()
    assert b.grad.dtype == tg.float32 and b.grad.tolist() == [3.0, 3.0]


def test_bfloat16_ops_compute_in_float32_and_round_once():
    """A bfloat16 op equals the float32 op on the same values, rounded to bfloat16 once (as torch's)."""
    r = np.random.default_rng(1)
    x32 = r.standard_normal((5, 7)).astype(np.float32)
    xb = tg.tensor(x32).bfloat16()
    exact = tg.tensor(xb.float().numpy())
    for name, fn in (("exp", lambda t: t.exp()), ("softmax", lambda t: t.softmax(-1)), ("gelu", lambda t: F.gelu(t)),
                     ("matmul", lambda t: t @ t.T), ("sigmoid", lambda t: t.sigmoid())):
        got = fn(xb)
        assert got.dtype == tg.bfloat16, name
        want = fn(exact).bfloat16()
        assert np.array_equal(got.numpy().view(np.uint16), want.numpy().view(np.uint16)), name


def test_bfloat16_gradcheck_through_a_cast():
    """The graph through bfloat16 ops gives the float32 op's gradient to bfloat16 precision."""
    r = np.random.default_rng(2)
    x = tg.tensor(r.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    w = tg.tensor(r.standard_normal((4, 4)).astype(np.float32), requires_grad=True)
    (x.bfloat16() @ w.bfloat16()).softmax(-1).float().sum().backward()
    gx, gw = x.grad.numpy(), w.grad.numpy()
    x.grad = w.grad = None
    (x @ w).softmax(-1).sum().backward()
    assert np.allclose(gx, x.grad.numpy(), atol=3e-2) and np.allclose(gw, w.grad.numpy(), atol=3e-2)


def test_bfloat16_save_load_round_trip_bits_and_ties():
    m = tg.nn.Linear(3, 2).to(tg.bfloat16)
    sd = m.state_dict()
    sd["tied"] = sd["weight"]
    sd["array"] = np.arange(4, dtype=np.float32).astype(tg.bfloat16)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "bf16.npz")
        tg.save(sd, path)
        back = tg.load(path)
    assert back["weight"].dtype == tg.bfloat16 and back["tied"] is back["weight"]
    assert np.array_equal(back["weight"].numpy().view(np.uint16), m.weight.detach().numpy().view(np.uint16))
    assert back["array"].dtype == tg.bfloat16 and back["array"].astype(np.float32).tolist() == [0, 1, 2, 3]


def test_bfloat16_needs_ml_dtypes_says_so(monkeypatch):
    monkeypatch.setattr(backend, "_BFLOAT16", None)
    monkeypatch.setattr(backend, "DTYPES", {k: v for k, v in backend.DTYPES.items() if k != "bfloat16"})
    with pytest.raises(ModuleNotFoundError, match="pip install ml_dtypes"):
        tg.bfloat16
    with pytest.raises(ModuleNotFoundError, match="ml_dtypes"):
        tg.zeros(2, dtype="bfloat16")


def test_a_switched_off_autocast_needs_no_bfloat16(monkeypatch):
    """autocast("cpu", enabled=False) (a float32 run's context, as in examples/shakespeare.py) runs
    where ml_dtypes is missing; switched on, the CPU's default dtype, bfloat16, still asks for it."""
    monkeypatch.setattr(backend, "_BFLOAT16", None)
    monkeypatch.setattr(backend, "DTYPES", {k: v for k, v in backend.DTYPES.items() if k != "bfloat16"})
    x = tg.ones(2, 3)
    with tg.autocast("cpu", enabled=False):
        assert (x @ x.T).dtype == tg.float32
    with pytest.raises(ModuleNotFoundError, match="pip install ml_dtypes"):
        tg.autocast("cpu")
    with pytest.raises(ValueError, match="must be tg.bfloat16 or tg.float16, got float64"):
        tg.autocast("cpu", dtype=tg.float64)  # not taken for the missing bfloat16


def test_bf16_autocast_training_step_matches_torch():
    """10 AdamW steps of a small GPT-like MLP under bf16 autocast, ours and torch's from the same
    weights: losses and parameters agree to bfloat16's precision (8 bits: ~4e-3 relative per
    rounding; the two libraries round in different places, e.g. torch's CPU layer norm)."""
    if torch is None:
        pytest.skip("needs torch")
    r = np.random.default_rng(3)
    shapes = {"w1": (32, 16), "b1": (32,), "w2": (10, 32), "b2": (10,)}
    init = {k: (r.standard_normal(s) * 0.3).astype(np.float32) for k, s in shapes.items()}
    x = r.standard_normal((64, 16)).astype(np.float32)
    y = r.integers(0, 10, 64)

    def run(m, F, params, opt):
        losses = []
        for _ in range(10):
            with m.autocast("cpu", dtype=m.bfloat16):
                h = F.relu(F.linear(m.tensor(x), params["w1"], params["b1"]))
                loss = F.cross_entropy(F.linear(h, params["w2"], params["b2"]), m.tensor(y))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses, {k: p.detach().numpy() for k, p in params.items()}

    ours_p = {k: tg.nn.Parameter(tg.tensor(v)) for k, v in init.items()}
    theirs_p = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in init.items()}
    ours = run(tg, F, ours_p, tg.optim.AdamW(ours_p.values(), lr=1e-2))
    theirs = run(torch, torch.nn.functional, theirs_p, torch.optim.AdamW(theirs_p.values(), lr=1e-2))
    assert np.allclose(ours[0], theirs[0], rtol=2e-2), (ours[0], theirs[0])
    for k in init:
        moved = np.abs(theirs[1][k] - init[k]).max()
        assert np.abs(ours[1][k] - theirs[1][k]).max() <= 0.1 * moved, k
