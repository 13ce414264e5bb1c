#!/usr/bin/env python3
"""bf16 autocast parity with PyTorch: 10 AdamW steps of our GPT and of the same GPT in torch
(benchmarks/torch_models.SdpaGPT), from the same weights on the same batches.

    python benchmarks/amp_parity.py --device cuda                  # seed GPT on a GPU
    python benchmarks/amp_parity.py --device cpu --preset tiny

Four runs: ours and torch's, each in float32 and under autocast(device, bfloat16) with float32
weights. The tolerance comes from the same run. bfloat16 keeps 8 significant bits, and two
correct bf16 steps round in different places (a GEMM's summation order, which ops a library
fuses), so they cannot agree bit for bit; what they can do is agree with each other as closely
as bf16 agrees with float32. The yardstick is torch's own bf16 error: how far torch's bf16 run
lands from torch's float32 run. Two independent errors of that size are sqrt(2) times as far
from each other, so ours passes when its distance to torch's bf16 run is at most 2 yardsticks,
- for the loss at every step: |ours - torch| <= 2 * max over steps |torch bf16 - torch fp32|;
- for every parameter after the 10 steps: ||ours - torch|| <= 2 * ||torch bf16 - torch fp32||
  (norms of the whole tensor; Adam moves every weight by about lr a step, so a weight whose
  gradient is near zero can flip its step's sign in either run: a norm, not a max). One
  parameter's yardstick is a single sample of a noisy distance (on the H200 one bias's torch
  bf16 run landed 5x nearer its float32 run than the median parameter's did), so it is
  floored at the median over the model's parameters of yardstick / distance moved, times the
  parameter's distance moved;
- for all parameters as one vector: the same, without a floor.
The float32 pair is reported beside it (ours vs torch in float32 agree to float32 rounding).
Dropout is 0 so that the runs are deterministic. Writes JSON (--out) and prints a table last.
"""
import argparse
import importlib.util
import json
import math
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tinygrad_tf as tg  # noqa: E402
from benchmarks.bench_train import PRESETS, initial_weights, make_batches, versions  # noqa: E402
from tinygrad_tf.models.gpt import GPT, GPTConfig  # noqa: E402

SIZES = dict(PRESETS, tiny=dict(n_layer=2, n_head=2, n_embd=32, block_size=16, batch_size=4, dropout=0.0))
STEPS = 10
LR = 1e-3
FACTOR = 2.0  # how many yardsticks ours may be from torch's bf16 run (two independent errors: sqrt(2))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    p.add_argument("--preset", choices=sorted(SIZES), default=None, help="default: seed on cuda, tiny on cpu")
    p.add_argument("--data", default=None, help="tinyshakespeare.txt to sample batches from (default: random tokens)")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--out", default=None, help="JSON path (default: print only)")
    args = p.parse_args(argv)
    args.preset = args.preset or ("seed" if args.device == "cuda" else "tiny")
    missing = [name for name in ("torch", "ml_dtypes") if importlib.util.find_spec(name) is None]
    if missing:
        p.error(f"needs {' and '.join(missing)} (pip install torch ml_dtypes)")
    if args.device == "cuda" and not tg.cuda.is_available():
        p.error("--device cuda: no CUDA GPU visible here (CuPy missing or no device); try --device cpu")
    return args


def train_ours(cfg, weights, batches, vocab, device, bf16):
    model = GPT(GPTConfig(vocab_size=vocab, block_size=cfg["block_size"], n_layer=cfg["n_layer"],
                          n_head=cfg["n_head"], n_embd=cfg["n_embd"], dropout=0.0))
    model.load_state_dict({k: tg.tensor(v, dtype="float32") for k, v in weights.items()})
    model.to(device)
    opt = tg.optim.AdamW(model.parameters(), lr=LR)
    losses = []
    for x, y in batches[:STEPS]:
        with tg.autocast(device, dtype=tg.bfloat16, enabled=bf16):
            _, loss = model(tg.tensor(x, device=device), tg.tensor(y, device=device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    return losses, {k: v.numpy().astype(np.float64) for k, v in model.state_dict().items()}


def train_torch(cfg, weights, batches, vocab, device, bf16):
    import torch
    from benchmarks.torch_models import SdpaGPT
    model = SdpaGPT(dict(cfg, dropout=0.0), vocab)
    model.load_state_dict({k: torch.tensor(v, dtype=torch.float32) for k, v in weights.items()})
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    losses = []
    for x, y in batches[:STEPS]:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            _, loss = model(torch.from_numpy(x).to(device), torch.from_numpy(y).to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    return losses, {k: v.detach().cpu().double().numpy() for k, v in model.state_dict().items()}


def compare(cfg, weights, batches, vocab, device):
    """The four runs and the verdict, as a dict (see the module's docstring)."""
    runs = {(side, prec): train(cfg, weights, batches, vocab, device, prec == "bf16")
            for side, train in (("ours", train_ours), ("torch", train_torch)) for prec in ("fp32", "bf16")}
    (ol, op), (tl, tp) = runs["ours", "bf16"], runs["torch", "bf16"]
    (ofl, ofp), (tfl, tfp) = runs["ours", "fp32"], runs["torch", "fp32"]
    loss_yard = max(abs(a - b) for a, b in zip(tl, tfl))
    loss_diff = max(abs(a - b) for a, b in zip(ol, tl))
    params = [dict(name=k, moved=float(np.linalg.norm(tp[k] - weights[k])),
                   yardstick=float(np.linalg.norm(tp[k] - tfp[k])),
                   ours_vs_torch_bf16=float(np.linalg.norm(op[k] - tp[k])),
                   ours_vs_torch_fp32=float(np.linalg.norm(ofp[k] - tfp[k]))) for k in weights]
    floor = statistics.median(r["yardstick"] / r["moved"] for r in params if r["moved"])
    for r in params:
        r["ratio"] = r["ours_vs_torch_bf16"] / max(r["yardstick"], floor * r["moved"], np.finfo(np.float64).tiny)
    worst = max(params, key=lambda r: r["ratio"])
    whole = (math.sqrt(sum(r["ours_vs_torch_bf16"] ** 2 for r in params))
             / max(math.sqrt(sum(r["yardstick"] ** 2 for r in params)), np.finfo(np.float64).tiny))
    ok = loss_diff <= FACTOR * loss_yard and whole <= FACTOR and worst["ratio"] <= FACTOR
    return dict(steps=STEPS, lr=LR, factor=FACTOR, passed=ok,
                losses={f"{s}_{p}": v[0] for (s, p), v in runs.items()},
                loss_yardstick=loss_yard, loss_ours_vs_torch_bf16=loss_diff,
                loss_ours_vs_torch_fp32=max(abs(a - b) for a, b in zip(ofl, tfl)),
                yardstick_floor=floor, whole_model_ratio=whole, worst_param=worst["name"],
                worst_ratio=worst["ratio"], params=params)


def main(argv=None):
    args = parse_args(argv)
    cfg = dict(SIZES[args.preset], dropout=0.0)
    bench_args = argparse.Namespace(seed=args.seed, data=args.data)
    batches, vocab = make_batches(bench_args, cfg, n=STEPS)
    weights = initial_weights(bench_args, cfg, vocab)
    result = dict(command="python benchmarks/amp_parity.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                  device=args.device, preset=args.preset, config=cfg,
                  versions=versions(argparse.Namespace(device=args.device)),
                  **compare(cfg, weights, batches, vocab, args.device))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'step':>4} " + " ".join(f"{k:>11}" for k in result["losses"]))
    for i in range(STEPS):
        print(f"{i:>4} " + " ".join(f"{v[i]:>11.5f}" for v in result["losses"].values()))
    print(f"loss: ours vs torch bf16 {result['loss_ours_vs_torch_bf16']:.2e}, yardstick (torch bf16 vs fp32) "
          f"{result['loss_yardstick']:.2e}, ours vs torch fp32 {result['loss_ours_vs_torch_fp32']:.2e}")
    print(f"params: worst ratio {result['worst_ratio']:.2f} of the yardstick ({result['worst_param']}), "
          f"whole model {result['whole_model_ratio']:.2f}; limit {FACTOR}: {'PASS' if result['passed'] else 'FAIL'}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
