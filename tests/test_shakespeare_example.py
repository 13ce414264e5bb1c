"""Smoke tests of examples/shakespeare.py: trains, logs, checkpoints, resumes exactly, samples."""
import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tinygrad_tf as tg
import tinygrad_tf.distributed as dist

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "shakespeare.py"
CORPUS = os.environ.get("TINYGRAD_TF_DATA")  # a local tinyshakespeare.txt, if the environment names one


def load_example():
    spec = importlib.util.spec_from_file_location("shakespeare", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def text_file(tmp_path):
    """A small corpus: the first 20k chars of $TINYGRAD_TF_DATA when it is set, else made-up verse."""
    text = Path(CORPUS).read_text()[:20_000] if CORPUS else \
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
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"],
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


# --- every user error is one line, before any work ------------------------------------------
def one_line_error(stopped):
    """The message of a SystemExit from sys.exit("error: ..."), checked to be one line."""
    message = str(stopped.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    return message


@pytest.mark.parametrize("flags, message", [
    (("--lr", "nan"), "--lr must be a positive, finite learning rate, got nan"),
    (("--lr", "inf"), "--lr must be a positive"),
    (("--lr", "0"), "--lr must be a positive"),
    (("--min-lr", "-1"), "--min-lr must be >= 0"),
    (("--beta1", "1"), r"--beta1 must be in \[0, 1\)"),
    (("--beta2", "nan"), r"--beta2 must be in \[0, 1\)"),
    (("--dropout", "1"), r"--dropout must be in \[0, 1\)"),
    (("--weight-decay", "-0.1"), "--weight-decay must be >= 0"),
    (("--grad-clip", "nan"), "--grad-clip must be >= 0 and finite"),
    (("--temperature", "nan"), "--temperature must be positive and finite"),
    (("--temperature", "0"), "--temperature must be positive"),
    (("--top-k", "0"), "--top-k must be at least 1"),
    (("--seed", "-1"), "--seed must be in"),
    (("--max-iters", "-1"), "--max-iters must be >= 0"),
    (("--batch-size", "0"), "--batch-size must be positive"),
    (("--sample-tokens", "-5"), "--sample-tokens must be >= 0"),
    (("--prompt", ""), "--prompt must not be empty"),
    (("--device", "cuda:99"), "--device: .*cuda:99"),
    (("--device", "tpu"), "--device: unknown device 'tpu'"),
])
def test_bad_values_are_one_line_errors_before_any_work(tmp_path, text_file, capsys, flags, message):
    example = load_example()
    with pytest.raises(SystemExit, match=message) as stopped:
        run(example, text_file, tmp_path / "d", "--max-iters", "1", *flags)
    one_line_error(stopped)
    assert not (tmp_path / "d").exists() and "GPT:" not in capsys.readouterr().out


@pytest.mark.parametrize("flags", [("--seed", "x"), ("--resume", "--sample-only"), ("--dtype", "int32")])
def test_flags_argparse_rejects_exit_with_status_2(tmp_path, text_file, capsys, flags):
    example = load_example()
    with pytest.raises(SystemExit) as stopped:
        run(example, text_file, tmp_path / "d", *flags)
    assert stopped.value.code == 2 and "error: argument" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_an_out_dir_that_is_a_file_or_not_writable_stops_before_any_work(tmp_path, text_file, monkeypatch, capsys):
    example = load_example()
    a_file = tmp_path / "file"
    a_file.write_text("")
    for out_dir in (a_file, a_file / "below"):
        with pytest.raises(SystemExit, match=f"{a_file} is not a directory") as stopped:
            run(example, text_file, out_dir, "--max-iters", "1")
        one_line_error(stopped)
    locked = tmp_path / "locked"
    locked.mkdir()
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != locked and access(path, mode, **kw))
    with pytest.raises(SystemExit, match=f"{locked} is not writable") as stopped:
        run(example, text_file, locked / "run", "--max-iters", "1")
    one_line_error(stopped)
    assert list(locked.iterdir()) == [] and "GPT:" not in capsys.readouterr().out


@pytest.mark.parametrize("text, block_size", [("a", "1"), ("abcdefghijklmnopqrst", "2")])
def test_block_size_is_checked_against_both_splits(tmp_path, text, block_size):
    """The validation split, the last 10%, is the shorter one; a one-character text has no training split."""
    example = load_example()
    data = tmp_path / "short.txt"
    data.write_text(text)
    with pytest.raises(SystemExit, match=f"too short for --block-size {block_size}: its training split .* "
                                         f"validation split") as stopped:
        example.main(["--data", str(data), "--out-dir", str(tmp_path / "d"), "--block-size", block_size,
                      "--prompt", "a", "--max-iters", "0", "--no-progress"])
    one_line_error(stopped)
    assert not (tmp_path / "d").exists()


# --- checkpoints: resuming, contradicting flags, corrupt files ------------------------------
def test_resume_takes_the_checkpoints_flags_and_refuses_contradicting_ones(tmp_path, text_file, capsys):
    example = load_example()
    out_dir = tmp_path / "r"
    run(example, text_file, out_dir, "--max-iters", "4", "--lr", "0.001")
    before = (out_dir / "ckpt.npz").read_bytes()
    capsys.readouterr()
    resume = ["--data", str(text_file), "--out-dir", str(out_dir), "--no-progress", "--device", "cpu", "--resume",
              "--sample-tokens", "10"]
    for flags, message in [(("--n-layer", "2"), "--n-layer 2 contradicts .*ckpt.npz, whose run has n_layer=1"),
                           (("--dropout", "0.2"), "--dropout 0.2 contradicts .* dropout=0.1"),
                           (("--lr", "0.002"), "--lr 0.002 contradicts .* lr=0.001"),
                           (("--dtype", "float64"), "--dtype float64 contradicts .* dtype=float32"),
                           (("--preset", "seed"), "--preset seed contradicts .* preset=cpu"),
                           (("--max-iters", "3"), "--max-iters 3 is below the iteration 4 of .*ckpt.npz")]:
        with pytest.raises(SystemExit, match=message) as stopped:
            example.main(resume + list(flags))
        one_line_error(stopped)
    assert (out_dir / "ckpt.npz").read_bytes() == before and "GPT:" not in capsys.readouterr().out
    example.main(resume + ["--max-iters", "9"])  # only the length changes; the rest is the checkpoint's
    rows = [json.loads(line) for line in (out_dir / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows] == [0, 3, 4, 6, 9]  # its --eval-interval 3, not the preset's 500
    args = tg.load(out_dir / "ckpt.npz")["args"]
    assert (args["n_layer"], args["n_embd"], args["lr"], args["eval_iters"], args["batch_size"]) == (1, 16, 0.001, 2, 4)
    assert args["max_iters"] == 9 and args["preset"] == "cpu"


def test_sample_only_takes_the_model_from_the_checkpoint_and_sampling_flags_from_the_user(tmp_path, text_file,
                                                                                         capsys):
    example = load_example()
    run(example, text_file, tmp_path / "s", "--max-iters", "1")
    sample_only = ["--out-dir", str(tmp_path / "s"), "--device", "cpu", "--sample-only", "--sample-tokens", "20"]
    with pytest.raises(SystemExit, match="--n-embd 32 contradicts .*best.npz, whose run has n_embd=16"):
        example.main(sample_only + ["--n-embd", "32"])
    capsys.readouterr()
    example.main(sample_only + ["--seed", "7", "--temperature", "0.5", "--top-k", "3", "--dtype", "float64"])
    header = capsys.readouterr().out.splitlines()[0]
    assert "1 layers, 2 heads, n_embd 16, block 16" in header and "float64" in header


def test_corrupt_or_foreign_checkpoints_are_one_line_errors_naming_the_file(tmp_path, text_file, capsys):
    example = load_example()
    out_dir = tmp_path / "x"
    run(example, text_file, out_dir, "--max-iters", "1")
    ckpt, best = out_dir / "ckpt.npz", out_dir / "best.npz"
    good = tg.load(ckpt)

    def plain_npz(path):
        with open(path, "wb") as f:
            np.savez(f, a=np.zeros(3))

    def saving(state):
        return lambda path: tg.save(state, path)

    cases = [(lambda path: path.write_bytes(b"not a zip"), "cannot load .*ckpt.npz"),
             (plain_npz, "cannot load .*ckpt.npz.*not a tinygrad_tf checkpoint"),
             (saving({"weights": [1, 2]}), "ckpt.npz is not a checkpoint of this example: it lacks model"),
             (saving({**good, "model": {}}), "ckpt.npz is not a checkpoint .*Missing key"),
             (saving({**good, "optimizer": {}}), "ckpt.npz is not a checkpoint .*no entry 'param_groups'"),
             (saving({**good, "tokenizer": {"chars": "ba"}}), "ckpt.npz .*sorted"),
             (saving({**good, "config": {"n_layer": "four"}}), "ckpt.npz .*n_layer must be"),
             (saving({**good, "args": [1]}), "ckpt.npz .*'args' entry is not a dict"),
             (saving({**good, "args": {**good["args"], "lr": -1.0}}), "ckpt.npz: --lr must be")]
    for write, message in cases:
        write(ckpt)
        with pytest.raises(SystemExit, match=message) as stopped:
            run(example, text_file, out_dir, "--resume")
        one_line_error(stopped)
    best.write_bytes(b"")
    with pytest.raises(SystemExit, match="cannot load .*best.npz") as stopped:
        example.main(["--out-dir", str(out_dir), "--sample-only"])
    one_line_error(stopped)
    best.unlink()
    best.mkdir()  # not a file at all
    with pytest.raises(SystemExit, match="best.npz.*directory") as stopped:
        example.main(["--out-dir", str(out_dir), "--sample-only"])
    one_line_error(stopped)
    assert "Traceback" not in capsys.readouterr().err


# --- Ctrl-C and SIGTERM ----------------------------------------------------------------------
def signal_at_step(example, monkeypatch, step, *signums):
    """Send `signums` to this process while the training step `step` runs."""
    schedule = example.cosine_with_warmup

    def sending(it, *args):  # called once per training step
        if it == step:
            for signum in signums:
                os.kill(os.getpid(), signum)
        return schedule(it, *args)
    monkeypatch.setattr(example, "cosine_with_warmup", sending)


def test_sigterm_saves_a_checkpoint_like_ctrl_c(tmp_path, text_file, monkeypatch, capsys):
    example = load_example()
    handler = signal.getsignal(signal.SIGTERM)
    signal_at_step(example, monkeypatch, 4, signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:
        run(example, text_file, tmp_path / "t", "--max-iters", "8")
    assert stopped.value.code == 128 + signal.SIGTERM
    assert "stopped by SIGTERM: checkpoint at iteration 5" in capsys.readouterr().out
    ckpt = tg.load(tmp_path / "t" / "ckpt.npz")
    assert ckpt["iter"] == 5 and not ckpt["evaluated"]
    assert signal.getsignal(signal.SIGTERM) == handler  # the training loop's handler is gone


def test_ctrl_c_during_the_first_evaluation_stops_at_once_and_resume_matches(tmp_path, text_file, monkeypatch):
    example = load_example()
    run(example, text_file, tmp_path / "full", "--max-iters", "5")
    evaluate = example.evaluate

    def ctrl_c_then_evaluate(*args):
        os.kill(os.getpid(), signal.SIGINT)
        return evaluate(*args)

    monkeypatch.setattr(example, "evaluate", ctrl_c_then_evaluate)
    with pytest.raises(SystemExit) as stopped:
        run(example, text_file, tmp_path / "split", "--max-iters", "5")
    ckpt = tg.load(tmp_path / "split" / "ckpt.npz")
    assert stopped.value.code == 130 and ckpt["iter"] == 0 and not ckpt["evaluated"]
    assert not (tmp_path / "split" / "log.jsonl").exists()  # the cut-short evaluation logged nothing
    monkeypatch.setattr(example, "evaluate", evaluate)
    run(example, text_file, tmp_path / "split", "--max-iters", "5", "--resume")
    log_full, log_split = ((tmp_path / name / "log.jsonl").read_text().splitlines() for name in ("full", "split"))
    assert [json.loads(x)["val_loss"] for x in log_full] == [json.loads(x)["val_loss"] for x in log_split]


def test_a_second_ctrl_c_stops_at_once(tmp_path, text_file, monkeypatch):
    example = load_example()
    handler = signal.getsignal(signal.SIGINT)
    signal_at_step(example, monkeypatch, 4, signal.SIGINT, signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):  # the script's top level makes it "interrupted" and status 130
        run(example, text_file, tmp_path / "k", "--max-iters", "8")
    assert tg.load(tmp_path / "k" / "ckpt.npz")["iter"] == 3  # the last evaluation's checkpoint
    assert signal.getsignal(signal.SIGINT) == handler


def run_script(code, **kw):
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, **kw)


def test_ctrl_c_while_importing_is_one_line_and_status_130(tmp_path):
    (tmp_path / "tqdm.py").write_text("raise KeyboardInterrupt\n")  # as if Ctrl-C came while imports run
    done = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert (done.returncode, done.stderr) == (130, "interrupted\n")


def test_ctrl_c_while_sampling_at_the_end_is_one_line_and_status_130(tmp_path, text_file):
    flags = ["--data", str(text_file), "--out-dir", str(tmp_path / "z"), "--no-progress", "--device", "cpu",
             "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
             "--eval-iters", "2", "--max-iters", "1"]
    done = run_script("import runpy, sys\n"
                      "from tinygrad_tf.models.gpt import GPT\n"
                      "def ctrl_c(*args, **kwargs):\n"
                      "    raise KeyboardInterrupt\n"
                      "GPT.generate = ctrl_c\n"
                      f"sys.argv = ['shakespeare.py', *{flags!r}]\n"
                      f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n")
    assert (done.returncode, done.stderr) == (130, "interrupted\n")
    assert "--- sample ---" in done.stdout and tg.load(tmp_path / "z" / "ckpt.npz")["iter"] == 1


# --- the first minutes of a new user -------------------------------------------------------
def test_the_main_command_trains_without_ml_dtypes(tmp_path, text_file):
    """The README's main command installs `.[plot,cpu]`, without ml_dtypes (bfloat16's package): a
    float32 run on the CPU must not need it. An ml_dtypes that fails to import, first on the path."""
    (tmp_path / "ml_dtypes").mkdir()
    (tmp_path / "ml_dtypes" / "__init__.py").write_text("raise ImportError('hidden by test_shakespeare_example')\n")
    flags = ["--data", str(text_file), "--out-dir", str(tmp_path / "m"), "--no-progress", "--device", "cpu",
             "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
             "--eval-iters", "2", "--max-iters", "2", "--sample-tokens", "5"]
    done = subprocess.run([sys.executable, str(SCRIPT), *flags], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert tg.load(tmp_path / "m" / "ckpt.npz")["iter"] == 2


def test_sample_only_needs_no_data_file(tmp_path, text_file, monkeypatch, capsys):
    example = load_example()
    run(example, text_file, tmp_path / "n", "--max-iters", "1")
    monkeypatch.delenv("TINYGRAD_TF_DATA", raising=False)

    def no_text(*args, **kwargs):
        raise AssertionError("--sample-only read or downloaded the text")
    monkeypatch.setattr(example, "load_text", no_text)
    capsys.readouterr()
    example.main(["--out-dir", str(tmp_path / "n"), "--device", "cpu", "--sample-only", "--sample-tokens", "20"])
    assert "best.npz (iteration" in capsys.readouterr().out


def test_sample_only_on_an_empty_out_dir_names_both_checkpoints(tmp_path):
    example = load_example()
    with pytest.raises(SystemExit, match="neither best.npz nor ckpt.npz") as stopped:
        example.main(["--out-dir", str(tmp_path), "--sample-only"])
    one_line_error(stopped)


def test_help_shows_the_presets_values_and_a_line_for_every_flag():
    parser = load_example().make_parser()
    assert [a.option_strings for a in parser._actions if not a.help] == []
    text = parser.format_help()
    assert "seed: n_layer=6, n_head=6, n_embd=384, block_size=256" in text and "the lecture's model" in text
    assert "cpu: n_layer=4, n_head=4, n_embd=128, block_size=64" in text
    assert "default: None" not in text
    data_help = text[text.index("\n  --data DATA"):text.index("\n  --device DEVICE")]
    assert data_help.count("default") == 1


def test_the_first_evaluation_is_announced_and_logs_no_speed(tmp_path, text_file, capsys):
    example = load_example()
    run(example, text_file, tmp_path / "f", "--max-iters", "3")
    out = capsys.readouterr().out
    assert out.index("evaluating at iteration 0") < out.index("iter 0:")
    assert "iter 0: train" in out and "tokens/s" not in out.split("iter 0:")[1].splitlines()[0]
    rows = [json.loads(line) for line in (tmp_path / "f" / "log.jsonl").read_text().splitlines()]
    assert rows[0]["tokens_per_s"] is None and rows[1]["tokens_per_s"] > 0


# --- several processes: launched with one on the CPU, and two faked (NCCL needs the GPUs) ------------
def small_run_flags(text_file, out_dir, *extra):
    """run()'s flags, for the script started as a program."""
    return ["--data", str(text_file), "--out-dir", str(out_dir), "--no-progress", "--device", "cpu",
            "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16",
            "--batch-size", "4", "--eval-iters", "2", "--eval-interval", "3", "--dropout", "0.1",
            "--warmup-iters", "2", "--sample-tokens", "30", *extra]


def launch(script, *args):
    """Start the script as one process under the launcher."""
    return subprocess.run([sys.executable, "-m", "tinygrad_tf.distributed.run", "--nproc-per-node", "1",
                           str(script), *args], cwd=ROOT, capture_output=True, text=True, timeout=180)


def assert_same_run(a, b):
    """Two out-dirs hold the same training: the logged losses, the weights, the optimizer and sampler states."""
    log_a, log_b = ([(r["iter"], r["train_loss"], r["val_loss"]) for r in map(json.loads, (d / "log.jsonl")
                    .read_text().splitlines())] for d in (a, b))
    assert log_a == log_b
    ckpt_a, ckpt_b = tg.load(a / "ckpt.npz"), tg.load(b / "ckpt.npz")
    assert ckpt_a["iter"] == ckpt_b["iter"] and ckpt_a["sampler"] == ckpt_b["sampler"]
    assert list(ckpt_a["model"]) == list(ckpt_b["model"])  # the GPT's names: no "module." prefix
    for name, value in ckpt_a["model"].items():
        np.testing.assert_array_equal(value.numpy(), ckpt_b["model"][name].numpy(), err_msg=name)
    state_a, state_b = ckpt_a["optimizer"]["state"], ckpt_b["optimizer"]["state"]
    assert list(state_a) == list(state_b)
    for index, slots in state_a.items():
        assert slots["step"] == state_b[index]["step"]
        for key in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(slots[key].numpy(), state_b[index][key].numpy())


def test_launched_with_one_process_trains_logs_and_samples_like_a_plain_run(tmp_path, text_file, capsys):
    example = load_example()
    run(example, text_file, tmp_path / "plain", "--max-iters", "7")
    plain_sample = capsys.readouterr().out.split("--- sample ---")[1]
    done = launch(SCRIPT, *small_run_flags(text_file, tmp_path / "launched", "--max-iters", "7"))
    assert done.returncode == 0, done.stderr
    assert "; 1 process: global batch 1 x 4 = 4" in done.stdout.splitlines()[0]
    assert done.stdout.split("--- sample ---")[1] == plain_sample
    assert_same_run(tmp_path / "plain", tmp_path / "launched")
    assert tg.load(tmp_path / "launched" / "ckpt.npz")["args"]["world_size"] == 1


def test_launched_ctrl_c_saves_a_checkpoint_and_resume_continues_exactly(tmp_path, text_file):
    """Ctrl-C reaches the launcher, which passes it on to the rank; the rank stops after the step it
    arrived in, and a launched --resume ends where an uninterrupted plain run does."""
    example = load_example()
    run(example, text_file, tmp_path / "full", "--max-iters", "8")
    wrapper = tmp_path / "ctrl_c_at_step_4.py"
    wrapper.write_text(textwrap.dedent(f"""
        import importlib.util, os, signal, sys, time
        spec = importlib.util.spec_from_file_location("shakespeare", {str(SCRIPT)!r})
        example = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(example)
        schedule = example.cosine_with_warmup

        def ctrl_c_at_step_4(step, *args):
            if step == 4:
                os.kill(os.getppid(), signal.SIGINT)  # Ctrl-C at the terminal reaches the launcher only
                time.sleep(2)  # meanwhile the launcher passes it on to this process
            return schedule(step, *args)

        example.cosine_with_warmup = ctrl_c_at_step_4
        example.main(sys.argv[1:])
        """))
    split = tmp_path / "split"
    stopped = launch(wrapper, *small_run_flags(text_file, split, "--max-iters", "8"))
    assert stopped.returncode == 130, stopped.stderr
    assert "interrupted: checkpoint at iteration 5" in stopped.stdout
    ckpt = tg.load(split / "ckpt.npz")
    assert ckpt["iter"] == 5 and not ckpt["evaluated"]
    resumed = launch(SCRIPT, *small_run_flags(text_file, split, "--max-iters", "8", "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout
    assert_same_run(tmp_path / "full", split)


def test_each_rank_trains_on_its_own_rows_of_the_global_batch():
    """N ranks see exactly the batches of one process with N times the batch, and share one sampler state."""
    example = load_example()
    data = np.arange(1000) % 50
    whole = example.BatchSampler(data, 8, 16, seed=5)
    ranks = [example.RankBatches(data, 4, 16, 5, r, 2) for r in range(2)]
    for _ in range(3):
        x, y = whole.sample()
        parts = [r.sample() for r in ranks]
        np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), x)
        np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), y)
    assert ranks[0].state_dict() == ranks[1].state_dict() == whole.state_dict()
    alone, plain = example.RankBatches(data, 4, 16, 5), example.BatchSampler(data, 4, 16, seed=5)
    np.testing.assert_array_equal(alone.sample()[0], plain.sample()[0])


class TwoRanks:
    """Stands in for a process group of two ranks on the CPU, as seen by one of them: the collectives
    leave this rank's values as they are (the other rank sends the same), except that the stop vote
    (all_reduce MAX) also sees the other rank's signal once `peer_signal` is set."""

    def __init__(self, rank):
        self.rank, self.world_size, self.local_rank, self.device = rank, 2, rank, "cpu"
        self.ops, self.peer_signal = [], 0

    def all_reduce(self, array, op):
        self.ops.append(op)
        if op == "max":
            array[...] = np.maximum(array, self.peer_signal)

    def broadcast(self, array, src):
        self.ops.append("broadcast")

    def barrier(self):
        self.ops.append("barrier")

    def destroy(self):
        self.ops.append("destroy")


def as_rank_of_two(example, monkeypatch, rank):
    """Run main() as rank `rank` of two launched processes, on the CPU."""
    group = TwoRanks(rank)
    for name, value in (("RANK", rank), ("LOCAL_RANK", rank), ("WORLD_SIZE", 2)):
        monkeypatch.setenv(name, str(value))
    monkeypatch.setattr(example, "device_of_this_rank", lambda args: "cpu")  # two ranks need GPUs, here the CPU
    monkeypatch.setattr(dist, "init_process_group", lambda backend: setattr(dist._Default, "group", group))
    return group


def test_as_two_ranks_rank_0_alone_prints_logs_and_saves_the_unwrapped_model(tmp_path, text_file, monkeypatch,
                                                                              capsys):
    example = load_example()
    group = as_rank_of_two(example, monkeypatch, 1)
    run(example, text_file, tmp_path / "r1", "--max-iters", "4")
    assert not (tmp_path / "r1").exists() and capsys.readouterr().out == ""
    assert "broadcast" in group.ops and group.ops[-1] == "destroy"  # DistributedDataParallel: rank 0's weights
    assert group.ops.count("avg") == 4 + 3  # a gradient bucket in each of 4 steps, the losses of 3 evaluations
    assert not dist.is_initialized()

    group = as_rank_of_two(example, monkeypatch, 0)
    run(example, text_file, tmp_path / "r0", "--max-iters", "4")
    out = capsys.readouterr().out
    assert "; 2 processes: global batch 2 x 4 = 8" in out.splitlines()[0] and "--- sample ---" in out
    rows = [json.loads(line) for line in (tmp_path / "r0" / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows] == [0, 3, 4]
    ckpt = tg.load(tmp_path / "r0" / "ckpt.npz")
    assert ckpt["args"]["world_size"] == 2 and "rank" not in ckpt["args"]
    assert not any(name.startswith("module.") for name in ckpt["model"])
    assert not dist.is_initialized()

    monkeypatch.delenv("WORLD_SIZE")  # resumed by one process: another global batch, so refused
    with pytest.raises(SystemExit, match="trained by 2 process.es. and this run has 1") as stopped:
        run(example, text_file, tmp_path / "r0", "--max-iters", "6", "--resume")
    one_line_error(stopped)


def test_as_two_ranks_a_signal_on_the_other_rank_stops_this_one_at_the_same_iteration(tmp_path, text_file,
                                                                                    monkeypatch, capsys):
    example = load_example()
    group = as_rank_of_two(example, monkeypatch, 0)
    schedule = example.cosine_with_warmup

    def other_rank_gets_ctrl_c_at_step_4(step, *args):
        if step == 4:
            group.peer_signal = signal.SIGINT
        return schedule(step, *args)

    monkeypatch.setattr(example, "cosine_with_warmup", other_rank_gets_ctrl_c_at_step_4)
    with pytest.raises(SystemExit) as stopped:
        run(example, text_file, tmp_path / "v", "--max-iters", "8")
    assert stopped.value.code == 130 and "barrier" in group.ops and group.ops[-1] == "destroy"
    assert "interrupted: checkpoint at iteration 5" in capsys.readouterr().out
    assert tg.load(tmp_path / "v" / "ckpt.npz")["iter"] == 5


def test_launcher_refusals_are_one_line_errors(tmp_path, text_file, monkeypatch):
    example = load_example()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    for flags, message in [(("--device", "cpu"), "--device cpu: the launcher's 2 processes train on one GPU each"),
                           (("--device", "cuda:0"), "--device cuda:0: .* here cuda:1; pass --device cuda"),
                           (("--sample-only",), "--sample-only writes one sample: run it without the launcher")]:
        with pytest.raises(SystemExit, match=message) as stopped:
            example.main(["--data", str(text_file), "--out-dir", str(tmp_path / "l"), *flags])
        one_line_error(stopped)
    assert not (tmp_path / "l").exists()


def test_help_says_the_global_batch_is_per_process_times_processes():
    text = " ".join(load_example().make_parser().format_help().split())
    assert "global batch is batch_size x the number of processes" in text
