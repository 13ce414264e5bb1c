"""CUDA graphs (tg.cuda.CUDAGraph): a replayed training step must do what the eager step does,
draw new dropout masks each replay, check indices, and survive eager allocations between
replays. Skipped where no GPU is visible; the CPU-side errors are tested in test_errors."""
import numpy as np
import pytest

import tinygrad_tf as tg

if not tg.cuda.is_available():
    pytest.skip("no CUDA GPU visible (CuPy missing or no device): GPU tests skipped",
                allow_module_level=True)

import cupy  # noqa: E402

import tinygrad_tf.nn.functional as F  # noqa: E402
from tinygrad_tf import backend, optim  # noqa: E402
from tinygrad_tf.kernels.cuda import random as krandom  # noqa: E402
from tinygrad_tf.models.gpt import GPT, GPTConfig  # noqa: E402

CONFIG = dict(vocab_size=17, block_size=64, n_layer=2, n_head=2, n_embd=32)


def _model(dropout, dtype):
    tg.manual_seed(0)
    model = GPT(GPTConfig(dropout=dropout, **CONFIG))
    return model.to("cuda").to(dtype)


def _batches(n, B=4, T=64):
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, CONFIG["vocab_size"], size=(n, B, T + 1))
    return [(t[:, :-1], t[:, 1:]) for t in tokens]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_replayed_training_matches_eager(dtype):
    """Same model, batches and AdamW: losses and weights after 4 steps agree with the eager run."""
    batches = _batches(6)

    def eager():
        model = _model(0.0, dtype)
        opt = optim.AdamW(model.parameters(), lr=1e-2)
        losses = []
        for x, y in batches:
            _, loss = model(tg.tensor(x, device="cuda"), tg.tensor(y, device="cuda"))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses, model

    def graphed():
        model = _model(0.0, dtype)
        opt = optim.AdamW(model.parameters(), lr=1e-2)
        x, y = tg.tensor(batches[0][0], device="cuda"), tg.tensor(batches[0][1], device="cuda")
        _, loss = model(x, y)  # warm-up step, eager, as the first eager step
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses = [loss.item()]
        opt.zero_grad()
        g = tg.cuda.CUDAGraph()
        with tg.cuda.graph(g):
            _, loss = model(x, y)
            loss.backward()
        for bx, by in batches[1:]:
            x.copy_(bx)
            y.copy_(by)
            junk = [cupy.ones(1 << k) for k in range(8, 20)]  # eager allocations between replays
            g.replay()
            del junk
            opt.step()
            losses.append(loss.item())
        return losses, model

    (want, m1), (got, m2) = eager(), graphed()
    tol = 1e-10 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(got, want, rtol=tol)
    for (name, a), (_, b) in zip(m1.named_parameters(), m2.named_parameters()):
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=tol, atol=tol, err_msg=name)


def test_replays_draw_new_dropout_masks():
    x = tg.tensor(np.ones((64, 256), np.float32), device="cuda")
    F.dropout(x, 0.5)  # warm-up: compiles the kernel
    g = tg.cuda.CUDAGraph()
    with tg.cuda.graph(g):
        y = F.dropout(x, 0.5)
    masks = []
    for _ in range(3):
        g.replay()
        out = y.numpy()
        assert set(np.unique(out)) <= {0.0, 2.0}
        assert abs((out == 0).mean() - 0.5) < 0.02
        masks.append(out == 0)
    assert (masks[0] != masks[1]).any() and (masks[1] != masks[2]).any()
    for seed in (5, 5):  # replays follow tg.manual_seed like eager dropout does
        tg.manual_seed(seed)
        g.replay()
        masks.append(y.numpy() == 0)
    assert (masks[3] == masks[4]).all() and (masks[3] != masks[2]).any()
    assert krandom.shift(0).get()[0] == 0  # eager kernels still see a zero shift
    z = F.dropout(x, 0.5)
    assert set(np.unique(z.numpy())) <= {0.0, 2.0}


def test_dropout_model_trains_in_a_graph():
    """With dropout the replayed losses differ from replay to replay on the same batch (new masks)
    and stay finite; the attention and residual dropout kernels run inside the graph."""
    model = _model(0.2, np.float32)
    opt = optim.AdamW(model.parameters(), lr=1e-3)
    (bx, by), = _batches(1)
    x, y = tg.tensor(bx, device="cuda"), tg.tensor(by, device="cuda")
    _, loss = model(x, y)
    loss.backward()
    opt.zero_grad()
    g = tg.cuda.CUDAGraph()
    with tg.cuda.graph(g):
        _, loss = model(x, y)
        loss.backward()
    losses = []
    for _ in range(3):
        g.replay()
        losses.append(loss.item())
    assert np.isfinite(losses).all() and len(set(losses)) == 3


def test_index_checks_run_after_each_replay():
    emb = tg.nn.Embedding(10, 4).to("cuda")
    idx = tg.tensor(np.arange(8) % 10, device="cuda")
    emb(idx)
    g = tg.cuda.CUDAGraph()
    with tg.cuda.graph(g):
        out = emb(idx)
    g.replay()
    np.testing.assert_array_equal(out.detach().numpy(), emb.weight.detach().numpy()[np.arange(8)])
    idx.copy_(np.array([0, 1, 2, 3, 4, 5, 6, 12]))
    g.replay()
    with pytest.raises(IndexError, match="embedding index 12 is out of range for 10"):
        tg.cuda.synchronize()
    idx.copy_(np.arange(8))
    g.replay()
    tg.cuda.synchronize()  # in range again: nothing left to report


def test_a_capture_that_reads_back_fails_cleanly():
    x = tg.tensor(np.ones(1024, np.float32), device="cuda")
    g = tg.cuda.CUDAGraph()
    with pytest.raises(RuntimeError, match="run the captured code once before capturing"):
        with tg.cuda.graph(g):
            (x * 2).sum().item()  # a read back can't be captured
    # everything the capture changed is back: eager work, the allocator, the dropout shift
    assert backend.state("cuda:0").capture is None
    pool = cupy.get_default_memory_pool()
    used = pool.used_bytes()
    y = x * 2  # allocated from CuPy's default pool again, on the default stream
    assert pool.used_bytes() > used and cupy.cuda.get_current_stream().ptr == cupy.cuda.Stream.null.ptr
    assert float(y.sum().item()) == 2048.0
    with pytest.raises(RuntimeError, match="needs a captured graph"):
        g.replay()


def test_a_graph_is_captured_once():
    x = tg.tensor(np.ones(8, np.float32), device="cuda")
    x * 2
    g = tg.cuda.CUDAGraph()
    with tg.cuda.graph(g):
        y = x * 2
    g.replay()
    np.testing.assert_array_equal(y.numpy(), 2 * np.ones(8))
    with pytest.raises(RuntimeError, match="already been captured"):
        with tg.cuda.graph(g):
            pass


def test_copy_into_a_gpu_tensor_from_numpy_cupy_and_tensors():
    t = tg.zeros(2, 3, device="cuda")
    data = t.data
    t.copy_(np.arange(3))
    np.testing.assert_array_equal(t.numpy(), [[0, 1, 2]] * 2)
    t.copy_(cupy.full((2, 1), 7.0))
    np.testing.assert_array_equal(t.numpy(), [[7] * 3] * 2)
    t.copy_(tg.ones(2, 3))  # a CPU tensor into GPU memory
    assert t.data is data and t.numpy().sum() == 6
