"""The benchmark script runs (a tiny CPU run; the numbers themselves are in benchmarks/results/)."""
import importlib.util
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

import tinygrad_tf
from tinygrad_tf import kernels

ROOT = Path(__file__).resolve().parents[1]


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_train", ROOT / "benchmarks" / "bench_train.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


@pytest.fixture
def kept(monkeypatch):
    """Calls of backend.keep_freed_memory, recorded instead of changing this process's allocator."""
    calls = []
    monkeypatch.setattr(tinygrad_tf.backend, "keep_freed_memory", lambda: calls.append(1) or True)
    return calls


def test_bench_train_cpu_smoke(tmp_path, capsys, kept):
    bench = load_bench()
    torch_rows = ",torch_sdpa,torch_lecture" if importlib.util.find_spec("torch") else ""
    out = tmp_path / "bench.json"
    bench.main(["--device", "cpu", "--preset", "cpu", "--steps", "2", "--warmup", "1",
                "--rows", "ours,ours_graph" + torch_rows, "--isolate", "no", "--out", str(out)])
    result = json.loads(out.read_text())
    names = [r["name"] for r in result["rows"]]
    assert "ours" in names and "ms/step" in capsys.readouterr().out
    assert "ours_graph" not in names  # a CUDA graph row only where the device is a GPU
    assert kept == [1] and result["keep_freed_memory"] is True  # on the CPU, before any row
    if torch_rows:
        numpy_row = ["ours:-numba"] if importlib.util.find_spec("numba") else []  # with numba: both CPU paths
        assert names == ["ours", *numpy_row, "torch_sdpa", "torch_lecture"] and result["ratio_vs_torch_sdpa"] > 0
        loss0 = [r["loss0"] for r in result["rows"]]  # the same weights and batch in all three models
        assert max(loss0) - min(loss0) < 1e-4, loss0


def test_bench_train_ours_runs_without_torch(tmp_path, monkeypatch, kept):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    out = tmp_path / "bench.json"
    load_bench().main(["--device", "cpu", "--preset", "cpu", "--steps", "1", "--warmup", "0", "--rows", "ours",
                       "--isolate", "no", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["versions"]["torch"] is None and "ms_median" in result["rows"][0]


def test_bench_train_kernel_variants(tmp_path, kept):
    bench = load_bench()
    ablate = bench.parse_args(["--device", "cpu", "--ablate"])
    assert bench.ours_variants(ablate) == ["all", "none"] + [f"-{n}" for n in kernels.NAMES]
    out = tmp_path / "bench.json"
    bench.main(["--device", "cpu", "--preset", "cpu", "--steps", "1", "--warmup", "0", "--rows", "ours",
                "--ours-variants", "none,-matmul,attention,-nonsense", "--isolate", "no", "--out", str(out)])
    rows = {r["name"]: r for r in json.loads(out.read_text())["rows"]}
    assert list(rows) == ["ours:none", "ours:-matmul", "ours:attention", "ours:-nonsense"]
    assert all("ms_median" in rows[n] for n in ("ours:none", "ours:-matmul", "ours:attention"))
    assert rows["ours:-nonsense"]["skipped"].startswith("ValueError: unknown kernel")
    assert kernels.enabled("attention") and kernels.enabled("matmul")  # every kernel on again afterwards


def test_bench_train_repeat_pools_the_steps_of_every_repeat(tmp_path, kept):
    out = tmp_path / "bench.json"
    load_bench().main(["--device", "cpu", "--preset", "cpu", "--steps", "3", "--warmup", "1", "--rows", "ours",
                       "--repeat", "2", "--isolate", "no", "--out", str(out)])
    row = json.loads(out.read_text())["rows"][0]
    assert row["steps"] == 6 and len(row["times_ms"]) == 6 and len(row["repeat_medians_ms"]) == 2
    assert row["ms_median"] == statistics.median(row["times_ms"])
    assert min(row["repeat_medians_ms"]) <= row["ms_median"] <= max(row["repeat_medians_ms"])


def test_the_gemm_probe_prints_its_rows_or_names_what_it_needs():
    """benchmarks/probe_cpu_gemms.py (the NOTES' 16-core GEMM numbers): a row per GEMM of the preset
    where numba, scipy and threadpoolctl are installed, else one line naming the missing ones; a bad
    preset is one line too."""
    probe = [sys.executable, str(ROOT / "benchmarks" / "probe_cpu_gemms.py")]
    run = subprocess.run(probe + ["--presets", "cpu", "--calls", "2"], capture_output=True, text=True, timeout=300)
    missing = [m for m in ("numba", "scipy", "threadpoolctl") if importlib.util.find_spec(m) is None]
    if missing:
        assert run.returncode == 2 and f"needs {', '.join(missing)}" in run.stderr.splitlines()[-1], run.stderr
        return
    assert run.returncode == 0 and "OpenBLAS Warning" not in run.stderr, run.stderr
    shapes = [line.strip().split("  ")[0] for line in run.stdout.splitlines()[1:]]
    linear = ((128, 384), (128, 128), (128, 512), (512, 128), (128, 65))
    assert shapes == [f"cpu linear 768x{k}->{o}" for k, o in linear] + ["cpu attention q k^T 48 x 64x32"]
    bad = subprocess.run(probe + ["--presets", "huge"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--presets: unknown ['huge']" in bad.stderr.splitlines()[-1]


def test_the_one_pool_probe_prints_its_table_or_names_what_it_needs():
    """benchmarks/probe_one_pool.py (the NOTES' evidence for a one-pool CPU path): its table where
    numba, scipy and threadpoolctl are installed, else one line naming the missing ones."""
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "probe_one_pool.py")], capture_output=True,
                         text=True, timeout=300)
    missing = [m for m in ("numba", "scipy", "threadpoolctl") if importlib.util.find_spec(m) is None]
    if missing:
        assert run.returncode == 2 and f"needs {', '.join(missing)}" in run.stderr.splitlines()[-1], run.stderr
    else:
        assert run.returncode == 0, run.stderr
        assert [line.split()[:5] for line in run.stdout.splitlines()[1:]] == [
            [str(m), "x", str(k), "x", str(n)] for m, k, n in ((768, 128, 128), (768, 128, 512), (768, 512, 128))]
