"""The benchmark script runs (a tiny CPU run; the numbers themselves are in benchmarks/results/)."""
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_train_cpu_smoke(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_train", ROOT / "benchmarks" / "bench_train.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = "ours,torch_sdpa" if importlib.util.find_spec("torch") else "ours"
    out = tmp_path / "bench.json"
    bench.main(["--device", "cpu", "--preset", "cpu", "--steps", "2", "--warmup", "1", "--rows", rows,
                "--isolate", "no", "--out", str(out)])
    result = json.loads(out.read_text())
    names = [r["name"] for r in (result["rows"] if isinstance(result["rows"], list) else result["rows"].values())]
    assert "ours" in names and "ms/step" in capsys.readouterr().out
    if "torch_sdpa" in names:
        assert result["ratio_vs_torch_sdpa"] > 0
