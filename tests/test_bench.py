"""The benchmark script runs (a tiny CPU run; the numbers themselves are in benchmarks/results/)."""
import importlib.util
import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_train_cpu_smoke(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_train", ROOT / "benchmarks" / "bench_train.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = "ours,ours_graph,torch_sdpa" if importlib.util.find_spec("torch") else "ours,ours_graph"
    out = tmp_path / "bench.json"
    bench.main(["--device", "cpu", "--preset", "cpu", "--steps", "2", "--warmup", "1", "--rows", rows,
                "--isolate", "no", "--out", str(out)])
    result = json.loads(out.read_text())
    names = [r["name"] for r in (result["rows"] if isinstance(result["rows"], list) else result["rows"].values())]
    assert "ours" in names and "ms/step" in capsys.readouterr().out
    assert "ours_graph" not in names  # a CUDA graph row only where the device is a GPU
    if "torch_sdpa" in names:
        assert result["ratio_vs_torch_sdpa"] > 0


def test_bench_train_repeat_pools_the_steps_of_every_repeat(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_train", ROOT / "benchmarks" / "bench_train.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    bench.main(["--device", "cpu", "--preset", "cpu", "--steps", "3", "--warmup", "1", "--rows", "ours",
                "--repeat", "2", "--isolate", "no", "--out", str(out)])
    row = json.loads(out.read_text())["rows"][0]
    assert row["steps"] == 6 and len(row["times_ms"]) == 6 and len(row["repeat_medians_ms"]) == 2
    assert row["ms_median"] == statistics.median(row["times_ms"])
    assert min(row["repeat_medians_ms"]) <= row["ms_median"] <= max(row["repeat_medians_ms"])
