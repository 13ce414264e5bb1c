"""tg.amp.GradScaler against torch.amp.GradScaler("cpu"): the scale over steps with overflows,
growth and backoff, skipped steps, AdamW through the scaler, checkpoints, enabled=False, the
misuse errors; and that unscale_/update never read a value back to the host. The fused GPU path
is in test_cuda_grad_scaler.py; here its host-side bookkeeping runs with the kernel emulated."""
import numpy as np
import pytest

import tinygrad_tf as tg
from tinygrad_tf import Tensor
from tinygrad_tf.amp import GradScaler
from tinygrad_tf.kernels.cuda import adam as cuda_adam
from tinygrad_tf.optim import SGD, Adam, AdamW

try:
    import torch
except ImportError:  # pragma: no cover - torch is the oracle, installed in the dev environment
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch (the oracle) is not installed")

SHAPES = [(4, 3), (3,), (2, 2, 2)]
rng = np.random.default_rng(0)
INITS = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
DIRECTIONS = [[rng.standard_normal(s).astype(np.float32) for s in SHAPES] for _ in range(16)]


def poison(lib, grad, value):
    """Write value into the first element of a gradient, in place, as an overflow would."""
    if lib is tg:
        grad.data.reshape(-1)[0] = value
    else:
        grad.view(-1)[0] = value


def state_of(opt):
    """Per param, in order: its state as {name: step number or array}, or None without state."""
    saved = opt.state_dict()["state"]
    return [{k: float(v) if k == "step" else np.array(v.numpy()) for k, v in saved[i].items()} if saved.get(i) else None
            for i in range(len(SHAPES))]


def lockstep(lib, make_opt, steps, bad=None, **scaler_kw):
    """Train the same float32 params with the same gradients (direction t times the scale, through
    scale(loss).backward()) in `lib`; bad = {step: value} poisons a gradient on that step.
    Returns one record per step."""
    bad = bad or {}
    params = [lib.tensor(a.copy(), requires_grad=True) for a in INITS]
    opt = make_opt(lib, params)
    scaler = lib.amp.GradScaler("cpu", **scaler_kw)
    records = []
    for t in range(steps):
        opt.zero_grad()
        loss = sum((p * lib.tensor(w)).sum() for p, w in zip(params, DIRECTIONS[t]))
        scaled = scaler.scale(loss)
        scaled.backward()
        if t in bad:
            poison(lib, params[t % len(params)].grad, bad[t])
        returned = scaler.step(opt)
        scaler.update()
        records.append(dict(scaled=float(scaled.item()), scale=scaler.get_scale(),
                            tracker=scaler._get_growth_tracker(), returned=returned,
                            params=[np.array(p.detach().numpy()) for p in params], state=state_of(opt),
                            scaler_state=scaler.state_dict()))
    return records


def adamw(lib, params):
    return lib.optim.AdamW(params, lr=1e-2) if lib is tg else torch.optim.AdamW(params, lr=1e-2, foreach=False)


def assert_same_run(ours, theirs, rtol=1e-6):
    for t, (a, b) in enumerate(zip(ours, theirs)):
        assert a["scale"] == b["scale"] and a["tracker"] == b["tracker"], f"step {t}"
        assert a["scaled"] == pytest.approx(b["scaled"], rel=1e-6), f"step {t}"
        assert a["returned"] == b["returned"] and a["scaler_state"] == b["scaler_state"], f"step {t}"
        for pa, pb in zip(a["params"], b["params"]):
            np.testing.assert_allclose(pa, pb, rtol=rtol, atol=1e-7, err_msg=f"step {t}")
        for sa, sb in zip(a["state"], b["state"]):
            assert (sa is None) == (sb is None) and (sa is None or sorted(sa) == sorted(sb)), f"step {t}"
            for name in sa or ():
                if name == "step":
                    assert sa[name] == sb[name], f"step {t}: step count"
                else:  # torch's moments round differently (lerp), hence the atol
                    np.testing.assert_allclose(sa[name], sb[name], rtol=rtol, atol=1e-7, err_msg=f"step {t}: {name}")


# --- against torch ------------------------------------------------------------------------------
@needs_torch
def test_scale_over_steps_with_overflows_matches_torch():
    """Overflows first (skipped before any state exists), growth after the interval, backoff, NaN."""
    bad = {0: np.inf, 1: -np.inf, 5: np.nan, 9: np.inf, 10: np.inf}
    kw = dict(init_scale=2.0 ** 10, growth_interval=3)
    ours, theirs = lockstep(tg, adamw, 14, bad, **kw), lockstep(torch, adamw, 14, bad, **kw)
    assert_same_run(ours, theirs)
    scales = [r["scale"] for r in ours]
    assert scales == [512, 256, 256, 256, 512, 256, 256, 256, 512, 256, 128, 128, 128, 256]
    assert [r["tracker"] for r in ours] == [0, 0, 1, 2, 0, 0, 1, 2, 0, 0, 0, 1, 2, 0]


@needs_torch
def test_adamw_ten_steps_match_torch_param_by_param():
    ours, theirs = lockstep(tg, adamw, 10, {4: np.inf}), lockstep(torch, adamw, 10, {4: np.inf})
    assert_same_run(ours, theirs, rtol=1e-6)
    assert ours[-1]["state"][0]["step"] == 9  # ten steps, one skipped
    assert np.abs(ours[-1]["params"][0] - INITS[0]).max() > 1e-2  # the params did move


@needs_torch
@pytest.mark.parametrize("make_opt", [
    lambda lib, ps: lib.optim.Adam(ps, lr=0.05, weight_decay=0.1, amsgrad=True),
    lambda lib, ps: lib.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),  # reads found_inf back
], ids=["Adam-amsgrad", "SGD"])
def test_other_optimizers_match_torch(make_opt):
    bad = {2: np.nan, 3: np.inf}
    kw = dict(growth_interval=2)
    ours, theirs = lockstep(tg, make_opt, 8, bad, **kw), lockstep(torch, make_opt, 8, bad, **kw)
    assert_same_run(ours, theirs)


@needs_torch
def test_skipped_step_changes_nothing():
    ours, theirs = lockstep(tg, adamw, 5, {3: np.inf}), lockstep(torch, adamw, 5, {3: np.inf})
    assert_same_run(ours, theirs)
    before, after = ours[2], ours[3]
    for a, b in zip(before["params"], after["params"]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(before["state"], after["state"]):
        assert a["step"] == b["step"] == 3
        np.testing.assert_array_equal(a["exp_avg"], b["exp_avg"])
        np.testing.assert_array_equal(a["exp_avg_sq"], b["exp_avg_sq"])
    assert all(np.isfinite(p).all() for r in ours for p in r["params"])


@needs_torch
def test_first_steps_skipped_leave_no_state():
    ours, theirs = lockstep(tg, adamw, 2, {0: np.inf, 1: np.nan}), lockstep(torch, adamw, 2, {0: np.inf, 1: np.nan})
    assert_same_run(ours, theirs)
    assert ours[-1]["state"] == [None, None, None]
    for p, p0 in zip(ours[-1]["params"], INITS):
        np.testing.assert_array_equal(p, p0)


@needs_torch
def test_unscale_then_clip_then_step_matches_torch():
    results = {}
    for lib in (tg, torch):
        params = [lib.tensor(a.copy(), requires_grad=True) for a in INITS]
        opt, scaler = adamw(lib, params), lib.amp.GradScaler("cpu")
        scaler.scale(sum((p * lib.tensor(w)).sum() for p, w in zip(params, DIRECTIONS[0]))).backward()
        scaler.unscale_(opt)
        grads = [np.array(p.grad.numpy()) for p in params]
        lib.nn.utils.clip_grad_norm_(params, 0.5)
        scaler.step(opt)
        scaler.update()
        results[lib.__name__] = grads, [np.array(p.detach().numpy()) for p in params]
    for a, b in zip(results["tinygrad_tf"][0], results["torch"][0]):
        np.testing.assert_array_equal(a, b)  # unscaled in place: the directions exactly
    for a, b in zip(results["tinygrad_tf"][1], results["torch"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@needs_torch
def test_two_optimizers_one_overflowing():
    """Each optimizer skips on its own found_inf; update backs off if any found one."""
    out = {}
    for lib in (tg, torch):
        params = [lib.tensor(a.copy(), requires_grad=True) for a in INITS]
        opts = [adamw(lib, params[:1]), adamw(lib, params[1:])]
        scaler = lib.amp.GradScaler("cpu", growth_interval=1)
        record = []
        for t in range(3):
            for o in opts:
                o.zero_grad()
            scaler.scale(sum((p * lib.tensor(w)).sum() for p, w in zip(params, DIRECTIONS[t]))).backward()
            if t == 1:
                poison(lib, params[1].grad, np.inf)
            for o in opts:
                scaler.step(o)
            scaler.update()
            record.append((scaler.get_scale(), [np.array(p.detach().numpy()) for p in params]))
        out[lib.__name__] = record
    for (sa, pa), (sb, pb) in zip(out["tinygrad_tf"], out["torch"]):
        assert sa == sb
        for a, b in zip(pa, pb):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert [s for s, _ in out["tinygrad_tf"]] == [2.0 ** 17, 2.0 ** 16, 2.0 ** 17]


@needs_torch
@pytest.mark.parametrize("scale", [2.0 ** 127, 3.0, 65536.0])
@pytest.mark.parametrize("tracker", [0, 2, 5])
@pytest.mark.parametrize("found_inf", [0.0, 2.0])
@pytest.mark.parametrize("factors", [(2.0, 0.5), (1.1, 0.3)])
def test_scale_update_rule_matches_torchs_op(scale, tracker, found_inf, factors):
    """The rule itself against torch._amp_update_scale_: growth past float32's range is refused,
    odd factors round as torch's float64 product, the interval is hit exactly (tracker 2 -> 3)."""
    from tinygrad_tf.amp.grad_scaler import _update_scale_
    ours = (np.array(scale, np.float32), np.array(tracker, np.int32))
    theirs = (torch.tensor(scale, dtype=torch.float32), torch.tensor(tracker, dtype=torch.int32))
    _update_scale_(*ours, np.array(found_inf, np.float32), *factors, 3)
    torch._amp_update_scale_(*theirs, torch.tensor(found_inf), *factors, 3)
    assert (ours[0].item(), ours[1].item()) == (theirs[0].item(), theirs[1].item())


# --- update(new_scale), scale(), getters, checkpoints ------------------------------------------
def test_update_with_new_scale():
    p = tg.tensor(INITS[1].copy(), requires_grad=True)
    scaler = GradScaler("cpu")
    scaler.scale(p.sum()).backward()
    scaler.update(1024.0)
    assert scaler.get_scale() == 1024.0
    scaler.update(tg.tensor([8.0]))
    assert scaler.get_scale() == 8.0 and scaler._scale.dtype == np.float32
    for bad in (tg.tensor([1.0, 2.0]), tg.tensor([1.0], requires_grad=True), np.array(2.0)):
        with pytest.raises(AssertionError, match="new_scale should be a float"):
            scaler.update(bad)


def test_scale_nested_outputs():
    scaler = GradScaler("cpu", init_scale=4.0)
    a, b = tg.tensor([1.0, 2.0]), tg.tensor([3.0], dtype=tg.float16)
    out = scaler.scale([a, (b, [a])])
    assert type(out) is list and type(out[1]) is tuple and type(out[1][1]) is list
    np.testing.assert_array_equal(out[0].numpy(), [4.0, 8.0])
    assert out[1][0].dtype == tg.float16 and out[1][0].item() == 12.0  # a 0-d float32 scale keeps float16
    assert all(isinstance(x, Tensor) for x in scaler.scale(iter([a, b])))  # other iterables: an iterator, as torch
    assert scaler._scale.shape == () and scaler._growth_tracker.dtype == np.int32
    with pytest.raises(ValueError, match="outputs must be a Tensor or an iterable of Tensors"):
        scaler.scale(3.0)


def test_getters_setters_and_defaults():
    scaler = GradScaler("cpu")
    assert scaler.is_enabled() and scaler.get_scale() == 2.0 ** 16 and scaler._get_growth_tracker() == 0
    assert (scaler.get_growth_factor(), scaler.get_backoff_factor(), scaler.get_growth_interval()) == (2.0, 0.5, 2000)
    scaler.set_growth_factor(3.0)
    scaler.set_backoff_factor(0.25)
    scaler.set_growth_interval(7)
    assert (scaler.get_growth_factor(), scaler.get_backoff_factor(), scaler.get_growth_interval()) == (3.0, 0.25, 7)


@needs_torch
@pytest.mark.parametrize("via_file", [False, True])
def test_state_dict_round_trip(tmp_path, via_file):
    ours = lockstep(tg, adamw, 7, {1: np.inf}, growth_interval=3)[-1]["scaler_state"]
    theirs = lockstep(torch, adamw, 7, {1: np.inf}, growth_interval=3)[-1]["scaler_state"]
    assert ours == theirs and sorted(ours) == ["_growth_tracker", "backoff_factor", "growth_factor",
                                               "growth_interval", "scale"]
    if via_file:
        tg.save({"scaler": ours}, tmp_path / "ckpt")
        ours = tg.load(tmp_path / "ckpt")["scaler"]
    fresh = GradScaler("cpu")  # before its first scale(): the values wait for it
    fresh.load_state_dict(ours)
    assert fresh.state_dict() == theirs
    fresh.scale(tg.tensor(1.0))
    assert fresh._scale.item() == theirs["scale"] and fresh._growth_tracker.item() == theirs["_growth_tracker"]
    used = GradScaler("cpu")  # after: written in place
    used.scale(tg.tensor(1.0))
    scale_array = used._scale
    used.load_state_dict(ours)
    assert used.state_dict() == theirs and used._scale is scale_array


def test_optimizer_checkpoint_after_skips_through_a_file(tmp_path):
    p = tg.tensor(INITS[0].copy(), requires_grad=True)
    opt, scaler = AdamW([p], lr=1e-2), GradScaler("cpu")
    for t in range(4):
        opt.zero_grad()
        scaler.scale((p * tg.tensor(DIRECTIONS[t][0])).sum()).backward()
        if t == 1:
            poison(tg, p.grad, np.inf)
        scaler.step(opt)
        scaler.update()
    tg.save({"opt": opt.state_dict(), "scaler": scaler.state_dict()}, tmp_path / "ckpt")
    loaded = tg.load(tmp_path / "ckpt")
    assert loaded["opt"]["state"][0]["step"] == 3 and loaded["scaler"]["scale"] == 2.0 ** 15


# --- enabled=False, and the default device without a GPU -------------------------------------------
def test_disabled_is_a_pass_through():
    p = tg.tensor(INITS[1].copy(), requires_grad=True)
    opt = SGD([p], lr=0.1)
    scaler = GradScaler("cpu", enabled=False, growth_factor=0.5)  # not validated when disabled, as torch
    loss = p.sum()
    assert scaler.scale(loss) is loss and scaler.scale([loss]) == [loss]
    loss.backward()
    scaler.unscale_(opt)
    np.testing.assert_array_equal(p.grad.numpy(), np.ones(3))
    assert scaler.step(opt, closure=lambda: 7.0) == 7.0  # a closure passes through too
    scaler.update()
    scaler.load_state_dict({})
    assert not scaler.is_enabled() and scaler.get_scale() == 1.0 and scaler._get_growth_tracker() == 0
    assert scaler.state_dict() == {} and scaler._scale is None
    np.testing.assert_allclose(p.detach().numpy(), INITS[1] - 0.1)


@pytest.mark.skipif(tg.cuda.is_available(), reason="a GPU is visible")
def test_default_cuda_device_without_a_gpu_disables_with_a_warning():
    with pytest.warns(UserWarning, match="CUDA is not available.  Disabling."):
        scaler = GradScaler()
    assert not scaler.is_enabled()


# --- misuse: the same exception and message as torch -----------------------------------------------
def _misuse(lib, name):
    p = lib.tensor(INITS[1].copy(), requires_grad=True)
    opt = lib.optim.SGD([p], lr=0.1)
    scaler = lib.amp.GradScaler("cpu")

    def scaled_backward():
        scaler.scale(p.sum()).backward()

    if name == "step without scale":
        scaler.step(opt)
    elif name == "unscale_ without scale":
        scaler.unscale_(opt)
    elif name == "update without scale":
        scaler.update()
    elif name == "unscale_ twice":
        scaled_backward()
        scaler.unscale_(opt)
        scaler.unscale_(opt)
    elif name == "unscale_ after step":
        scaled_backward()
        scaler.step(opt)
        scaler.unscale_(opt)
    elif name == "step twice":
        scaled_backward()
        scaler.step(opt)
        scaler.step(opt)
    elif name == "update without step":
        scaled_backward()
        scaler.update()
    elif name == "step without grads":
        scaler.scale(p.sum())
        scaler.step(opt)
    elif name == "closure":
        scaled_backward()
        scaler.step(opt, closure=lambda: 0.0)
    elif name == "float16 grads":
        q = lib.tensor(INITS[1].copy(), dtype=lib.float16, requires_grad=True)
        scaler.scale(q.sum()).backward()
        scaler.unscale_(lib.optim.SGD([q], lr=0.1))
    elif name == "growth factor":
        lib.amp.GradScaler("cpu", growth_factor=1.0)
    elif name == "backoff factor":
        lib.amp.GradScaler("cpu", backoff_factor=1.0)
    elif name == "empty state dict":
        scaler.load_state_dict({})
    elif name == "scale a number":
        scaler.scale(2.0)


MISUSES = ["step without scale", "unscale_ without scale", "update without scale", "unscale_ twice",
           "unscale_ after step", "step twice", "update without step", "step without grads", "closure",
           "float16 grads", "growth factor", "backoff factor", "empty state dict", "scale a number"]


@needs_torch
@pytest.mark.filterwarnings("ignore:overflow encountered")  # float16 grads of a 2**16 scale
@pytest.mark.parametrize("name", MISUSES)
def test_misuse_raises_as_torch(name):
    with pytest.raises(Exception) as theirs:
        _misuse(torch, name)
    with pytest.raises(type(theirs.value)) as ours:
        _misuse(tg, name)
    assert str(ours.value) == str(theirs.value)


def test_a_new_iteration_after_update():
    p = tg.tensor(INITS[1].copy(), requires_grad=True)
    opt, scaler = SGD([p], lr=0.1), GradScaler("cpu")
    for _ in range(3):  # unscale_, step, update: allowed again each iteration
        opt.zero_grad()
        scaler.scale(p.sum()).backward()
        scaler.unscale_(opt)
        scaler.step(opt)
        scaler.update()
    np.testing.assert_allclose(p.detach().numpy(), INITS[1] - 0.3, rtol=1e-6)


# --- no read back to the host ---------------------------------------------------------------------
class NoReadback(np.ndarray):
    """A NumPy array that refuses whatever would read a GPU array back to the host."""

    def _refuse(self, *args, **kwargs):
        raise AssertionError("read back to the host")

    __bool__ = __float__ = __int__ = __index__ = item = tolist = _refuse


class RecordsFoundInf(SGD):
    """An optimizer whose step takes found_inf, as Adam's: the scaler must hand it over unread."""

    def step(self, closure=None, *, found_inf=None):
        self.found_inf = found_inf


def test_unscale_step_update_read_nothing_back():
    p = tg.tensor(INITS[0].copy(), requires_grad=True)
    q = tg.tensor(INITS[1].copy(), requires_grad=True)
    opts = [RecordsFoundInf([p], lr=0.1), RecordsFoundInf([q], lr=0.1)]
    scaler = GradScaler("cpu", init_scale=8.0, growth_interval=2)

    def iteration(bad):
        for o in opts:
            o.zero_grad()
        scaler.scale((p * 2).sum() + q.sum()).backward()
        if bad:
            poison(tg, q.grad, np.nan)
        scaler.unscale_(opts[0])
        for o in opts:
            scaler.step(o)  # unscale_s the second one itself
        scaler.update()

    iteration(False)  # makes the device arrays, then they refuse to be read
    guarded = dict(_scale=scaler._scale, _growth_tracker=scaler._growth_tracker, _inv_scale=scaler._inv_scale)
    for name, array in guarded.items():
        setattr(scaler, name, array.view(NoReadback))
    for o in opts:
        scaler._found_infs[o] = scaler._found_infs[o].view(NoReadback)
    seen = []
    for bad in (False, True, False, False):
        iteration(bad)
        assert all(o.found_inf is scaler._found_infs[o] for o in opts)
        seen.append((float(np.asarray(guarded["_scale"])), int(np.asarray(guarded["_growth_tracker"])),
                     [float(np.asarray(o.found_inf)) for o in opts]))
    assert seen == [(16.0, 0, [0.0, 0.0]), (8.0, 0, [0.0, 1.0]), (8.0, 1, [0.0, 0.0]), (16.0, 0, [0.0, 0.0])]
    np.testing.assert_array_equal(p.grad.numpy(), np.full(p.shape, 2.0))  # unscaled in place
    with pytest.raises(AssertionError, match="read back"):
        scaler.get_scale()  # the one place that does read it, by design


# --- Adam's found_inf, both paths ---------------------------------------------------------------------
def test_adam_step_with_found_inf_on_the_textbook_path():
    p = tg.tensor(INITS[0].copy(), requires_grad=True)
    opt = Adam([p], lr=0.1)
    p.grad = Tensor(DIRECTIONS[0][0])
    opt.step(found_inf=np.ones((), np.float32))
    assert opt.state[p] == {} and opt.state_dict()["state"] == {}
    np.testing.assert_array_equal(p.detach().numpy(), INITS[0])
    opt.step(found_inf=np.zeros((), np.float32))
    assert opt.state[p]["step"] == 1
    moved = p.detach().numpy().copy()
    opt.step(found_inf=np.array(1.0, np.float32))
    assert opt.state[p]["step"] == 1
    np.testing.assert_array_equal(p.detach().numpy(), moved)


def _emulated_kernel(params, grads, exp_avgs, exp_avg_sqs, *, lr, beta1, beta2, eps, weight_decay, decoupled,
                     step, found_inf=None, skipped=None):
    """kernels/cuda/adam.update's contract in NumPy: skip on found_inf and count it; else take
    step - skipped as the step (with Python's ** here, so it matches the textbook exactly)."""
    skipped = skipped or [np.zeros((), np.int32)] * len(params)
    for p, g, m, v, k in zip(params, grads, exp_avgs, exp_avg_sqs, skipped):
        if found_inf is not None and found_inf != 0:
            k += 1
            continue
        t = step - int(k)
        if decoupled and weight_decay:
            p *= 1 - lr * weight_decay
        elif weight_decay:
            g = g + weight_decay * p
        m[...] = beta1 * m + (1 - beta1) * g
        v[...] = beta2 * v + (1 - beta2) * (g * g)
        p -= lr / (1 - beta1 ** t) * (m / (np.sqrt(v) / (1 - beta2 ** t) ** 0.5 + eps))


@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_fused_bookkeeping_with_the_kernel_emulated(monkeypatch, cls):
    """The fused path's host side (launch count in "step", skips counted by the kernel in
    "skipped", state_dict reporting the difference, the fold when the textbook path takes over)
    against the textbook path, with the same overflow pattern."""
    bad = {0, 3, 4, 7}

    def run(fused):
        params = [tg.tensor(a.copy(), requires_grad=True) for a in INITS]
        opt, scaler = cls(params, lr=1e-2, weight_decay=0.1), GradScaler("cpu", growth_interval=2)
        for t in range(10):
            if fused and t == 8:  # the fused kernel switched off mid-run: the textbook takes over
                monkeypatch.setattr(cuda_adam, "supports", lambda *arrays: False)
            opt.zero_grad()
            scaler.scale(sum((p * tg.tensor(w)).sum() for p, w in zip(params, DIRECTIONS[t]))).backward()
            if t in bad:
                poison(tg, params[t % 3].grad, np.inf)
            scaler.step(opt)
            scaler.update()
            if fused and t == 5:
                assert opt.state[params[0]]["step"] == 6 and int(opt.state[params[0]]["skipped"]) == 3
                assert opt.state_dict()["state"][0]["step"] == 3 and "skipped" not in opt.state_dict()["state"][0]
        return params, opt

    textbook_params, textbook = run(False)
    monkeypatch.setattr(cuda_adam, "supports", lambda *arrays: True)
    monkeypatch.setattr(cuda_adam, "update", _emulated_kernel)
    fused_params, fused = run(True)
    for a, b in zip(fused_params, textbook_params):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-6, atol=1e-7)
    assert [s["step"] for s in fused.state.values()] == [s["step"] for s in textbook.state.values()] == [6, 6, 6]
    assert all("skipped" not in s for s in fused.state.values())
