"""tinygrad_tf.optim: update rules by hand and against PyTorch, checkpoints, schedules, validation."""
import math

import numpy as np
import pytest

import tinygrad_tf as tg
from tinygrad_tf import Tensor
from tinygrad_tf.optim import SGD, Adam, AdamW, lr_scheduler

P0 = np.array([1.0, -2.0, 0.5])
GRADS = [np.array(g) for g in ([0.5, -1.0, 2.0], [0.1, 0.3, -0.7], [-2.0, 0.05, 1.5], [0.9, -0.4, 0.0])]


def param(values, dtype=tg.float64):
    return tg.tensor(np.array(values, dtype=dtype), requires_grad=True)  # np.array copies


def run_fixed_grads(opt, p, grads=GRADS):
    """Step with a known gradient sequence; return p after each step."""
    out = []
    for g in grads:
        p.grad = Tensor(np.array(g, dtype=p.dtype))
        opt.step()
        out.append(p.data.copy())
    return out


# --- closed form, float64, by hand ------------------------------------------------------
def adam_by_hand(lr, betas, eps, wd, decoupled, amsgrad=False):
    b1, b2 = betas
    p, m, v, vmax, out = P0.copy(), np.zeros(3), np.zeros(3), np.zeros(3), []
    for t, g in enumerate(GRADS, 1):
        if decoupled:
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        denom = np.sqrt(vmax if amsgrad else v) / np.sqrt(1 - b2 ** t) + eps
        p = p - lr / (1 - b1 ** t) * m / denom
        out.append(p)
    return out


@pytest.mark.parametrize("cls,wd,eps,amsgrad", [(Adam, 0.0, 1e-8, False), (Adam, 0.1, 0.1, False),
                                                (AdamW, 0.1, 1e-8, False), (AdamW, 0.3, 0.1, True),
                                                (Adam, 0.0, 1e-3, True)])
def test_adam_closed_form(cls, wd, eps, amsgrad):
    p = param(P0)
    opt = cls([p], lr=0.1, betas=(0.8, 0.95), eps=eps, weight_decay=wd, amsgrad=amsgrad)
    expected = adam_by_hand(0.1, (0.8, 0.95), eps, wd, decoupled=cls is AdamW, amsgrad=amsgrad)
    for got, want in zip(run_fixed_grads(opt, p), expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert opt.state[p]["step"] == len(GRADS)


def sgd_by_hand(lr, momentum=0.0, dampening=0.0, wd=0.0, nesterov=False, maximize=False):
    p, buf, out = P0.copy(), None, []
    for g in GRADS:
        g = (-g if maximize else g) + wd * p
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
        out.append(p)
    return out


@pytest.mark.parametrize("kw", [{}, {"momentum": 0.9}, {"momentum": 0.9, "dampening": 0.3},
                                {"momentum": 0.9, "nesterov": True},
                                {"momentum": 0.5, "wd": 0.1, "nesterov": True},
                                {"wd": 0.2, "maximize": True}])
def test_sgd_closed_form(kw):
    p = param(P0)
    opt = SGD([p], lr=0.1, momentum=kw.get("momentum", 0), dampening=kw.get("dampening", 0),
              weight_decay=kw.get("wd", 0), nesterov=kw.get("nesterov", False),
              maximize=kw.get("maximize", False))
    for got, want in zip(run_fixed_grads(opt, p), sgd_by_hand(0.1, **kw)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert ("momentum_buffer" in opt.state[p]) == bool(kw.get("momentum"))


def test_adamw_without_decay_is_adam():
    a, b = param(P0), param(P0)
    np.testing.assert_array_equal(run_fixed_grads(Adam([a], lr=0.1), a),
                                  run_fixed_grads(AdamW([b], lr=0.1, weight_decay=0), b))


# --- against PyTorch: 20 steps of a tiny linear regression in float64 ---------------------
rng = np.random.default_rng(0)
X, Y, W0, B0 = rng.normal(size=(8, 4)), rng.normal(size=(8, 3)), rng.normal(size=(3, 4)), rng.normal(size=3)


def ours_loss(w, b):
    return ((Tensor(X) @ w.T + b - Tensor(Y)) ** 2).mean()


def trajectory(make_opt, loss_fn, w, b, steps=20):
    opt, out = make_opt(w, b), []
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(w, b).backward()
        opt.step()
        out.append(np.concatenate([w.detach().numpy().ravel(), b.detach().numpy().ravel()]))
    return np.array(out)


TORCH_CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.2)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.8, weight_decay=0.1, nesterov=True)),
    ("SGD", dict(lr=0.1, weight_decay=0.05)),
    ("Adam", dict(lr=0.05)),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.99), weight_decay=0.1)),
    ("Adam", dict(lr=0.05, amsgrad=True)),
    ("Adam", dict(lr=0.05, eps=0.1, weight_decay=0.05, amsgrad=True)),
    ("AdamW", dict(lr=0.05)),
    ("AdamW", dict(lr=0.05, weight_decay=0.3, amsgrad=True)),
]


@pytest.mark.parametrize("name,kw", TORCH_CASES)
def test_matches_torch(name, kw):
    torch = pytest.importorskip("torch")
    groups = lambda w, b: [{"params": [w]}, {"params": [b], "lr": kw["lr"] / 2}]  # noqa: E731
    ours = trajectory(lambda w, b: globals()[name](groups(w, b), **kw), ours_loss, param(W0), param(B0))

    def torch_loss(w, b):
        return ((torch.tensor(X) @ w.T + b - torch.tensor(Y)) ** 2).mean()

    def torch_param(v):
        return torch.tensor(v, dtype=torch.float64, requires_grad=True)

    theirs = trajectory(lambda w, b: getattr(torch.optim, name)(groups(w, b), foreach=False, **kw),
                        torch_loss, torch_param(W0), torch_param(B0))
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    assert np.abs(ours[-1] - ours[0]).max() > 1e-2  # the params did move


def test_lambda_lr_matches_torch():
    torch = pytest.importorskip("torch")
    lambdas = [lambda e: 0.9 ** e, lambda e: 1.0 / (1 + e)]
    ours_opt = SGD([{"params": [param(P0)]}, {"params": [param(P0)], "lr": 0.5}], lr=0.1)
    theirs_opt = torch.optim.SGD([{"params": [torch.zeros(3, requires_grad=True)]},
                                  {"params": [torch.zeros(3, requires_grad=True)], "lr": 0.5}], lr=0.1)
    ours = lr_scheduler.LambdaLR(ours_opt, lambdas)
    theirs = torch.optim.lr_scheduler.LambdaLR(theirs_opt, lambdas)
    for _ in range(8):
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-15)
        theirs_lrs = [g["lr"] for g in theirs_opt.param_groups]
        assert [g["lr"] for g in ours_opt.param_groups] == pytest.approx(theirs_lrs, rel=1e-15)
        ours_opt.step(), theirs_opt.step()
        ours.step(), theirs.step()
    assert ours.last_epoch == theirs.last_epoch == 8


# --- learning-rate schedules -----------------------------------------------------------
def test_cosine_with_warmup_values():
    c = math.sqrt(0.5)
    expected = [0.0, 0.5, 1.0, 0.1 + 0.45 * (1 + c), 0.55, 0.1 + 0.45 * (1 - c), 0.1, 0.1, 0.1]
    got = [lr_scheduler.cosine_with_warmup(s, 1.0, 2, 6, 0.1) for s in range(9)]
    assert got == pytest.approx(expected, rel=1e-14, abs=1e-15)
    opt = SGD([{"params": [param(P0)]}, {"params": [param(P0)], "lr": 2.0}], lr=1.0)
    sched = lr_scheduler.CosineWithWarmup(opt, warmup_steps=2, max_steps=6, min_lr=0.1)
    for step in range(9):
        assert sched.last_epoch == step
        second = lr_scheduler.cosine_with_warmup(step, 2.0, 2, 6, 0.1)
        assert sched.get_last_lr() == pytest.approx([expected[step], second])
        assert opt.param_groups[0]["lr"] == pytest.approx(expected[step])
        sched.step()
    assert [g["initial_lr"] for g in opt.param_groups] == [1.0, 2.0]
    assert lr_scheduler.cosine_with_warmup(0, 3e-4, 0, 10) == 3e-4  # no warmup: starts at base_lr


def test_scheduler_state_dict_round_trip():
    def make():
        opt = AdamW([param(P0)], lr=1.0)
        return opt, lr_scheduler.CosineWithWarmup(opt, warmup_steps=3, max_steps=10, min_lr=0.01)
    opt, sched = make()
    for _ in range(5):
        sched.step()
    sd, opt_sd = sched.state_dict(), opt.state_dict()
    assert "optimizer" not in sd and sd["last_epoch"] == 5
    opt2, sched2 = make()
    opt2.load_state_dict(opt_sd)
    sched2.load_state_dict(sd)
    for _ in range(6):
        sched.step(), sched2.step()
        assert sched2.get_last_lr() == sched.get_last_lr() == [opt2.param_groups[0]["lr"]]
    with pytest.raises(KeyError, match="last_epoch"):
        sched2.load_state_dict({"base_lrs": [1.0]})


def test_scheduler_resume_needs_initial_lr():
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.LambdaLR(SGD([param(P0)], lr=1.0), lambda e: 1.0, last_epoch=4)


@pytest.mark.parametrize("kw,match", [(dict(warmup_steps=5, max_steps=3), "warmup_steps <= max_steps"),
                                      (dict(warmup_steps=-1, max_steps=3), "warmup_steps must be an int"),
                                      (dict(warmup_steps=1, max_steps=2.5), "max_steps must be an int"),
                                      (dict(warmup_steps=0, max_steps=0), "max_steps >= 1"),
                                      (dict(warmup_steps=1, max_steps=3, min_lr=-1.0), "min_lr")])
def test_cosine_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        lr_scheduler.CosineWithWarmup(SGD([param(P0)], lr=1.0), **kw)


def test_scheduler_validation():
    with pytest.raises(TypeError, match="needs an Optimizer"):
        lr_scheduler.CosineWithWarmup(object(), 1, 10)
    with pytest.raises(ValueError, match="expected 1 lr_lambdas"):
        lr_scheduler.LambdaLR(SGD([param(P0)]), [lambda e: 1.0, lambda e: 2.0])
    with pytest.raises(TypeError, match="callable"):
        lr_scheduler.LambdaLR(SGD([param(P0)]), 0.5)
    with pytest.raises(ValueError, match="step must be >= 0"):
        lr_scheduler.cosine_with_warmup(-1, 1.0, 0, 10)


# --- state dicts -----------------------------------------------------------------------
def regression_steps(opt, w, b, n):
    for _ in range(n):
        opt.zero_grad()
        ours_loss(w, b).backward()
        opt.step()


def as_if_from_a_file(sd):
    """What a serializer may hand back: numpy arrays, string keys, lists for tuples."""
    def conv(v):
        if isinstance(v, Tensor):
            return v.numpy().copy()
        if isinstance(v, dict):
            return {str(k): conv(x) for k, x in v.items()}
        return [conv(x) for x in v] if isinstance(v, (list, tuple)) else v
    return conv(sd)


OPTIMIZERS = [lambda ps: SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
              lambda ps: Adam(ps, lr=0.05, weight_decay=0.1, amsgrad=True),
              lambda ps: AdamW([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.01, "betas": (0.8, 0.9)}],
                               lr=0.05)]


@pytest.mark.parametrize("make", OPTIMIZERS)
@pytest.mark.parametrize("via_file", [False, True])
def test_state_dict_round_trip_is_exact(make, via_file):
    w, b = param(W0), param(B0)
    straight = make([w, b])
    regression_steps(straight, w, b, 10)

    w1, b1 = param(W0), param(B0)
    first = make([w1, b1])
    regression_steps(first, w1, b1, 5)
    sd = first.state_dict()
    assert all(isinstance(v, Tensor) for s in sd["state"].values() for k, v in s.items() if k != "step")
    assert sorted(sd["state"]) == [0, 1] and [g["params"] for g in sd["param_groups"]][-1][-1] == 1
    w2, b2 = param(w1.detach().numpy()), param(b1.detach().numpy())
    second = make([w2, b2])
    second.param_groups[0]["lr"] = 123.0  # restored from the state dict
    second.load_state_dict(as_if_from_a_file(sd) if via_file else sd)
    assert [g["lr"] for g in second.param_groups] == [g["lr"] for g in first.param_groups]
    assert all(isinstance(g.get("betas", ()), tuple) for g in second.param_groups)
    regression_steps(second, w2, b2, 5)
    regression_steps(first, w1, b1, 5)  # the loaded state is a copy: the two do not interfere
    np.testing.assert_array_equal(w2.detach().numpy(), w.detach().numpy())
    np.testing.assert_array_equal(b2.detach().numpy(), b.detach().numpy())
    np.testing.assert_array_equal(w1.detach().numpy(), w.detach().numpy())


def test_load_state_dict_casts_to_param_dtype():
    p64 = param(P0)
    opt = Adam([p64], lr=0.1)
    run_fixed_grads(opt, p64)
    p32 = param(P0, tg.float32)
    opt32 = Adam([p32], lr=0.1)
    opt32.load_state_dict(opt.state_dict())
    assert opt32.state[p32]["exp_avg"].dtype == np.float32 and opt32.state[p32]["step"] == len(GRADS)
    assert opt32.state[p32]["exp_avg"] is not opt.state[p64]["exp_avg"]


def test_load_state_dict_errors():
    a, b = param(P0), param(W0)
    opt = Adam([a, b])
    run_fixed_grads(opt, a)
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="has 2 param\\(s\\), but the optimizer's group 0 has 1"):
        Adam([param(P0)]).load_state_dict(sd)
    with pytest.raises(ValueError, match="1 parameter group\\(s\\), but the optimizer has 2"):
        Adam([{"params": [param(P0)]}, {"params": [param(W0)]}]).load_state_dict(sd)
    fresh = Adam([param(W0), param(P0)])  # same counts, shapes swapped
    msg = r"'exp_avg' of param 0 has shape \(3,\), but the param has shape \(3, 4\)"
    with pytest.raises(ValueError, match=msg):
        fresh.load_state_dict(sd)
    assert fresh.state == {}  # nothing half-loaded
    with pytest.raises(ValueError, match="param index 7"):
        Adam([param(P0), param(W0)]).load_state_dict({"state": {7: {}}, "param_groups": sd["param_groups"]})


# --- behaviour -------------------------------------------------------------------------
@pytest.mark.parametrize("make,match", [
    (lambda p: SGD(p, lr=-0.1), "Invalid learning rate: -0.1"),
    (lambda p: SGD(p, momentum=-1), "Invalid momentum value: -1"),
    (lambda p: SGD(p, weight_decay=-1e-3), "Invalid weight_decay value: -0.001"),
    (lambda p: SGD(p, nesterov=True), "Nesterov momentum requires"),
    (lambda p: SGD(p, momentum=0.9, dampening=0.1, nesterov=True), "dampening=0.1"),
    (lambda p: Adam(p, lr=-1.0), "Invalid learning rate: -1.0"),
    (lambda p: Adam(p, betas=(1.0, 0.999)), "beta parameter at index 0: 1.0"),
    (lambda p: Adam(p, betas=(0.9, -0.5)), "beta parameter at index 1: -0.5"),
    (lambda p: AdamW(p, eps=-1e-8), "Invalid epsilon value: -1e-08"),
    (lambda p: AdamW(p, weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
    (lambda p: Adam([{"params": p, "lr": -2.0}]), "Invalid learning rate: -2.0"),  # per group too
    (lambda p: Adam(p, betas=(0.9,)), "pair"),
])
def test_hyperparameter_validation(make, match):
    with pytest.raises(ValueError, match=match):
        make([param(P0)])


def test_param_validation():
    p = param(P0)
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        SGD([])
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD(iter([]))
    with pytest.raises(ValueError, match="empty parameter list \\(param group 1\\)"):
        SGD([{"params": [p]}, {"params": []}])
    with pytest.raises(TypeError, match="param 1 of param group 0 has dtype int64"):
        SGD([p, tg.tensor([1, 2, 3])])
    with pytest.raises(ValueError, match="param 1 of param group 0 does not require grad"):
        SGD([p, tg.tensor([1.0, 2.0])])
    with pytest.raises(TypeError, match="param 0 of param group 0 is a ndarray"):
        SGD([np.zeros(3)])
    with pytest.raises(ValueError, match="param 0 of param group 1 appears more than once"):
        SGD([{"params": [p]}, {"params": [p]}])
    with pytest.raises(ValueError, match="param 1 of param group 0 appears more than once"):
        SGD([p, p])
    with pytest.raises(ValueError, match="non-leaf"):
        SGD([p * 2])
    with pytest.raises(TypeError, match="single Tensor"):
        SGD(p)
    with pytest.raises(TypeError, match="not a set"):
        SGD([{"params": {p}}])


def test_generator_params_and_group_defaults():
    a, b = param(P0), param(P0)
    opt = Adam((t for t in [a, b]), lr=0.1)
    assert [id(p) for p in opt.param_groups[0]["params"]] == [id(a), id(b)]
    opt.add_param_group({"params": param(W0), "betas": (0.5, 0.6)})
    assert opt.param_groups[1]["lr"] == 0.1 and opt.param_groups[1]["betas"] == (0.5, 0.6)
    assert "Parameter Group 1" in repr(opt)


def test_zero_grad_both_modes():
    a, b = param(P0), param(P0)
    shared = np.ones(3)
    a.grad, b.grad = Tensor._wrap(shared), Tensor._wrap(shared)  # backward may share one array
    old_grad = a.grad
    opt = SGD([a, b])
    opt.zero_grad(set_to_none=False)
    assert a.grad is not old_grad and a.grad.data is not b.grad.data
    np.testing.assert_array_equal(a.grad.numpy(), np.zeros(3))
    assert a.grad.dtype == a.dtype
    np.testing.assert_array_equal(shared, np.ones(3))  # zeroed by replacement, never in place
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    opt.zero_grad(set_to_none=False)  # grads that are None stay None
    assert a.grad is None


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1, maximize=True),
                                  lambda ps: Adam(ps, lr=0.1),
                                  lambda ps: Adam(ps, lr=0.1, weight_decay=0.1, amsgrad=True),
                                  lambda ps: AdamW(ps, lr=0.1)])
def test_grads_are_never_written(make):
    a, b = param(P0), param(P0)
    shared = np.array([0.5, -1.0, 2.0])
    a.grad, b.grad = Tensor._wrap(shared), Tensor._wrap(shared)
    opt = make([a, b])
    for _ in range(3):
        opt.step()
    np.testing.assert_array_equal(shared, [0.5, -1.0, 2.0])
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_params_without_grad_are_skipped():
    a, b = param(P0), param(P0)
    opt = Adam([a, b], lr=0.1)
    a.grad = Tensor(np.ones(3))
    opt.step()
    np.testing.assert_array_equal(b.detach().numpy(), P0)
    assert b not in opt.state or opt.state[b] == {}
    assert list(opt.state_dict()["state"]) == [0]
    assert not np.array_equal(a.detach().numpy(), P0)


def test_param_groups_use_their_own_lr():
    a, b = param(P0), param(P0)
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    a.grad, b.grad = Tensor(np.ones(3)), Tensor(np.ones(3))
    opt.step()
    np.testing.assert_allclose(a.detach().numpy(), P0 - 0.1)
    np.testing.assert_allclose(b.detach().numpy(), P0 - 0.5)


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=np.float64(0.1), momentum=0.9,
                                                 weight_decay=np.float64(0.1)),
                                  lambda ps: Adam(ps, lr=np.float64(0.1), weight_decay=0.1, amsgrad=True),
                                  lambda ps: AdamW(ps, lr=np.float64(0.1), betas=(np.float64(0.9), 0.99))])
def test_float32_params_stay_float32_in_place(make):
    p = param(P0, tg.float32)
    data = p.data
    opt = make([p])
    run_fixed_grads(opt, p)
    assert p.data is data and p.dtype == tg.float32  # updated in place
    assert all(v.dtype == np.float32 for v in opt.state[p].values() if isinstance(v, np.ndarray))


def test_step_with_closure():
    w, b = param(W0), param(B0)
    opt = Adam([w, b], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = ours_loss(w, b)
        loss.backward()
        return loss

    with tg.no_grad():  # the closure still builds a graph
        first = opt.step(closure).item()
    assert opt.step(closure).item() < first
