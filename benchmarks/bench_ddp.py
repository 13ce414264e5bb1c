#!/usr/bin/env python3
"""Data-parallel scaling: tinygrad_tf's DistributedDataParallel against PyTorch DDP, same GPT sizes.

    python benchmarks/bench_ddp.py                     # every visible GPU, seed and gpt85m presets, TF32
    python benchmarks/bench_ddp.py --gpus 2 --presets seed --steps 30

Weak scaling: the per-GPU batch is fixed, so N GPUs train on N times the tokens of one. For each
preset it runs, in turn and in one invocation, ours on 1 GPU and on N (one process per GPU under
python -m tinygrad_tf.distributed.run; the step replayed as a CUDA graph, the all-reduce captured
in it), and PyTorch DDP on 1 and N (torch.distributed.run; eager, SDPA attention). Each job times
--steps steps after --warmup, rank 0 reports global tokens/s, and the JSON (benchmarks/results/
ddp-<gpus>gpu.json, or --out) holds the scaling and the ratios; a table prints last. Every
process also times one all-reduce of the model's gradients (its bytes) on its own.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRESETS = {
    "seed": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64),
    "gpt85m": dict(n_layer=12, n_head=12, n_embd=768, block_size=256, batch_size=64),
}
VOCAB = 65


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gpus", type=int, default=None, help="GPUs for the data-parallel jobs (default: all visible)")
    p.add_argument("--presets", default="seed,gpt85m", help=f"comma list of {sorted(PRESETS)}")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--fp32", action="store_true", help="plain float32 GEMMs (default: TF32 on both sides)")
    p.add_argument("--out", default=None)
    p.add_argument("--worker", choices=["ours", "torch"], help=argparse.SUPPRESS)  # internal: one job's process
    p.add_argument("--preset", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def batches(cfg, rank, n=4):
    """Random token batches, different on each rank (data parallelism splits the data)."""
    rng = np.random.default_rng(1000 + rank)
    tokens = rng.integers(0, VOCAB, size=(n, cfg["batch_size"], cfg["block_size"] + 1))
    return [(t[:, :-1].copy(), t[:, 1:].copy()) for t in tokens]


def time_steps(step, sync, steps, warmup):
    for i in range(warmup):
        step(i)
    sync()
    times = []
    for i in range(steps):
        t0 = time.perf_counter()
        step(warmup + i)
        sync()
        times.append(time.perf_counter() - t0)
    return times


def time_all_reduce(all_reduce, make, sync, n=20):
    """Median ms of one all-reduce of the model's gradient bytes (flat float32)."""
    flat = make()
    all_reduce(flat)
    sync()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        all_reduce(flat)
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def worker_ours(args, cfg):
    import cupy

    import tinygrad_tf as tg
    import tinygrad_tf.distributed as dist
    from bench_train import make_graph_step
    from tinygrad_tf import optim
    from tinygrad_tf.models.gpt import GPT, GPTConfig
    dist.init_process_group("nccl")
    rank, world, device = dist.get_rank(), dist.get_world_size(), f"cuda:{dist.get_local_rank()}"
    tg.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=VOCAB, dropout=0.0, **{k: v for k, v in cfg.items() if k != "batch_size"}))
    model.to(device)
    ddp = tg.nn.parallel.DistributedDataParallel(model)
    opt = optim.AdamW(model.parameters(), lr=3e-4)
    data = [(tg.tensor(x, device=device), tg.tensor(y, device=device)) for x, y in batches(cfg, rank)]
    sync = cupy.cuda.get_current_stream().synchronize
    times = time_steps(make_graph_step(ddp, opt, data), sync, args.steps, args.warmup)
    n = sum(p.numel() for p in model.parameters())
    group = dist._group()
    reduce_ms = time_all_reduce(lambda a: group.all_reduce(a, "avg"), lambda: cupy.ones(n, np.float32), sync)
    dist.destroy_process_group()
    return times, world, n, reduce_ms


def worker_torch(args, cfg):
    import torch
    import torch.distributed as tdist
    from torch_models import SdpaGPT
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    torch.cuda.set_device(local_rank)
    tdist.init_process_group("nccl")
    rank, world = tdist.get_rank(), tdist.get_world_size()
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = not args.fp32
    torch.manual_seed(0)
    model = SdpaGPT({**cfg, "dropout": 0.0}, VOCAB).cuda()
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local_rank])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    data = [(torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()) for x, y in batches(cfg, rank)]

    def step(i):
        x, y = data[i % len(data)]
        _, loss = ddp(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    times = time_steps(step, torch.cuda.synchronize, args.steps, args.warmup)
    n = sum(p.numel() for p in model.parameters())
    reduce_ms = time_all_reduce(tdist.all_reduce, lambda: torch.ones(n, device="cuda"), torch.cuda.synchronize)
    tdist.destroy_process_group()
    return times, world, n, reduce_ms


def run_worker(args):
    if not args.fp32:
        os.environ["CUPY_TF32"] = "1"  # before CuPy's first GEMM reads it
    cfg = PRESETS[args.preset]
    times, world, n, reduce_ms = (worker_ours if args.worker == "ours" else worker_torch)(args, cfg)
    if int(os.environ.get("RANK", 0)) == 0:
        ms = statistics.median(times) * 1e3
        tokens = cfg["batch_size"] * cfg["block_size"] * world
        print("RESULT " + json.dumps(dict(ms_median=ms, tokens_per_s=tokens / ms * 1e3, gpus=world, params=n,
                                          all_reduce_ms=reduce_ms, times_ms=[round(t * 1e3, 3) for t in times])))


def run_job(args, side, preset, gpus):
    launcher = "tinygrad_tf.distributed.run" if side == "ours" else "torch.distributed.run"
    port = 29500 + 10 * gpus + (0 if side == "ours" else 1)
    cmd = [sys.executable, "-m", launcher, "--nproc-per-node", str(gpus), "--master-port", str(port), __file__,
           "--worker", side, "--preset", preset, "--steps", str(args.steps), "--warmup", str(args.warmup)]
    cmd += ["--fp32"] if args.fp32 else []
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'benchmarks'}", "NCCL_NVLS_ENABLE": "0"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode or not lines:
        return dict(side=side, preset=preset, gpus=gpus, failed=f"status {out.returncode}: {out.stderr[-800:]}")
    return dict(side=side, preset=preset, **json.loads(lines[-1][7:]))


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return run_worker(args)
    import cupy
    gpus = args.gpus or cupy.cuda.runtime.getDeviceCount()
    rows = []
    for preset in args.presets.split(","):
        for side in ("ours", "torch"):
            for n in (1, gpus):
                rows.append(run_job(args, side, preset, n))
                print(f"  {preset} {side} x{n}: {rows[-1].get('tokens_per_s', rows[-1].get('failed'))}",
                      file=sys.stderr, flush=True)
    ok = {(r["side"], r["preset"], r["gpus"]): r for r in rows if "failed" not in r}
    summary = {}
    for preset in args.presets.split(","):
        for side in ("ours", "torch"):
            one, many = ok.get((side, preset, 1)), ok.get((side, preset, gpus))
            if one and many:
                summary[f"{preset}/{side}/scaling"] = many["tokens_per_s"] / one["tokens_per_s"]
        ours, theirs = ok.get(("ours", preset, gpus)), ok.get(("torch", preset, gpus))
        if ours and theirs:
            summary[f"{preset}/ours_vs_torch_ddp"] = ours["tokens_per_s"] / theirs["tokens_per_s"]
    props = cupy.cuda.runtime.getDeviceProperties(0)
    result = dict(command=" ".join([Path(sys.executable).name, *sys.argv]), gpus=gpus,
                  device=props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
                  precision="fp32" if args.fp32 else "tf32", steps=args.steps, warmup=args.warmup,
                  per_gpu_batch={p: PRESETS[p]["batch_size"] for p in args.presets.split(",")},
                  rows=rows, summary=summary)
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"ddp-{gpus}gpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n{result['device']} x{gpus}, {result['precision']}, per-GPU batch fixed (weak scaling)")
    print(f"{'preset':<8}{'side':<7}{'GPUs':>5}{'ms/step':>10}{'tokens/s':>12}{'all-reduce ms':>15}")
    for r in rows:
        if "failed" in r:
            print(f"{r['preset']:<8}{r['side']:<7}{r['gpus']:>5}  failed: {r['failed'][:200]}")
        else:
            print(f"{r['preset']:<8}{r['side']:<7}{r['gpus']:>5}{r['ms_median']:>10.2f}{r['tokens_per_s']:>12.0f}"
                  f"{r['all_reduce_ms']:>15.3f}")
    for key, value in summary.items():
        print(f"  {key}: {value:.3f}")
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
