"""The GPT: parameter count, shapes, end-to-end float64 gradcheck, generation."""
import numpy as np
import pytest

import tinygrad_tf as tg
from tinygrad_tf.models.gpt import GPT, GPTConfig


def tiny_config(**kw):
    return GPTConfig(**{**dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8, dropout=0.0), **kw})


def test_default_config_has_the_seeds_parameter_count():
    model = GPT(GPTConfig(vocab_size=65))
    assert sum(p.numel() for p in model.parameters()) == 10_788_929


def test_parameter_names_follow_the_pytorch_layout():
    names = [n for n, _ in GPT(tiny_config()).named_parameters()]
    assert names[:2] == ["token_embedding.weight", "position_embedding.weight"]
    assert "blocks.1.attn.query.weight" in names and "blocks.1.attn.query.bias" not in names
    assert names[-1] == "lm_head.bias"


def test_forward_shapes_and_initial_loss_near_log_vocab():
    tg.manual_seed(0)
    model = GPT(tiny_config(vocab_size=50, n_embd=16))
    idx = tg.randint(0, 50, (3, 8))
    logits, loss = model(idx, idx)
    assert logits.shape == (3, 8, 50)
    assert abs(loss.item() - np.log(50)) < 0.1  # N(0, 0.02) init predicts nearly uniform


def test_end_to_end_gradcheck_every_parameter_float64():
    tg.manual_seed(0)
    model = GPT(tiny_config()).to(tg.float64)
    for p in model.parameters():  # larger weights than N(0, 0.02), so every path matters
        p.data[...] = np.random.default_rng(p.numel()).standard_normal(p.shape) * 0.5
    idx = tg.tensor(np.random.default_rng(1).integers(0, 11, (2, 8)))
    targets = tg.tensor(np.random.default_rng(2).integers(0, 11, (2, 8)))
    params = list(model.parameters())
    assert tg.gradcheck(lambda *_: model(idx, targets)[1], params)


def test_causality_future_tokens_do_not_change_past_logits():
    tg.manual_seed(0)
    model = GPT(tiny_config()).to(tg.float64)
    a = np.array([[1, 2, 3, 4, 5, 6, 7, 8]])
    b = a.copy()
    b[0, 5:] = [0, 0, 0]
    with tg.no_grad():
        la, _ = model(tg.tensor(a))
        lb, _ = model(tg.tensor(b))
    np.testing.assert_allclose(la.numpy()[0, :5], lb.numpy()[0, :5], rtol=1e-12)
    assert not np.allclose(la.numpy()[0, 5:], lb.numpy()[0, 5:])


def test_generate_appends_tokens_and_is_seeded():
    model = GPT(tiny_config())
    start = tg.tensor([[1, 2]])
    tg.manual_seed(5)
    a = model.generate(start, 20, temperature=0.8, top_k=3)
    tg.manual_seed(5)
    b = model.generate(start, 20, temperature=0.8, top_k=3)
    assert a.shape == (1, 22) and a.tolist() == b.tolist()
    assert a.numpy().max() < 11 and a.tolist()[0][:2] == [1, 2]
    assert model.training  # generate restores the mode it found


def test_top_k_one_is_greedy():
    tg.manual_seed(0)
    model = GPT(tiny_config())
    out = model.generate(tg.tensor([[3]]), 5, top_k=1)
    with tg.no_grad():
        model.eval()
        logits, _ = model(out[:, :-1])
    assert out.tolist()[0][1:] == logits.numpy()[0].argmax(-1).tolist()


def test_config_and_input_errors():
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(n_embd=10, n_head=3)
    with pytest.raises(ValueError, match="dropout"):
        GPTConfig(dropout=1.0)
    model = GPT(tiny_config())
    with pytest.raises(ValueError, match="block_size 8"):
        model(tg.zeros(1, 9, dtype=tg.int64))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        model(tg.zeros(9, dtype=tg.int64))


def test_matches_torch_lecture_style_model():
    """Same weights in a PyTorch model with the lecture's structure: same logits and loss."""
    torch = pytest.importorskip("torch")
    import torch.nn as tnn
    import torch.nn.functional as TF

    cfg = tiny_config()
    tg.manual_seed(0)
    ours = GPT(cfg).to(tg.float64)

    class Block(tnn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = tnn.LayerNorm(cfg.n_embd), tnn.LayerNorm(cfg.n_embd)
            self.query, self.key, self.value = (tnn.Linear(cfg.n_embd, cfg.n_embd, bias=False)
                                                for _ in range(3))
            self.c_proj = tnn.Linear(cfg.n_embd, cfg.n_embd)
            self.fc, self.proj = tnn.Linear(cfg.n_embd, 4 * cfg.n_embd), tnn.Linear(4 * cfg.n_embd, cfg.n_embd)

        def forward(self, x):
            B, T, C = x.shape
            h = self.ln_1(x)
            q, k, v = (p(h).view(B, T, cfg.n_head, -1).transpose(1, 2) for p in (self.query, self.key, self.value))
            y = TF.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
            x = x + self.c_proj(y)
            return x + self.proj(torch.relu(self.fc(self.ln_2(x))))

    blocks = [Block().double() for _ in range(cfg.n_layer)]
    sd = {k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()}
    tok, pos = sd["token_embedding.weight"], sd["position_embedding.weight"]
    for i, blk in enumerate(blocks):
        p = f"blocks.{i}."
        with torch.no_grad():
            for mine, theirs in [("ln_1", blk.ln_1), ("ln_2", blk.ln_2), ("attn.c_proj", blk.c_proj),
                                 ("mlp.c_fc", blk.fc), ("mlp.c_proj", blk.proj)]:
                theirs.weight.copy_(sd[p + mine + ".weight"])
                theirs.bias.copy_(sd[p + mine + ".bias"])
            for name in ("query", "key", "value"):
                getattr(blk, name).weight.copy_(sd[p + f"attn.{name}.weight"])
    idx = np.random.default_rng(0).integers(0, cfg.vocab_size, (2, 8))
    x = tok[torch.tensor(idx)] + pos[torch.arange(8)]
    for blk in blocks:
        x = blk(x)
    x = TF.layer_norm(x, (cfg.n_embd,), sd["ln_f.weight"], sd["ln_f.bias"])
    ref = x @ sd["lm_head.weight"].T + sd["lm_head.bias"]
    with tg.no_grad():
        logits, _ = ours(tg.tensor(idx))
    np.testing.assert_allclose(logits.numpy(), ref.detach().numpy(), rtol=1e-10, atol=1e-12)
