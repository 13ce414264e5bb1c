"""GPU tests: CPU vs GPU parity for every op case of test_ops, the tiny GPT, gradcheck on
the GPU, device moves, optimizer state and checkpoints, generation, and what the fused GPU
kernels (tinygrad_tf/kernels/cuda) promise beyond their parity with the textbook ops
(tests/test_kernels.py runs that table): unaligned arrays, determinism, strided operands, TF32.

The whole module is skipped where no GPU is visible, so CPU-only CI stays green.
"""
import numpy as np
import pytest

import tinygrad_tf as tg

if not tg.cuda.is_available():
    pytest.skip("no CUDA GPU visible (CuPy missing or no device): GPU tests skipped",
                allow_module_level=True)

import cupy  # noqa: E402

import tinygrad_tf.nn.functional as TF  # noqa: E402
from test_ops import CASES  # noqa: E402
from tinygrad_tf import backend, kernels, optim  # noqa: E402
from tinygrad_tf.kernels.cuda import (add, attention as attention_kernels, cublaslt, dropout, embedding,  # noqa: E402
                                      gemm, reduce, relu)
from tinygrad_tf.ops.random import uniform  # noqa: E402
from tinygrad_tf.models.gpt import GPT, GPTConfig  # noqa: E402

TOL = {np.float64: 1e-10, np.float32: 1e-5}


class OnGpu:
    """`lib` for the op cases, making the tensors a case builds itself (masks, indices) on the GPU."""

    def __getattr__(self, name):
        return getattr(tg, name)

    @staticmethod
    def tensor(data, **kw):
        return tg.tensor(data, device="cuda", **kw)


def close(actual, expected, tol):
    """Elementwise within tol relative, or tol times the largest |expected| (for near-zero entries)."""
    actual, expected = np.asarray(backend.to_numpy(actual)), np.asarray(backend.to_numpy(expected))
    finite = np.isfinite(expected)
    scale = max(float(np.abs(expected[finite]).max()) if finite.any() else 0.0, 1e-30)
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale)


def run_case(fn, arrays, dtype, device):
    lib = OnGpu() if device == "cuda" else tg
    inputs = [tg.tensor(a.copy(order="K"), dtype=dtype, device=device, requires_grad=True) for a in arrays]
    out = fn(lib, TF, *inputs)
    weight = np.random.default_rng(1).standard_normal(out.shape)
    (out * tg.tensor(weight, dtype=out.dtype, device=device)).sum().backward()
    return out.detach().numpy(), [None if x.grad is None else x.grad.numpy() for x in inputs]


# --- every op: the same values and gradients on both devices ---------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_op_parity_cpu_vs_gpu(case, dtype):
    """Dropout included: its masks hash the same seeds on both devices (ops/random.py)."""
    name, fn, arrays, _ = case
    gpu_out, gpu_grads = run_case(fn, arrays, dtype, "cuda")
    cpu_out, cpu_grads = run_case(fn, arrays, dtype, "cpu")
    close(gpu_out, cpu_out, TOL[dtype])
    for g, c in zip(gpu_grads, cpu_grads):
        assert (g is None) == (c is None)
        if c is not None:
            close(g, c, TOL[dtype])


GPU_GRADCHECK = ["softmax", "log_softmax_masked", "layer_norm", "layer_norm_2d_no_affine", "cross_entropy",
                 "cross_entropy_sum_smoothing", "cross_entropy_mean_ignore", "cross_entropy_none_ignore",
                 "linear", "embedding_repeated", "matmul_batched_broadcast", "gelu", "dropout",
                 "sdpa_causal", "sdpa_dropout", "sdpa_bool_mask", "sdpa_float_mask"]


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in GPU_GRADCHECK],
                         ids=[c[0] for c in CASES if c[0] in GPU_GRADCHECK])
def test_gradcheck_on_gpu_float64(case):
    _, fn, arrays, opts = case
    inputs = [tg.tensor(a.copy(order="K"), dtype=tg.float64, device="cuda", requires_grad=True) for a in arrays]
    assert tg.gradcheck(lambda *xs: fn(OnGpu(), TF, *xs), inputs, eps=opts.get("eps", 1e-6),
                        atol=opts.get("atol", 1e-5), rtol=opts.get("rtol", 1e-3))


def test_to_device_gradcheck_cpu_cuda_cpu():
    x = tg.tensor(np.random.default_rng(0).standard_normal((3, 4)), dtype=tg.float64, requires_grad=True)
    assert tg.gradcheck(lambda x: (x.to("cuda") * 2).exp().to("cpu") * x, [x])
    y = (x.cuda() * 3).cpu().sum()
    y.backward()
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), 3.0)


# --- the tiny GPT -----------------------------------------------------------------------------------
def tiny_config(**kw):
    return GPTConfig(**{**dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8, dropout=0.0), **kw})


def tiny_gpt(dtype, device):
    tg.manual_seed(0)
    model = GPT(tiny_config()).to(dtype)
    for p in model.parameters():  # larger than N(0, 0.02), so every path matters
        p.data[...] = np.random.default_rng(p.numel()).standard_normal(p.shape) * 0.5
    return model.to(device)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_tiny_gpt_forward_backward_parity(dtype):
    idx = np.random.default_rng(1).integers(0, 11, (3, 8))
    targets = np.random.default_rng(2).integers(0, 11, (3, 8))
    results = {}
    for device in ("cpu", "cuda"):
        model = tiny_gpt(dtype, device)
        logits, loss = model(tg.tensor(idx, device=device), tg.tensor(targets, device=device))
        loss.backward()
        results[device] = (logits.detach().numpy(), loss.item(),
                           {n: p.grad.numpy() for n, p in model.named_parameters()})
    (cl, closs, cg), (gl, gloss, gg) = results["cpu"], results["cuda"]
    close(gl, cl, TOL[dtype])
    close(gloss, closs, TOL[dtype])
    assert cg.keys() == gg.keys()
    for name in cg:
        close(gg[name], cg[name], TOL[dtype] * (10 if dtype == np.float32 else 1))


def test_tiny_gpt_step_with_kernels_matches_plain_xp():
    """A whole train step with every fused kernel on vs off, in float64."""
    idx = tg.tensor(np.random.default_rng(1).integers(0, 11, (3, 8)), device="cuda")
    results = []
    for spec in ("all", "none"):
        with kernels.selected(spec):
            model = tiny_gpt(np.float64, "cuda")
            opt = optim.AdamW(model.parameters(), lr=1e-2)
            for _ in range(2):
                _, loss = model(idx, idx)
                opt.zero_grad()
                loss.backward()
                opt.step()
            results.append({n: p.detach().numpy() for n, p in model.state_dict().items()})
    for name in results[0]:
        close(results[0][name], results[1][name], 1e-10)


def test_gpu_training_with_dropout_runs_and_is_seeded():
    def losses():
        tg.manual_seed(3)
        model = GPT(tiny_config(dropout=0.3)).to("cuda")
        opt = optim.AdamW(model.parameters(), lr=1e-2)
        idx = tg.randint(0, 11, (4, 8), device="cuda")
        out = []
        for _ in range(3):
            _, loss = model(idx, idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            out.append(loss.item())
        return out

    a, b = losses(), losses()
    assert a == b and np.isfinite(a).all()


def test_module_optimizer_state_and_checkpoint_move_between_devices(tmp_path):
    model = tiny_gpt(np.float32, "cuda")
    assert all(p.device == "cuda:0" for p in model.parameters())
    opt = optim.AdamW(model.parameters(), lr=1e-3)
    idx = tg.randint(0, 11, (2, 8), device="cuda")
    _, loss = model(idx, idx)
    loss.backward()
    opt.step()
    state = opt.state_dict()
    assert all(s["exp_avg"].device == "cuda:0" for s in state["state"].values())
    tg.save({"model": model.state_dict(), "optim": state}, tmp_path / "ckpt")
    ckpt = tg.load(tmp_path / "ckpt")  # onto the CPU by default
    assert all(t.device == "cpu" for t in ckpt["model"].values())
    cpu_model = GPT(tiny_config())
    cpu_model.load_state_dict(ckpt["model"])
    cpu_opt = optim.AdamW(cpu_model.parameters(), lr=1e-3)
    cpu_opt.load_state_dict(ckpt["optim"])
    assert all(s["exp_avg"].device == "cpu" for s in cpu_opt.state_dict()["state"].values())
    model.eval()
    cpu_model.eval()
    with tg.no_grad():
        close(model(idx)[0].numpy(), cpu_model(idx.cpu())[0].numpy(), 1e-5)
    back = tg.load(tmp_path / "ckpt", device="cuda")
    assert all(t.device == "cuda:0" for t in back["model"].values())


def test_generation_on_gpu():
    model = tiny_gpt(np.float32, "cuda")
    start = tg.tensor([[1, 2], [3, 4]], device="cuda")
    tg.manual_seed(5)
    out = model.generate(start, max_new_tokens=6, top_k=3)
    tg.manual_seed(5)
    again = model.generate(start, max_new_tokens=6, top_k=3)
    assert out.shape == (2, 8) and out.device == "cuda:0"
    values = out.numpy()
    assert ((values >= 0) & (values < 11)).all() and (values[:, :2] == [[1, 2], [3, 4]]).all()
    np.testing.assert_array_equal(values, again.numpy())


@pytest.mark.parametrize("make, message", [
    (lambda: TF.embedding(tg.tensor([0, 7], device="cuda"), tg.randn(5, 3, device="cuda")),
     "embedding index 7 is out of range for 5 embeddings"),
    (lambda: TF.cross_entropy(tg.randn(2, 3, device="cuda"), tg.tensor([-100, -2], device="cuda")),
     "cross_entropy target -2 is out of range for 3 classes"),
    (lambda: tg.randn(3, 2, device="cuda")[tg.tensor([0, 3], device="cuda")],
     "index 3 is out of bounds for dim 0 with size 3"),
], ids=["embedding", "cross_entropy", "getitem"])
def test_gpu_index_errors_are_reported_at_the_next_read_back(make, message):
    out = make()  # no stall here: the bounds come back asynchronously
    with pytest.raises(IndexError, match=message):
        out.sum().item()
    tg.cuda.synchronize()  # reported once: nothing left pending
    make()
    with pytest.raises(IndexError, match=message):
        tg.cuda.synchronize()
    good = TF.embedding(tg.tensor([0, 4], device="cuda"), tg.randn(5, 3, device="cuda"))
    assert good.sum().item() == pytest.approx(float(good.numpy().sum()), rel=1e-6)


def test_gpu_embedding_backward_skips_out_of_range_rows():
    w = tg.randn(5, 3, device="cuda", requires_grad=True)
    TF.embedding(tg.tensor([0, 7, 0], device="cuda"), w).sum().backward()  # no write out of bounds
    with pytest.raises(IndexError, match="embedding index 7 is out of range"):
        tg.cuda.synchronize()
    np.testing.assert_array_equal(w.grad.numpy(), [[2, 2, 2]] + [[0, 0, 0]] * 4)


# --- the fused kernels, beyond their parity cases ---------------------------------------------------------
def fused_vs_plain(name, fn, arrays, dtype, tol=None):
    """fn(*tensors) -> tensor, run with kernel `name` on and with every kernel off: same values and grads."""
    results = []
    for spec in (name, "none"):
        with kernels.selected(spec):
            inputs = [tg.tensor(a, dtype=dtype, device="cuda", requires_grad=True) for a in arrays]
            tg.manual_seed(0)
            out = fn(*inputs)
            weight = tg.tensor(np.random.default_rng(9).standard_normal(out.shape), dtype=dtype, device="cuda")
            (out * weight).sum().backward()
            results.append((out.detach().numpy(), [x.grad.numpy() for x in inputs]))
    (fo, fg), (po, pg) = results
    tol = tol or TOL[dtype]
    close(fo, po, tol)
    for a, b in zip(fg, pg):
        close(a, b, tol)


def rnd(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_add_kernel_sums_same_shape_arrays_and_their_gradients(dtype):
    fused_vs_plain("add", lambda a, b: a + b, [rnd(7, 33), rnd(33, seed=1)], dtype)  # broadcast: the plain add
    x = tg.tensor(rnd(6, 5), dtype=dtype, device="cuda", requires_grad=True)
    with kernels.selected("add"):
        (x * 2 + x.exp()).sum().backward()  # x feeds two ops: autograd sums their gradients
    close(x.grad.data, 2 + cupy.exp(x.data), TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_vectorized_kernels_take_unaligned_and_ragged_arrays(dtype):
    a, b = (cupy.asarray(rnd(1001, seed=s), dtype=dtype) for s in range(2))
    for lo in (0, 1, 3):  # 1 and 3: views 8 or 24 (float64), 4 or 12 (float32) bytes past an aligned address
        np.testing.assert_array_equal(add.Add().forward(a[lo:], b[lo:]).get(), (a[lo:] + b[lo:]).get())
        np.testing.assert_array_equal(relu.relu_backward(a[lo:], b[lo:]).get(), (a[lo:] * (b[lo:] > 0)).get())
    with pytest.raises(ValueError, match="C-contiguous arrays of one shape"):
        add._kernel(a[:10], b[:11])


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("t", [20, 70])
def test_causal_attention_kernel_on_the_models_layout(dtype, t):
    """(B, H, T, d) views of (B, T, C) projections in, and the transpose back out, as in GPT."""
    def fn(x, y, z):
        B, T, C = x.shape
        q, k, v = (a.reshape(B, T, 4, C // 4).transpose(1, 2) for a in (x, y, z))
        out = TF.scaled_dot_product_attention(q, k, v, is_causal=True)
        return out.transpose(1, 2).reshape(B, T, C)
    fused_vs_plain("attention", fn, [rnd(3, t, 32, seed=s) for s in range(3)], dtype)
    q, k, v = (cupy.asarray(rnd(3, t, 32, seed=s), dtype=dtype).reshape(3, t, 4, 8).transpose(0, 2, 1, 3)
               for s in range(3))
    out, saved = attention_kernels.forward(q, k, v, 0.3)
    grads = attention_kernels.backward(out, saved)
    assert all(saved[i] is x for i, x in enumerate((q, k, v)))  # read in place, not copied
    for a in (out,) + grads:  # laid out as the inputs: the transposes back are views
        assert a.transpose(0, 2, 1, 3).flags.c_contiguous


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("t", [40, 67])  # 67: split into unequal causal halves (kernels/attention.py)
def test_causal_attention_kernel_with_dropout_matches_its_mask(dtype, t):
    """Kernel forward/backward vs the same math composed from plain ops with the hash mask."""
    p, seed, scale = 0.3, 12345, 0.35
    q, k, v = (cupy.asarray(rnd(2, 3, t, 8, seed=s), dtype=dtype) for s in range(3))
    g = cupy.asarray(rnd(2, 3, t, 8, seed=7), dtype=dtype)
    out, saved = attention_kernels.forward(q, k, v, scale, p, seed)
    gq, gk, gv = attention_kernels.backward(g, saved)
    keep = uniform(seed, (6, t, t), dtype, cupy).reshape(2, 3, t, t) >= dtype(p)
    mask = tg.tensor(keep * dtype(1 / (1 - p)), device="cuda")
    causal = tg.tensor(~np.tril(np.ones((t, t), dtype=bool)), device="cuda")
    with kernels.selected("none"):
        tq, tk, tv = (tg.tensor(a, requires_grad=True) for a in (q, k, v))
        weights = ((tq @ tk.transpose(-2, -1)) * scale).masked_fill(causal, float("-inf")).softmax(-1)
        ref = (weights * mask) @ tv
        ref.backward(tg.tensor(g))
    tol = TOL[dtype]
    close(out, ref.data, tol)
    for mine, theirs in zip((gq, gk, gv), (tq, tk, tv)):
        close(mine, theirs.grad.data, tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_dropout_kernel_is_its_hash_mask(dtype):
    x = cupy.asarray(rnd(7, 33, 5), dtype=dtype)
    y = dropout.apply(x, 0.25, 99)
    keep = uniform(99, x.shape, dtype, cupy) >= dtype(0.25)
    np.testing.assert_array_equal(y.get(), (x * keep * dtype(1 / 0.75)).get())
    assert 0.2 < 1 - float(keep.mean()) < 0.3
    xt = x[:, ::2].T  # non-contiguous: the mask follows the C-ordered elements of the view
    keep = uniform(5, xt.shape, dtype, cupy) >= dtype(0.5)
    np.testing.assert_array_equal(dropout.apply(xt, 0.5, 5).get(), (xt * keep * dtype(2)).get())


def test_dropout_op_on_gpu_masks_forward_and_backward_alike():
    x = tg.tensor(rnd(64, 50) + 3, device="cuda", requires_grad=True)
    y = TF.dropout(x, 0.4)
    y.sum().backward()
    y = y.detach().numpy()
    kept = y != 0
    np.testing.assert_allclose(y[kept], x.detach().numpy()[kept] / 0.6, rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), kept / np.float32(0.6), rtol=1e-6)
    assert 0.35 < 1 - kept.mean() < 0.45
    tg.manual_seed(1)
    a = TF.dropout(x, 0.4).detach().numpy()
    tg.manual_seed(1)
    np.testing.assert_array_equal(a, TF.dropout(x, 0.4).detach().numpy())


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("rows,n", [(1, 5), (31, 7), (1000, 65), (16384, 384)])
def test_column_sum_kernel(dtype, rows, n):
    x = cupy.asarray(rnd(rows, n), dtype=dtype)
    y = cupy.asarray(rnd(rows, n, seed=1), dtype=dtype)
    close(reduce.column_sum(x), x.sum(axis=0), TOL[dtype] * 10)
    close(reduce.column_sum(x, y), (x * y).sum(axis=0), TOL[dtype] * 10)
    both = reduce.column_sums(x, y)  # layer norm's two parameter gradients in one pass
    close(both[0], (x * y).sum(axis=0), TOL[dtype] * 10)
    close(both[1], x.sum(axis=0), TOL[dtype] * 10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("n,vocab,c", [(1, 3, 5), (40, 11, 8), (1000, 3, 130), (16384, 65, 384)])
def test_embedding_backward_kernel_sums_repeats_in_a_fixed_order(dtype, n, vocab, c):
    """Runs of every length (up to ~5000 rows of one index, across many chunks) against
    float64 sums on the host, and the same bits on every call (unlike cupy.add.at)."""
    rng = np.random.default_rng(n)
    index = rng.integers(0, vocab, n)
    rows = rng.standard_normal((n, c))
    expected = np.zeros((vocab + 2, c))
    np.add.at(expected, index, rows)
    results = set()
    for _ in range(5):
        target = cupy.zeros((vocab + 2, c), dtype)  # two rows no index hits stay zero
        embedding.add_rows(target, cupy.asarray(index), cupy.asarray(rows, dtype=dtype))
        results.add(target.get().tobytes())
    close(target.get(), expected, TOL[dtype] * 10)
    assert len(results) == 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation", [None, "relu"])
def test_linear_epilogue_kernel_takes_the_models_shapes(dtype, bias, activation):
    inputs = [rnd(4, 50, 24), rnd(40, 24, seed=1)] + ([rnd(40, seed=2)] if bias else [])
    x, w, *b = (cupy.asarray(a, dtype=dtype) for a in inputs)  # cuBLASLt takes it (parity: test_kernels)
    assert cublaslt.matmul(x.reshape(200, 24), w, trans_b=True, bias=b[0] if b else None,
                           relu=activation == "relu") is not None


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_lt_matmul_matches_cupy(dtype, trans_a, trans_b, monkeypatch):
    monkeypatch.delenv("CUPY_TF32", raising=False)
    a = cupy.asarray(rnd(70, 24), dtype=dtype)
    b = cupy.asarray(rnd(24, 40, seed=1), dtype=dtype)
    a_in = cupy.ascontiguousarray(a.T) if trans_a else a
    b_in = cupy.ascontiguousarray(b.T) if trans_b else b
    close(cublaslt.matmul(a_in, b_in, trans_a, trans_b), a @ b, TOL[dtype])
    with pytest.raises(ValueError, match="equal inner sizes"):
        cublaslt.matmul(a, a)


def test_lt_matmul_leaves_a_shape_to_a_faster_plain_path():
    a, b = cupy.asarray(rnd(48, 20)), cupy.asarray(rnd(20, 12, seed=1))
    assert cublaslt.matmul(a, b, fallback=lambda: None) is None  # nothing beats doing nothing
    assert cublaslt.matmul(a, b) is None  # decided once for the shape


def test_linear_epilogue_kernel_honours_tf32_and_refuses_unaligned_input(monkeypatch):
    x = cupy.asarray(rnd(256, 384), dtype=np.float32)
    w, b = cupy.asarray(rnd(96, 384, seed=1), dtype=np.float32), cupy.asarray(rnd(96, seed=2), dtype=np.float32)
    exact = x.astype(np.float64) @ w.T.astype(np.float64) + b
    monkeypatch.delenv("CUPY_TF32", raising=False)
    close(cublaslt.matmul(x, w, trans_b=True, bias=b), exact, 1e-5)
    monkeypatch.setenv("CUPY_TF32", "1")
    fast = cublaslt.matmul(x, w, trans_b=True, bias=b)
    err = float(cupy.linalg.norm(fast - exact) / cupy.linalg.norm(exact))
    assert 1e-6 < err < 5e-3
    monkeypatch.delenv("CUPY_TF32")
    flat = cupy.asarray(rnd(256 * 384 + 1), dtype=np.float32)
    shifted = flat[1:].reshape(256, 384)  # 4 bytes past an aligned address: cuBLASLt's algorithms refuse it
    assert cublaslt.matmul(shifted, w, trans_b=True, bias=b) is None  # so Linear takes cuBLAS's path (gemm.py)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_batched_gemm_matches_cupy_matmul(dtype, trans_a, trans_b, monkeypatch):
    monkeypatch.delenv("CUPY_TF32", raising=False)
    a = cupy.asarray(rnd(4, 9, 6), dtype=dtype)
    b = cupy.asarray(rnd(4, 6, 5, seed=1), dtype=dtype)
    a_in = a.transpose(0, 2, 1).copy() if trans_a else a
    b_in = b.transpose(0, 2, 1).copy() if trans_b else b
    close(gemm.matmul(a_in, b_in, trans_a, trans_b), a @ b, TOL[dtype])


def test_batched_gemm_on_strided_views_and_strided_out():
    x = cupy.asarray(rnd(3, 10, 32))
    q = x.reshape(3, 10, 4, 8).transpose(0, 2, 1, 3)  # (B, H, T, d) view: two batch strides, read in place
    y = cupy.asarray(rnd(3, 10, 32, seed=1)).reshape(3, 10, 4, 8).transpose(0, 2, 1, 3)
    s = cupy.asarray(rnd(3, 4, 10, 10, seed=2))
    close(gemm.matmul(q, y, trans_b=True), q @ y.transpose(0, 1, 3, 2), 1e-10)
    close(gemm.matmul(s, y, trans_a=True), s.transpose(0, 1, 3, 2) @ y, 1e-10)
    wide = cupy.full((12, 10, 20), np.nan)
    out = wide[:, :, 4:12].reshape(3, 4, 10, 8)  # matrices one stride apart, rows 20 apart
    assert gemm.matmul(s, q, out=out) is out
    close(out, s @ q, 1e-10)
    assert np.isnan(wide[:, :, :4].get()).all()
    heads = cupy.full((3, 10, 4, 8), np.nan)  # (B, T, H, d) memory written as (B, H, T, d): pointer GEMM
    assert gemm.matmul(s, q, out=heads.transpose(0, 2, 1, 3)).base is heads
    close(heads.transpose(0, 2, 1, 3), s @ q, 1e-10)
    for seed in (5, 6):  # same addresses, new values: the kept matrix addresses still hold
        x[...] = cupy.asarray(rnd(3, 10, 32, seed=seed))
        close(gemm.matmul(s, q, out=heads.transpose(0, 2, 1, 3)), s @ q, 1e-10)
    with pytest.raises(ValueError, match="out has shape"):  # rows without a unit stride
        gemm.matmul(s, q, out=cupy.empty((3, 4, 8, 10)).transpose(0, 1, 3, 2))


def test_batched_gemm_pieces_in_one_launch():
    s, x = cupy.asarray(rnd(2, 3, 8, 8)), cupy.asarray(rnd(2, 3, 8, 5, seed=1))
    out = cupy.full((2, 3, 8, 5), np.nan)
    gemm.matmul_pieces([(s[..., :4, :4], x[..., :4, :], out[..., :4, :]),
                        (s[..., 4:, 4:], x[..., 4:, :], out[..., 4:, :])])
    close(out[..., :4, :], s[..., :4, :4] @ x[..., :4, :], 1e-10)
    close(out[..., 4:, :], s[..., 4:, 4:] @ x[..., 4:, :], 1e-10)
    with pytest.raises(ValueError, match="one shape"):  # k = 4 and k = 8
        gemm.matmul_pieces([(s[..., :4, :4], x[..., :4, :], out[..., :4, :]), (s[..., 4:, :], x, out[..., 4:, :])])


@pytest.mark.parametrize("layout", ["strided", "pointers"])
def test_batched_gemm_tf32_is_close_but_rounded(monkeypatch, layout):
    a = cupy.asarray(rnd(8, 128, 256), dtype=np.float32)
    b = cupy.asarray(rnd(8, 256, 64, seed=1), dtype=np.float32)
    if layout == "pointers":  # matrices two strides apart, as the model's attention heads
        a = cupy.ascontiguousarray(a.reshape(2, 4, 128, 256).transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
        b = b.reshape(2, 4, 256, 64)
    monkeypatch.delenv("CUPY_TF32", raising=False)
    exact = gemm.matmul(a, b)
    close(exact, cupy.matmul(a.astype(np.float64), b.astype(np.float64)), 1e-5)
    monkeypatch.setenv("CUPY_TF32", "1")
    fast = gemm.matmul(a, b)
    err = float(cupy.linalg.norm(fast - exact) / cupy.linalg.norm(exact))
    assert 1e-6 < err < 5e-3
    monkeypatch.delenv("CUPY_TF32")
    assert cupy.array_equal(gemm.matmul(a, b), exact)  # the handle's math mode was restored




def test_gemm_takes_single_row_and_column_views_with_any_stride():
    """k.transpose(-2, -1) of a (B, 1, d) k is a (B, d, 1) view whose last stride is not 1: its one
    column is still read in place (the lecture GPT's first generated token)."""
    q = cupy.asarray(rnd(2, 1, 8))
    k = cupy.asarray(rnd(2, 1, 8, seed=1))
    close(gemm.matmul(q, k.transpose(0, 2, 1)), q @ k.transpose(0, 2, 1), 1e-12)
    x = tg.tensor(rnd(2, 1, 8), device="cuda", requires_grad=True)
    (x @ x.transpose(-2, -1)).sum().backward()
    close(x.grad.data, 2 * x.data, 1e-12)
