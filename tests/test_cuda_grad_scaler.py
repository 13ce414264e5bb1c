"""GradScaler on the GPU: fused AdamW skipping on the GPU (no read back) gives the textbook CPU
result for the same overflows, with the exact step count; and unscale_ + update, captured in a
CUDA graph, replay right (the scale halves on an inf and grows after the interval).
Skipped where no GPU is visible; the CPU side is tests/test_grad_scaler.py."""
import numpy as np
import pytest

import tinygrad_tf as tg

if not tg.cuda.is_available():
    pytest.skip("no CUDA GPU visible (CuPy missing or no device): GPU tests skipped",
                allow_module_level=True)

import cupy  # noqa: E402

from tinygrad_tf import Tensor, kernels, optim  # noqa: E402
from tinygrad_tf.amp import GradScaler  # noqa: E402

SHAPES = [(5, 7), (13,), (3, 4, 2), (1,), (300, 70)] * 3  # 15 params: two launches of the fused kernel
TOL = {np.float64: 1e-12, np.float32: 1e-6}


def _run(device, dtype, fused, bad, steps=10):
    """AdamW through a GradScaler on `device`; bad: {step: value} poisons a gradient that step.
    Returns the params, the optimizer and the scale after each step."""
    rng = np.random.default_rng(0)
    inits = [rng.standard_normal(s) for s in SHAPES]
    directions = [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]
    params = [tg.tensor(a, dtype=dtype, device=device, requires_grad=True) for a in inits]
    opt = optim.AdamW(params, lr=1e-2, fused=fused)
    scaler = GradScaler(device.split(":")[0], init_scale=2.0 ** 12, growth_interval=2)
    scales = []
    for t in range(steps):
        opt.zero_grad()
        loss = sum((p * tg.tensor(w, dtype=dtype, device=device)).sum() for p, w in zip(params, directions[t]))
        scaler.scale(loss).backward()
        if t in bad:
            grad = params[t % len(params)].grad.data
            grad.reshape(-1)[0] = bad[t]
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
    return params, opt, scales


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "textbook-gpu"])
def test_adamw_with_scaler_on_gpu_matches_the_cpu_textbook(dtype, fused):
    bad = {0: np.inf, 3: np.nan, 4: -np.inf, 7: np.inf}
    cpu_params, cpu_opt, cpu_scales = _run("cpu", dtype, None, bad)
    gpu_params, gpu_opt, gpu_scales = _run("cuda", dtype, fused, bad)
    assert gpu_scales == cpu_scales
    for a, b in zip(gpu_params, cpu_params):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=TOL[dtype], atol=TOL[dtype])
    cpu_state, gpu_state = cpu_opt.state_dict()["state"], gpu_opt.state_dict()["state"]
    assert sorted(gpu_state) == sorted(cpu_state)
    for i in cpu_state:
        assert gpu_state[i]["step"] == cpu_state[i]["step"] == 6  # ten steps, four skipped
        for name in ("exp_avg", "exp_avg_sq"):
            got, want = gpu_state[i][name].numpy(), cpu_state[i][name].numpy()
            assert np.isfinite(got).all()
            np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype] * 1e-3)
    if fused:  # the launches counted on the host, the skips on the GPU
        s = gpu_opt.state[gpu_params[0]]
        assert s["step"] == 10 and isinstance(s["skipped"], cupy.ndarray) and int(s["skipped"]) == 4


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_fused_with_a_scaler_and_no_overflow_is_bit_for_bit_the_gpu_textbook(dtype):
    """While no step is skipped the kernel uses the host's scalars: the textbook update bit for bit."""
    (fused_params, _, _), (plain_params, _, _) = _run("cuda", dtype, True, {}), _run("cuda", dtype, False, {})
    for a, b in zip(fused_params, plain_params):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_fused_kernel_skips_on_found_inf_and_counts():
    p = tg.tensor(np.ones(1000), device="cuda", requires_grad=True)
    opt = optim.Adam([p], lr=0.1, fused=True)
    p.grad = Tensor(cupy.full(1000, np.nan))
    opt.step(found_inf=cupy.ones((), np.float32))
    np.testing.assert_array_equal(p.detach().numpy(), np.ones(1000))
    assert not np.any(opt.state[p]["exp_avg"].get()) and int(opt.state[p]["skipped"]) == 1
    assert opt.state_dict()["state"][0]["step"] == 0
    p.grad = Tensor(cupy.ones(1000))
    opt.step(found_inf=cupy.zeros((), np.float32))
    np.testing.assert_allclose(p.detach().numpy(), np.full(1000, 0.9), rtol=1e-7)  # a first step: lr * sign
    opt.step()  # without a scaler: the count on the GPU is folded into the host's once
    assert "skipped" not in opt.state[p] and opt.state[p]["step"] == 2


def test_unscale_and_update_replay_in_a_cuda_graph():
    n, interval = 1000, 3
    p = tg.tensor(np.zeros(n, np.float32), device="cuda", requires_grad=True)
    opt = optim.SGD([p], lr=0.1)  # only its grads matter here: the graph does not step it
    scaler = GradScaler("cuda", init_scale=1024.0, growth_interval=interval)
    scaler.scale(p.sum()).backward()  # the scale on the GPU, and p.grad, whose memory the graph keeps
    scaler.unscale_(opt)  # warm-up, eagerly: compiles the kernels, makes found_inf
    scaler.update()
    mirror = GradScaler("cpu")  # the same steps on the CPU, eagerly
    mirror.load_state_dict(scaler.state_dict())
    q = tg.tensor(np.zeros(n, np.float32), requires_grad=True)
    mirror_opt = optim.SGD([q], lr=0.1)
    mirror.scale(q.sum())

    graph = tg.cuda.CUDAGraph()
    with tg.cuda.graph(graph):
        scaler.unscale_(opt)
        scaler.update()

    rng = np.random.default_rng(0)
    grad, scales = p.grad.data, []
    for bad in (False, True, False, False, False, False, True, True, False):
        direction = rng.standard_normal(n).astype(np.float32)
        scaled = direction * np.float32(scaler.get_scale())
        if bad:
            scaled[7] = np.inf
        grad[...] = cupy.asarray(scaled)  # in place: the captured work reads this memory
        graph.replay()
        q.grad = Tensor(scaled.copy())
        mirror.unscale_(mirror_opt)
        mirror.update()
        assert (scaler.get_scale(), scaler._get_growth_tracker()) == (mirror.get_scale(), mirror._get_growth_tracker())
        if not bad:
            np.testing.assert_array_equal(grad.get(), direction)  # a power-of-two scale unscales exactly
        scales.append(scaler.get_scale())
    assert scales == [1024, 512, 512, 512, 1024, 1024, 512, 256, 256]


@pytest.mark.parametrize("poison", [None, np.inf, np.nan], ids=["finite", "inf", "nan"])
def test_the_unscale_kernel_is_bit_for_bit_the_array_ops(poison):
    """kernels/cuda/unscale.py (the default) against the textbook array ops ("-unscale"): 30
    gradients of two dtypes (three launches of float32, three of float64), a scale that is not a
    power of two, an inf or NaN in the last gradient of one dtype."""
    rng = np.random.default_rng(1)
    shapes = [(5, 7), (13,), (3, 4, 2), (1,), (300, 70)] * 6
    dtypes = [np.float32, np.float64] * 15
    grads = [rng.standard_normal(shape) * 1e4 for shape in shapes]
    if poison is not None:
        grads[-1].reshape(-1)[3] = poison
    results = []
    for spec in ("all", "-unscale"):
        params = [tg.tensor(np.zeros(shape), dtype=d, device="cuda", requires_grad=True) for shape, d in zip(shapes, dtypes)]
        for p, g, d in zip(params, grads, dtypes):
            p.grad = tg.tensor(g, dtype=d, device="cuda")
        scaler, opt = GradScaler("cuda", init_scale=3000.0), optim.SGD(params, lr=0.1)
        scaler.scale(tg.tensor(1.0, device="cuda"))  # makes the scale
        with kernels.selected(spec):
            scaler.unscale_(opt)
        results.append(([p.grad.numpy() for p in params], float(scaler.found_inf(opt).get())))
    (fused, fused_inf), (textbook, textbook_inf) = results
    assert fused_inf == textbook_inf == (0.0 if poison is None else 1.0)
    for a, b in zip(fused, textbook):
        np.testing.assert_array_equal(a, b)
