"""Study tools: the per-op gradient checker, the graph export and the two attention examples."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import tinygrad_tf as tg
import tinygrad_tf.nn.functional as F
from tinygrad_tf import viz
from tinygrad_tf.data import CharTokenizer
from tinygrad_tf.tensor import _observer as op_observer
from tinygrad_tf.graphcheck import gradcheck_graph
from tinygrad_tf.models.gpt import GPT, GPTConfig
from tinygrad_tf import kernels
from tinygrad_tf.ops import attention, elementwise as E, layer_norm, softmax

ROOT = Path(__file__).resolve().parents[1]


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def attention_block(T=5, C=8, head_size=4, seed=0):
    """fn and inputs: layer norm, one causal head written out op by op, the fused op, cross-entropy."""
    tg.manual_seed(seed)
    x = tg.randn(T, C, dtype=tg.float64, requires_grad=True)
    w = (tg.randn(C, 3 * head_size, dtype=tg.float64) * C ** -0.5).detach()
    w.requires_grad = True
    gamma = tg.ones(C, dtype=tg.float64, requires_grad=True)
    beta = tg.zeros(C, dtype=tg.float64, requires_grad=True)
    targets = tg.randint(0, head_size, (T,))

    def fn(x, w):
        q, k, v = (F.layer_norm(x, (C,), gamma, beta) @ w).split(head_size, dim=-1)
        wei = (q @ k.transpose(-2, -1)) * head_size ** -0.5
        wei = wei.masked_fill(tg.tril(tg.ones(T, T)) == 0, float("-inf")).softmax(-1)
        fused = F.scaled_dot_product_attention(q[None], k[None], v[None], is_causal=True)[0]
        return F.cross_entropy((wei @ v + fused).tanh(), targets)

    return fn, (x, w)


def test_checker_passes_every_op_of_an_attention_block():
    fn, inputs = attention_block()
    report = gradcheck_graph(fn, inputs)
    ops = [r.op for r in report]
    for op in ("LayerNorm", "MatMul", "Where", "Softmax", "Attention", "Tanh", "CrossEntropy"):
        assert op in ops
    assert report.passed and report.failures == [] and report.first_failure is None, str(report)
    assert all(r.max_abs_err < 1e-6 for r in report)
    row = report.rows[0]
    assert row.op == "LayerNorm" and row.input_shapes == ((5, 8), (8,), (8,)) and row.output_shape == (5, 8)
    assert "all passed" in str(report) and "LayerNorm" in str(report)


@pytest.mark.parametrize("cls", [layer_norm.LayerNorm, E.Tanh, attention.Attention])
@kernels.selected("none")  # the planted bug is in the textbook op: run that, not a fused twin
def test_checker_names_the_op_with_a_planted_wrong_backward(monkeypatch, cls):
    correct = cls.backward

    def wrong(self, g):
        grads = correct(self, g)
        grads = grads if isinstance(grads, tuple) else (grads,)
        return tuple(None if gr is None else gr * 1.1 for gr in grads)

    monkeypatch.setattr(cls, "backward", wrong)
    fn, inputs = attention_block()
    with pytest.raises(tg.GradcheckError):  # the end-to-end check sees something is wrong...
        tg.gradcheck(fn, inputs)
    report = gradcheck_graph(fn, inputs)  # ...the per-op check says where
    assert not report.passed
    assert report.first_failure.op == cls.__name__
    assert {r.op for r in report.failures} == {cls.__name__}
    assert all(r.passed for r in report if r.op != cls.__name__)
    assert "FAIL" in str(report) and f"first: {cls.__name__}" in str(report)


def test_checker_labels_rows_checks_float32_graphs_in_float64_and_stops_recording():
    x = tg.randn(3, 4, requires_grad=True)  # float32: each op is re-run in float64
    names = {}

    def fn(x):
        h = (x * 2.0).sigmoid()
        names[h] = "h"
        return (h @ x.T).sum()

    report = gradcheck_graph(fn, [x], names=names)
    assert report.passed, str(report)
    assert [r.op for r in report] == ["Mul", "Sigmoid", "Permute", "MatMul", "Sum"]
    assert report.rows[1].name == "h" and report.row_for(next(iter(names))) is report.rows[1]
    assert op_observer.get() is None  # the recorder is gone again
    with pytest.raises(ValueError, match="no graph"):
        gradcheck_graph(lambda x: x.detach() * 2, [x])


def test_checker_replays_dropout_randomness():
    tg.manual_seed(0)
    x = tg.randn(6, 6, dtype=tg.float64, requires_grad=True)
    report = gradcheck_graph(lambda x: F.dropout(x.tanh(), 0.5).sum(), [x])
    assert [r.op for r in report] == ["Tanh", "Dropout", "Sum"] and report.passed, str(report)


def test_to_dot_names_ops_shapes_and_parameters(tmp_path):
    tg.manual_seed(0)
    layer = tg.nn.Linear(4, 3)
    x = tg.randn(2, 4, requires_grad=True)
    hidden = layer(x).tanh()
    loss = hidden.sum()
    names = {p: n for n, p in layer.named_parameters()}
    names[hidden] = "hidden"
    names[id(x)] = "x"
    src = viz.to_dot(loss, tmp_path / "g.dot", names=names)
    assert (tmp_path / "g.dot").read_text() == src
    assert src.startswith("digraph") and src.rstrip().endswith("}")
    for text in ("Linear\\n(2, 3)", "hidden = Tanh\\n(2, 3)", "Sum\\n()", "weight\\n(3, 4)\\nrequires_grad",
                 "bias\\n(3,)", "x\\n(2, 4)"):
        assert text in src, text
    assert src.count("->") == 5  # x, weight, bias -> Linear -> Tanh -> Sum
    assert "requires_grad" in viz.to_dot(tg.randn(2, requires_grad=True))


def test_render_says_how_when_graphviz_is_missing(tmp_path, monkeypatch):
    src = viz.to_dot((tg.randn(2, requires_grad=True) * 2).sum())
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)
    with pytest.raises(viz.GraphvizNotFound, match="apt-get install graphviz"):
        viz.render(src, tmp_path / "g.svg")
    with pytest.raises(ValueError, match="svg' or 'png"):
        viz.render(src, tmp_path / "g.pdf")


def test_render_with_graphviz(tmp_path):
    if viz.shutil.which("dot") is None:
        pytest.skip("Graphviz `dot` is not installed")
    src = viz.to_dot((tg.randn(2, requires_grad=True) * 2).sum())
    assert viz.render(src, tmp_path / "g.svg") == str(tmp_path / "g.svg")
    assert "<svg" in (tmp_path / "g.svg").read_text()


def test_attention_backprop_example_checks_every_gradient_and_draws(tmp_path, capsys):
    example = load_example("attention_backprop")
    report = example.main(["--out-dir", str(tmp_path), "--T", "4", "--C", "6", "--head-size", "3",
                           "--vocab", "5"])
    out = capsys.readouterr().out
    assert report.passed
    assert "softmax Jacobian" in out and "all passed" in out and f"wrote to {tmp_path}" in out
    errors = [float(line.split()[-1]) for line in out.splitlines() if line.split()[:1] and
              line.split()[0] in example.FORMULAS]
    assert len(errors) == len(example.FORMULAS) and max(errors) < 1e-6
    assert (tmp_path / "attention_graph.dot").exists()
    pytest.importorskip("matplotlib")
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert {"attention_weights.png", "attention_grads.png", "grad_norms.png"} <= set(pngs)


def test_attention_backprop_example_catches_a_planted_softmax_bug(tmp_path, capsys):
    example = load_example("attention_backprop")
    report = example.main(["--out-dir", str(tmp_path), "--T", "4", "--C", "6", "--head-size", "3",
                           "--vocab", "5", "--plant-bug"])
    assert report.first_failure.op == "Softmax" and [r.op for r in report.failures] == ["Softmax"]
    assert softmax.Softmax.backward is not example.wrong_softmax_backward  # restored
    assert "the first wrong backward is Softmax" in capsys.readouterr().out


def tiny_checkpoint(tmp_path, n_layer=2, n_head=2):
    """A checkpoint in examples/shakespeare.py's format, of an untrained tiny GPT."""
    tokenizer = CharTokenizer("First Citizen:\nBefore we proceed any further, hear me speak.")
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=n_layer, n_head=n_head,
                       n_embd=8, dropout=0.0)
    tg.manual_seed(0)
    model = GPT(config)
    for p in model.parameters():  # bigger than the 0.02 init, so the maps are not uniform
        p.data[...] = np.random.default_rng(0).standard_normal(p.shape) * 0.5
    tg.save({"model": model.state_dict(), "config": config.to_dict(), "tokenizer": tokenizer.state_dict(),
             "iter": 0}, tmp_path / "ckpt.npz")
    return model, tokenizer


def test_attention_maps_match_the_models_attention(tmp_path):
    example = load_example("attention_maps")
    model, tokenizer = tiny_checkpoint(tmp_path)
    model.eval()
    idx = tg.tensor(tokenizer.encode("First Citizen")[None, :])
    weights = example.attention_weights(model, idx)
    assert weights.shape == (2, 2, 13, 13)
    np.testing.assert_allclose(weights.sum(-1), 1, rtol=1e-5)
    assert np.all(np.triu(weights, 1) == 0)
    with tg.no_grad():  # weights @ v must be what the model's fused attention computes
        x = model.token_embedding(idx) + model.position_embedding(tg.arange(13))
        for layer, block in enumerate(model.blocks):
            h, attn = block.ln_1(x), block.attn
            q, k, v = (proj(h).reshape(1, 13, 2, 4).transpose(1, 2) for proj in (attn.query, attn.key, attn.value))
            fused = F.scaled_dot_product_attention(q, k, v, is_causal=True).numpy()[0]
            np.testing.assert_allclose(weights[layer] @ v.numpy()[0], fused, atol=1e-5)
            x = block(x)


def test_attention_maps_script_writes_a_png_per_layer(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    example = load_example("attention_maps")
    tiny_checkpoint(tmp_path, n_layer=3)
    paths = example.main(["--out-dir", str(tmp_path), "--prompt", "Before we proceed any further"])
    assert [p.name for p in paths] == ["layer0.png", "layer1.png", "layer2.png"]
    assert all(p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG" for p in paths)
    out = capsys.readouterr().out
    assert "last 16 characters" in out and "wrote 3 attention maps" in out
    with pytest.raises(SystemExit, match="unknown character 'Z'"):
        example.main(["--out-dir", str(tmp_path), "--prompt", "Zed"])
    with pytest.raises(SystemExit, match="no checkpoint"):
        example.main(["--out-dir", str(tmp_path / "missing")])
