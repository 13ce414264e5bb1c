"""Smoke tests of examples/shakespeare.py: trains, logs, checkpoints, resumes exactly, samples."""
import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_tf as tg

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"


def load_example():
    spec = importlib.util.spec_from_file_location("shakespeare", ROOT / "examples" / "shakespeare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def text_file(tmp_path):
    """A small corpus: the shared tiny Shakespeare's first 20k chars, or made-up verse."""
    text = SHARED.read_text()[:20_000] if SHARED.exists() else \
        "".join(f"To be, or not to be; that is question {i}!\n" for i in range(400))
    path = tmp_path / "tiny.txt"
    path.write_text(text)
    return path


def run(example, text_file, out_dir, *extra):
    example.main(["--data", str(text_file), "--out-dir", str(out_dir), "--no-progress", "--device", "cpu",
                  "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16",
                  "--batch-size", "4", "--eval-iters", "2", "--eval-interval", "3", "--dropout", "0.1",
                  "--warmup-iters", "2", "--sample-tokens", "30", *extra])


def test_trains_logs_checkpoints_and_samples(tmp_path, text_file, capsys):
    example = load_example()
    run(example, text_file, tmp_path / "a", "--max-iters", "7")
    rows = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows] == [0, 3, 6, 7]
    assert set(rows[0]) == {"iter", "train_loss", "val_loss", "tokens_per_s", "elapsed_s"}
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert (tmp_path / "a" / "ckpt.npz").exists()
    best = tg.load(tmp_path / "a" / "best.npz")
    assert best["val_loss"] == pytest.approx(min(r["val_loss"] for r in rows), abs=1e-4)
    out = capsys.readouterr().out
    assert "--- sample ---" in out and "GPT:" in out


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not tg.cuda.is_available(), reason="needs a GPU: there each step replays a captured CUDA graph"))])
def test_ctrl_c_checkpoint_then_resume_matches_an_uninterrupted_run(tmp_path, text_file, monkeypatch, device):
    example = load_example()
    run(example, text_file, tmp_path / "full", "--max-iters", "8", "--device", device)
    schedule = example.cosine_with_warmup

    def ctrl_c_during_step_4(step, *args):  # called once per training step
        if step == 4:
            os.kill(os.getpid(), signal.SIGINT)
        return schedule(step, *args)

    monkeypatch.setattr(example, "cosine_with_warmup", ctrl_c_during_step_4)
    with pytest.raises(SystemExit) as stopped:
        run(example, text_file, tmp_path / "split", "--max-iters", "8", "--device", device)
    assert stopped.value.code == 130 and tg.load(tmp_path / "split" / "ckpt.npz")["iter"] == 5
    monkeypatch.setattr(example, "cosine_with_warmup", schedule)
    run(example, text_file, tmp_path / "split", "--max-iters", "8", "--resume", "--device", device)
    full = tg.load(tmp_path / "full" / "ckpt.npz")
    split = tg.load(tmp_path / "split" / "ckpt.npz")
    assert full["iter"] == split["iter"] == 8
    for name, value in full["model"].items():
        np.testing.assert_array_equal(value.numpy(), split["model"][name].numpy(), err_msg=name)
    log_full = [json.loads(x) for x in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    log_split = [json.loads(x) for x in (tmp_path / "split" / "log.jsonl").read_text().splitlines()]
    assert [(r["iter"], r["val_loss"]) for r in log_full] == [(r["iter"], r["val_loss"]) for r in log_split]


def test_sample_only_and_missing_checkpoint(tmp_path, text_file, capsys):
    example = load_example()
    with pytest.raises(SystemExit, match="no checkpoint"):
        run(example, text_file, tmp_path / "none", "--sample-only")
    run(example, text_file, tmp_path / "b", "--max-iters", "2")
    capsys.readouterr()
    run(example, text_file, tmp_path / "b", "--sample-only", "--prompt", "To")
    header, source, sample = capsys.readouterr().out.split("\n", 2)
    assert header.startswith("GPT:") and "best.npz" in source
    assert sample.startswith("To") and len(sample) > 30


def test_a_fresh_run_never_overwrites_a_previous_one_by_accident(tmp_path, text_file):
    example = load_example()
    run(example, text_file, tmp_path / "c", "--max-iters", "2")
    before = (tmp_path / "c" / "ckpt.npz").read_bytes()
    with pytest.raises(SystemExit, match="--resume to continue"):
        run(example, text_file, tmp_path / "c", "--max-iters", "2")
    assert (tmp_path / "c" / "ckpt.npz").read_bytes() == before
    run(example, text_file, tmp_path / "c", "--max-iters", "3", "--overwrite")
    assert tg.load(tmp_path / "c" / "ckpt.npz")["iter"] == 3


def test_bad_data_path_is_a_clear_error(tmp_path):
    example = load_example()
    with pytest.raises(SystemExit, match="missing.txt"):
        example.main(["--data", str(tmp_path / "missing.txt"), "--out-dir", str(tmp_path)])


def test_cli_help_runs_as_a_script():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "shakespeare.py"), "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "--preset" in out and "--resume" in out


@pytest.mark.skipif(not tg.cuda.is_available(), reason="needs a GPU: there each step replays a captured CUDA graph")
def test_graphed_training_matches_eager_training_with_grad_clipping(tmp_path, text_file):
    """Without dropout the CUDA-graph steps and the eager ones (--no-cuda-graph) compute the same
    thing; clipping replaces the .grads, which the graph must not lose."""
    example = load_example()
    flags = ("--max-iters", "6", "--device", "cuda", "--dropout", "0", "--grad-clip", "0.5")
    run(example, text_file, tmp_path / "graph", *flags)
    run(example, text_file, tmp_path / "eager", *flags, "--no-cuda-graph")
    graph, eager = tg.load(tmp_path / "graph" / "ckpt.npz"), tg.load(tmp_path / "eager" / "ckpt.npz")
    for name, value in eager["model"].items():
        np.testing.assert_allclose(graph["model"][name].numpy(), value.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("flags, message", [(("--n-head", "3"), "divisible by n_head"),
                                            (("--prompt", "@"), "--prompt: unknown character"),
                                            (("--lr", "-1"), "learning rate"),
                                            (("--block-size", "5000"), "too short for --block-size 5000")])
def test_bad_flag_values_are_one_line_errors_before_training(tmp_path, text_file, flags, message):
    example = load_example()
    with pytest.raises(SystemExit, match=message):
        run(example, text_file, tmp_path / "d", "--max-iters", "1", *flags)
    assert not (tmp_path / "d" / "ckpt.npz").exists()


def test_cpu_training_keeps_freed_memory_in_the_heap(tmp_path, text_file, monkeypatch):
    """The example asks for it (a faster CPU step); importing tinygrad_tf does not."""
    example = load_example()
    calls = []
    monkeypatch.setattr(tg.backend, "keep_freed_memory", lambda: calls.append(True))
    run(example, text_file, tmp_path / "e", "--max-iters", "1")
    assert calls == [True]
