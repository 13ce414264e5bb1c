"""benchmarks/amp_parity.py: our bf16 autocast GPT steps against PyTorch's, from the same weights
(the tolerance and why: the script's docstring). On the CPU here a tiny GPT; on a GPU machine also
"cuda" (the seed GPT's run is in benchmarks/results/amp-parity-*.json)."""
import argparse
import sys
from pathlib import Path

import pytest

import tinygrad_tf as tg

pytest.importorskip("ml_dtypes")
pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: its benchmarks/ scripts, as they run
from benchmarks import amp_parity as parity  # noqa: E402


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if tg.cuda.is_available() else []))
def test_bf16_gpt_steps_match_torch_within_bf16s_own_error(device):
    cfg = parity.SIZES["tiny"]
    args = argparse.Namespace(seed=3, data=None)
    batches, vocab = parity.make_batches(args, cfg, n=parity.STEPS)
    result = parity.compare(cfg, parity.initial_weights(args, cfg, vocab), batches, vocab, device)
    assert result["passed"], (result["worst_param"], result["worst_ratio"], result["loss_ours_vs_torch_bf16"],
                              result["loss_yardstick"])
    # bf16 really ran (its losses are not float32's), and in float32 the two agree far more closely
    # than bf16 agrees with float32 (whole model: Adam's sign flips on tiny gradients move a few weights
    # by lr in either precision)
    assert result["losses"]["ours_bf16"] != result["losses"]["ours_fp32"]
    assert result["loss_ours_vs_torch_fp32"] < 0.1 * result["loss_yardstick"]
    fp32 = sum(r["ours_vs_torch_fp32"] ** 2 for r in result["params"]) ** 0.5
    assert fp32 < 0.25 * sum(r["yardstick"] ** 2 for r in result["params"]) ** 0.5


def test_a_bad_device_is_one_line():
    if tg.cuda.is_available():
        pytest.skip("a GPU is visible here")
    with pytest.raises(SystemExit):
        parity.parse_args(["--device", "cuda"])
