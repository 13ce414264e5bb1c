#!/usr/bin/env python3
"""Train-step benchmark: tinygrad_tf vs PyTorch eager on the same GPT, batches and weights.

    python benchmarks/bench_train.py --device cuda                 # seed GPT, fp32, H100
    python benchmarks/bench_train.py --device cuda --tf32          # TF32 GEMMs for both sides
    python benchmarks/bench_train.py --device cpu --preset cpu --steps 30 --warmup 5

Rows: ours (tinygrad_tf GPT + AdamW), ours_graph (GPU: the same step's forward and
backward captured once as a CUDA graph and replayed, tg.cuda.CUDAGraph), torch_lecture (Karpathy's per-head modules),
torch_sdpa (batched heads, F.scaled_dot_product_attention) and, with --compile on a GPU,
torch_compile (torch.compile of torch_sdpa). On the CPU, with numba installed, ours comes
twice: "ours" on the Numba kernels and "ours:-numba" on the NumPy path (kernels "-numba"),
each in its own process (its first steps, in warmup_s, load or compile the kernels).
Every row trains from the same initial
weights on the same batches (random tokens unless --data is given), so the loss before
the first step must agree across rows (printed as loss0, in eval mode).

Time: median ms/step over --steps steps after --warmup steps, synchronizing the device
around each step. Memory: on the GPU the peak of bytes in use (CuPy's pool used bytes,
tracked by a memory hook over a few extra steps; torch.cuda.max_memory_allocated) and
the pool's reserved bytes; on the CPU each row runs in a subprocess of this script
(--only ROW) and reports its peak RSS (ru_maxrss), minus the RSS after imports. On the CPU
every process first calls tinygrad_tf.backend.keep_freed_memory() (glibc keeps freed memory
in its heap), whichever side its row measures; the JSON says so ("keep_freed_memory").
MFU = (6 * N * tokens + 12 * L * T * C * tokens) / step time / peak FLOP/s, N the
non-embedding parameters and the attention term counting the full T x T products.
Writes JSON to benchmarks/results/<device>-<preset>-<precision>.json (or --out) and
prints a table last.
"""
import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRESETS = {
    "seed": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64, dropout=0.2),
    "cpu": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, dropout=0.0),
}
VOCAB = 65
LR = 3e-4
# Dense peak FLOP/s of an H100 SXM (the H200 has the same compute): the number MFU divides by.
PEAK_TFLOPS = {"float32": 67.0, "tf32": 495.0, "float64": 34.0, "bf16": 989.0}
# Settings read from the environment that change how the CPU's thread pools behave: the JSON records them.
THREAD_SETTINGS = ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT", "TINYGRAD_TF_PARALLEL_FROM", "NUMBA_THREADING_LAYER",
                   "NUMBA_NUM_THREADS")
ROWS = ("ours", "ours_graph", "torch_lecture", "torch_sdpa", "torch_compile")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="cuda", help="cpu or cuda")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="model size (default: seed on cuda, cpu on cpu)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--tf32", action="store_true", help="TF32 GEMMs (CUPY_TF32=1; torch allow_tf32)")
    p.add_argument("--amp", choices=["bfloat16"], default=None,
                   help="mixed precision: float32 weights, each side's forward under its autocast(device, dtype)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 50 cuda, 30 cpu)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 10 cuda, 5 cpu)")
    p.add_argument("--rows", default="torch_sdpa,torch_lecture,ours",
                   help=f"comma list of {ROWS}, measured in this order")
    p.add_argument("--compile", action="store_true", help="add the torch_compile row (GPU)")
    p.add_argument("--repeat", type=int, default=1,
                   help="run the rows in turn this many times (A B A B ...) and pool each row's steps: "
                        "host noise that comes and goes then falls on every row alike")
    p.add_argument("--ours-variants", default=None,
                   help="comma list of kernel sets, one 'ours' row each: all, none (textbook ops only), "
                        "NAME (only that fused kernel) or -NAME (all but NAME), NAME from "
                        "tinygrad_tf.kernels.NAMES (default: all,-numba on a CPU with numba installed, else all)")
    p.add_argument("--ablate", action="store_true",
                   help="--ours-variants all,none and -NAME for every NAME in tinygrad_tf.kernels.NAMES")
    p.add_argument("--profile", action="store_true",
                   help="GPU: also list where a step's GPU time goes (torch.profiler/CUPTI sees CuPy's "
                        "kernels too) for ours (all kernels) and torch_sdpa; CPU: cProfile of ours' steps")
    p.add_argument("--data", default=None, help="tinyshakespeare.txt to sample batches from "
                                                "(default: random tokens)")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--peak-tflops", type=float, default=None, help="peak for MFU (default: H100 table)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for both sides (torch.set_num_threads; tg.set_num_threads, and "
                        "OMP/OpenBLAS/MKL for NumPy; applies to the per-row subprocesses)")
    p.add_argument("--isolate", choices=["auto", "yes", "no"], default="auto",
                   help="run each row in its own subprocess (auto: yes on cpu, for peak RSS)")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/...)")
    p.add_argument("--only", default=None, help=argparse.SUPPRESS)  # internal: one row, JSON to stdout
    args = p.parse_args(argv)
    args.device = "cuda" if args.device.startswith("cuda") else args.device
    if args.device not in ("cpu", "cuda"):
        p.error(f"--device must be cpu or cuda, got {args.device!r}")
    args.preset = args.preset or ("seed" if args.device == "cuda" else "cpu")
    args.steps = args.steps or (50 if args.device == "cuda" else 30)
    args.warmup = args.warmup if args.warmup is not None else (10 if args.device == "cuda" else 5)
    args.precision = "bf16" if args.amp else "tf32" if args.tf32 else {"float32": "fp32", "float64": "fp64"}[args.dtype]
    if args.amp and args.dtype != "float32":
        p.error("--amp keeps float32 weights: leave --dtype at float32")
    rows = [r for r in args.rows.split(",") if r]
    if args.compile and "torch_compile" not in rows:
        rows.append("torch_compile")
    bad = [r for r in rows if r not in ROWS]
    if bad:
        p.error(f"unknown rows {bad}: expected some of {ROWS}")
    args.rows = rows
    return args


def ours_variants(args):
    """Kernel sets for the 'ours' rows (imports tinygrad_tf, so only after CUPY_TF32 is set)."""
    if args.ours_variants is None and not args.ablate:  # on a CPU with numba: on the Numba kernels, and on NumPy
        numba = args.device == "cpu" and importlib.util.find_spec("numba") is not None
        return ["all", "-numba"] if numba else ["all"]
    if not args.ablate:
        return [v for v in args.ours_variants.split(",") if v]
    from tinygrad_tf import kernels
    return ["all", "none"] + ["-" + n for n in kernels.NAMES]


# --- batches and weights ----------------------------------------------------------------
def make_batches(args, cfg, n=8):
    """n (x, y) int64 batches, the same for every row."""
    rng = np.random.default_rng(args.seed)
    B, T = cfg["batch_size"], cfg["block_size"]
    if args.data:
        from tinygrad_tf.data import CharTokenizer
        text = Path(args.data).read_text(encoding="utf-8")
        tok = CharTokenizer(text)
        data = np.asarray(tok.encode(text), dtype=np.int64)
        starts = rng.integers(0, len(data) - T - 1, size=(n, B))
        xs = [np.stack([data[s:s + T] for s in row]) for row in starts]
        ys = [np.stack([data[s + 1:s + T + 1] for s in row]) for row in starts]
        return list(zip(xs, ys)), tok.vocab_size
    tokens = rng.integers(0, VOCAB, size=(n, B, T + 1))
    return [(t[:, :-1].copy(), t[:, 1:].copy()) for t in tokens], VOCAB


def initial_weights(args, cfg, vocab):
    """Our GPT's initial state dict as float64 NumPy arrays (the lecture's init)."""
    import tinygrad_tf as tg
    from tinygrad_tf.models.gpt import GPT, GPTConfig
    tg.manual_seed(args.seed)
    model = GPT(GPTConfig(vocab_size=vocab, block_size=cfg["block_size"], n_layer=cfg["n_layer"],
                          n_head=cfg["n_head"], n_embd=cfg["n_embd"], dropout=cfg["dropout"]))
    return {k: v.numpy().astype(np.float64) for k, v in model.state_dict().items()}


def flops_per_step(cfg, weights):
    n = sum(v.size for k, v in weights.items() if "embedding" not in k)
    tokens = cfg["batch_size"] * cfg["block_size"]
    attention = 12 * cfg["n_layer"] * cfg["block_size"] * cfg["n_embd"]
    return (6 * n + attention) * tokens, n


# --- our engine -------------------------------------------------------------------------
def make_step(forward, opt, batches, autocast=contextlib.nullcontext):
    """One training step on batch i (cycling): the same code for both frameworks; the forward
    inside `autocast()` (the library's autocast, with --amp)."""
    def step(i):
        x, y = batches[i % len(batches)]
        with autocast():
            _, loss = forward(x, y)
        opt.zero_grad()  # set_to_none=True, the default of both
        loss.backward()
        opt.step()
        return loss
    return step


def autocast_for(lib, args):
    """A function giving `lib`'s autocast context for --amp (tg or torch), else a null context."""
    if not args.amp:
        return contextlib.nullcontext
    return lambda: lib.autocast(args.device, dtype=getattr(lib, args.amp))


def make_graph_step(model, opt, batches, autocast=contextlib.nullcontext):
    """make_step's step, replayed from a CUDA graph (tg.cuda.CUDAGraph): the first call is an
    eager step and the capture; later calls copy the batch into the captured inputs, replay
    (loss and grads) and step the optimizer eagerly."""
    import tinygrad_tf as tg
    held = {}

    def step(i):
        bx, by = batches[i % len(batches)]
        if not held:
            x, y = (tg.tensor(t.numpy(), device=t.device) for t in (bx, by))  # the graph's own inputs
            loss = make_step(model, opt, [(x, y)], autocast)(0)  # warm-up: compiles, times GEMM algorithms
            opt.zero_grad()
            held.update(graph=tg.cuda.CUDAGraph(), x=x, y=y)
            with tg.cuda.graph(held["graph"]):
                with autocast():
                    _, held["loss"] = model(x, y)
                held["loss"].backward()
            return loss
        held["x"].copy_(bx)
        held["y"].copy_(by)
        held["graph"].replay()
        opt.step()
        return held["loss"]
    step.held = held
    return step


def run_ours(args, cfg, batches, weights, vocab, variant="all", graph=False):
    """Our row with the kernel set `variant` switched on (tg.kernels.selected), whatever happens."""
    from tinygrad_tf import kernels
    with kernels.selected(variant):
        return _run_ours(args, cfg, batches, weights, vocab, graph)


def _run_ours(args, cfg, batches, weights, vocab, graph):
    import tinygrad_tf as tg
    from tinygrad_tf import optim
    from tinygrad_tf.models.gpt import GPT, GPTConfig
    dev = "cuda" if args.device == "cuda" else "cpu"
    if dev == "cpu" and args.threads:
        tg.set_num_threads(args.threads)  # numba's threads and BLAS's
    tg.manual_seed(args.seed)
    model = GPT(GPTConfig(vocab_size=vocab, block_size=cfg["block_size"], n_layer=cfg["n_layer"],
                          n_head=cfg["n_head"], n_embd=cfg["n_embd"], dropout=cfg["dropout"]))
    model.load_state_dict({k: tg.tensor(v, dtype=args.dtype) for k, v in weights.items()})
    model.to(dev)
    opt = optim.AdamW(model.parameters(), lr=LR)
    data = [(tg.tensor(x, device=dev), tg.tensor(y, device=dev)) for x, y in batches]

    if dev == "cuda":
        import cupy
        sync = cupy.cuda.get_current_stream().synchronize
        pool = cupy.get_default_memory_pool()
        pool.free_all_blocks()
    else:
        sync = lambda: None  # noqa: E731

    step = (make_graph_step if graph else make_step)(model, opt, data, autocast_for(tg, args))
    model.eval()
    with tg.no_grad():
        loss0 = model(*data[0])[1].item()
    model.train()
    times, last, warm_s = _time_steps(step, sync, args.steps, args.warmup)
    row = dict(loss0=loss0, loss_last=float(last.item()), **_summarise(times, warm_s))
    if dev == "cuda":
        graph_bytes = int(step.held["graph"].pool.total_bytes()) if graph else 0  # all the graph's own
        row["peak_mem_bytes"] = _cupy_peak_used(step, sync) + graph_bytes
        row["reserved_mem_bytes"] = int(pool.total_bytes()) + graph_bytes
        if args.profile and graph:
            row["profile"] = profile_kernels(step, sync)
        elif args.profile and variant == "all":
            row["profile"] = profile_kernels(step, sync)
            one = make_step(model, opt, [(tg.tensor(x[:1], device=dev), tg.tensor(y[:1], device=dev))
                                         for x, y in batches])
            row["profile"]["batch1_ms"] = statistics.median(_time_steps(one, sync, 20, 3)[0]) * 1e3
            row["profile"]["qkv_gemm_ms"] = gemm_probe(cfg)
            row["profile"]["host"] = host_profile(one, sync)
    elif args.profile:
        row["profile"] = dict(host=host_profile(step, sync, n=20))
    return row


def _cupy_peak_used(step, sync, n=3):
    """Peak of CuPy's pool bytes in use over n more steps (a hook on every allocation)."""
    import cupy

    class PeakHook(cupy.cuda.MemoryHook):
        name = "peak"

        def __init__(self):
            self.pool, self.peak = cupy.get_default_memory_pool(), 0

        def malloc_postprocess(self, **kw):
            self.peak = max(self.peak, self.pool.used_bytes())

    hook = PeakHook()
    with hook:
        for i in range(n):
            step(i)
        sync()
    return int(hook.peak)


def profile_kernels(step, sync, n=5, top=25):
    """GPU kernel time per step by kernel (CUPTI through torch.profiler, so CuPy's kernels count too)."""
    from torch.profiler import ProfilerActivity, profile
    sync()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for i in range(n):
            step(i)
        sync()
    kernels = []
    for e in prof.key_averages():
        us = getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0)
        if us > 0:
            kernels.append((e.key, us / n / 1e3, e.count / n))
    kernels.sort(key=lambda k: -k[1])
    groups = {}
    for name, ms, _ in kernels:
        low = name.lower()
        group = ("gemm" if any(w in low for w in ("gemm", "xmma", "cutlass", "sm90", "sm80")) else
                 "fused (ours)" if low.startswith(("attn_", "ln_", "ce_", "tg_")) else
                 "memcpy/memset" if "memcpy" in low or "memset" in low else
                 "cupy elementwise/reduce" if "cupy" in low else "other")
        groups[group] = groups.get(group, 0.0) + ms
    # Where the GPU waits for the host: the gaps between one kernel's end and the next one's start.
    spans = sorted((e.time_range.start, e.time_range.end, e.name) for e in prof.events()
                   if str(getattr(e, "device_type", "")).endswith("CUDA") and e.time_range.end > e.time_range.start)
    gaps = sorted(((b[0] - a[1], a[2][:60], b[2][:60]) for a, b in zip(spans, spans[1:]) if b[0] > a[1]),
                  reverse=True)
    return dict(gpu_busy_ms_per_step=sum(k[1] for k in kernels),
                launches_per_step=sum(k[2] for k in kernels), by_group_ms=groups,
                idle_ms_per_step=sum(g[0] for g in gaps) / n / 1e3,
                largest_gaps_us=[dict(us=round(g[0], 1), after=g[1], before=g[2]) for g in gaps[:12]],
                top_kernels=[dict(name=k[0][:120], ms=round(k[1], 3), calls=k[2]) for k in kernels[:top]])


def host_profile(step, sync, n=10, top=30):
    """cProfile of n steps (batch 1, so ~all host time): where the Python side's time goes."""
    import cProfile
    import pstats
    sync()
    prof = cProfile.Profile()
    prof.enable()
    for i in range(n):
        step(i)
    sync()
    prof.disable()
    stats = pstats.Stats(prof).stats  # (file, line, name) -> (calls, primitive, tottime, cumtime, callers)
    rows = [dict(fn=f"{Path(f).name}:{line}({name})", calls=c / n, tot_ms=tt / n * 1e3, cum_ms=ct / n * 1e3)
            for (f, line, name), (c, _, tt, ct, _) in stats.items()]
    return dict(by_tottime=sorted(rows, key=lambda r: -r["tot_ms"])[:top],
                by_cumtime=sorted(rows, key=lambda r: -r["cum_ms"])[:top])


def gemm_probe(cfg, reps=20):
    """ms of the q/k/v projections of one layer's forward: three (C, C) GEMMs vs one (3C, C)."""
    import cupy
    rows, C = cfg["batch_size"] * cfg["block_size"], cfg["n_embd"]
    x = cupy.random.standard_normal((rows, C), dtype=cupy.float32)
    ws = [cupy.random.standard_normal((C, C), dtype=cupy.float32) for _ in range(3)]
    w3 = cupy.concatenate(ws)
    out = {}
    for name, fn in (("three_CxC", lambda: [x @ w.T for w in ws]), ("one_3CxC", lambda: x @ w3.T)):
        fn()
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        for _ in range(reps):
            fn()
        stop.record()
        stop.synchronize()
        out[name] = cupy.cuda.get_elapsed_time(start, stop) / reps
    return out


# --- PyTorch ----------------------------------------------------------------------------
def run_torch(args, cfg, batches, weights, vocab, kind):
    import torch
    from benchmarks import torch_models
    dev = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    if kind == "torch_lecture":
        model, state = torch_models.LectureGPT(cfg, vocab), torch_models.lecture_state(weights, cfg)
    else:
        model, state = torch_models.SdpaGPT(cfg, vocab), weights  # our GPT's parameter names
    missing = model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()},
                                    strict=False)
    if missing.unexpected_keys or [k for k in missing.missing_keys if not k.endswith("tril")]:
        raise RuntimeError(f"weights do not map onto {kind}: {missing}")
    model.to(device=dev, dtype=dtype)
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    data = [(torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)) for x, y in batches]
    fwd = model
    if kind == "torch_compile":
        fwd = torch.compile(model)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    step = make_step(fwd, opt, data, autocast_for(torch, args))
    model.eval()
    with torch.no_grad():
        loss0 = model(*data[0])[1].item()
    model.train()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    times, last, warm_s = _time_steps(step, sync, args.steps, args.warmup)
    row = dict(loss0=loss0, loss_last=float(last.item()), **_summarise(times, warm_s))
    if dev.type == "cuda":
        row["peak_mem_bytes"] = int(torch.cuda.max_memory_allocated())
        row["reserved_mem_bytes"] = int(torch.cuda.max_memory_reserved())
        if args.profile and kind == "torch_sdpa":
            row["profile"] = profile_kernels(step, sync)
            one = make_step(fwd, opt, [(x[:1], y[:1]) for x, y in data])
            row["profile"]["batch1_ms"] = statistics.median(_time_steps(one, sync, 20, 3)[0]) * 1e3
    else:
        row["torch_threads"] = torch.get_num_threads()
    return row


# --- timing -----------------------------------------------------------------------------
def _time_steps(step, sync, steps, warmup):
    t0 = time.perf_counter()
    loss = None
    for i in range(warmup):
        loss = step(i)
    sync()
    warm_s = time.perf_counter() - t0
    times = []
    for i in range(steps):
        t0 = time.perf_counter()
        loss = step(warmup + i)
        sync()
        times.append(time.perf_counter() - t0)
    return times, loss, warm_s


def _summarise(times, warm_s):
    ms = [t * 1e3 for t in times]
    return dict(**_stats(ms), warmup_s=round(warm_s, 2), times_ms=[round(m, 3) for m in ms])


def _stats(ms):
    ms = sorted(ms)
    return dict(ms_median=statistics.median(ms), ms_p10=ms[len(ms) // 10], ms_p90=ms[(9 * len(ms)) // 10],
                steps=len(ms))


def _merge(runs):
    """A row's repeats as one row: every timed step pooled; profile and the rest from the first run."""
    timed = [r for r in runs if "times_ms" in r]
    if len(timed) < 2:
        return timed[0] if timed else runs[0]
    row = dict(timed[0])
    row.update(_stats([t for r in timed for t in r["times_ms"]]))
    row["times_ms"] = [t for r in timed for t in r["times_ms"]]
    row["repeat_medians_ms"] = [round(r["ms_median"], 3) for r in timed]
    row["peak_mem_bytes"] = max(r.get("peak_mem_bytes", 0) for r in timed)
    row["wall_s"] = round(sum(r.get("wall_s", 0) for r in timed), 1)
    return row


def run_row(args, cfg, batches, weights, vocab, name):
    """One row's numbers; errors become a 'skipped' reason so one failure keeps the table."""
    t0 = time.perf_counter()
    if not name.startswith("ours"):
        import torch  # noqa: F401  (imported before the baseline RSS: its libraries are not the step's memory)
    else:  # numba too, where it is installed (ours imports it at the first op that asks)
        from tinygrad_tf.kernels.numba import _numba
        _numba.load()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        if name.startswith("ours"):
            kind, _, variant = name.partition(":")
            row = run_ours(args, cfg, batches, weights, vocab, variant or "all", graph=kind == "ours_graph")
        else:
            row = run_torch(args, cfg, batches, weights, vocab, name)
    except Exception as e:  # noqa: BLE001 - reported in the table, e.g. torch.compile failing
        return dict(name=name, skipped=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300])
    if args.device == "cpu":
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        row["peak_rss_bytes"], row["rss_after_imports_bytes"] = peak * 1024, rss0 * 1024
        row["peak_mem_bytes"] = (peak - rss0) * 1024
    row["name"], row["wall_s"] = name, round(time.perf_counter() - t0, 1)
    return row


def versions(args):
    out = {"python": platform.python_version(), "numpy": np.__version__, "platform": platform.platform(),
           "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}
    import tinygrad_tf
    out["tinygrad_tf"] = tinygrad_tf.__version__
    try:
        import torch
        out["torch"] = torch.__version__
    except ImportError:
        out["torch"] = None
    out["numba"] = importlib.metadata.version("numba") if importlib.util.find_spec("numba") else None
    if args.device == "cuda":
        import cupy
        out["cupy"] = cupy.__version__
        props = cupy.cuda.runtime.getDeviceProperties(0)
        out["device_name"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        out["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
        out["cuda_driver"] = cupy.cuda.runtime.driverGetVersion()
    else:
        out["device_name"] = out["processor"]
    return out


def main(argv=None):
    args = parse_args(argv)
    if args.tf32:  # before CuPy's first float32 GEMM reads it
        os.environ["CUPY_TF32"] = "1"
    if args.threads:  # read by NumPy's BLAS when a row's subprocess starts
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    from tinygrad_tf import backend
    # CPU: glibc keeps freed memory in its heap, for both sides' temporaries, in this process
    # and in each row's (--only re-runs main).
    keep_freed_memory = args.device == "cpu" and backend.keep_freed_memory()
    cfg = dict(PRESETS[args.preset])
    batches, vocab = make_batches(args, cfg)
    weights = initial_weights(args, cfg, vocab)
    if args.tf32:
        import torch
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    if args.only:  # a child: one row as one JSON line
        print(json.dumps(run_row(args, cfg, batches, weights, vocab, args.only)))
        return 0

    names = []
    for r in args.rows:
        if r == "ours":
            names += ["ours" if v == "all" else f"ours:{v}" for v in ours_variants(args)]
        elif not (r in ("torch_compile", "ours_graph") and args.device != "cuda"):  # GPU-only rows
            names.append(r)
    isolate = args.isolate == "yes" or (args.isolate == "auto" and args.device == "cpu")
    runs = {name: [] for name in names}
    profile = args.profile
    for repeat, name in ((r, n) for r in range(args.repeat) for n in names):
        args.profile = profile and repeat == 0  # profile once; the repeats are for timing
        if isolate:
            cmd = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--only", name]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            lines = proc.stdout.strip().splitlines()
            try:
                row = json.loads(lines[-1])
            except (IndexError, json.JSONDecodeError):
                row = dict(name=name, skipped=f"subprocess failed ({proc.returncode}): {proc.stderr[-300:]}")
        else:
            row = run_row(args, cfg, batches, weights, vocab, name)
        runs[name].append(row)
        print(f"  {name}: {row.get('ms_median', row.get('skipped'))}", file=sys.stderr, flush=True)
    args.profile = profile
    rows = [_merge(runs[name]) for name in names]

    flops, n_params = flops_per_step(cfg, weights)
    peak = args.peak_tflops
    info = versions(args)
    if peak is None and args.device == "cuda" and any(g in info["device_name"] for g in ("H100", "H200")):
        peak = PEAK_TFLOPS["bf16" if args.amp else "tf32" if args.tf32 else args.dtype]
    tokens = cfg["batch_size"] * cfg["block_size"]
    for row in rows:
        if "ms_median" in row:
            row["tokens_per_s"] = tokens / (row["ms_median"] / 1e3)
            row["mfu"] = flops / (row["ms_median"] / 1e3) / (peak * 1e12) if peak else None
    by_name = {r["name"]: r for r in rows if "ms_median" in r}
    for row in rows:
        for ref, key in (("torch_sdpa", "ratio_vs_torch_sdpa"), ("torch_lecture", "ratio_vs_torch_lecture")):
            if "ms_median" in row and ref in by_name:
                row[key] = row["ms_median"] / by_name[ref]["ms_median"]
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "device": args.device, "precision": args.precision, "dtype": args.dtype, "amp": args.amp, "preset": args.preset,
        "config": {**cfg, "vocab_size": vocab, "lr": LR, "optimizer": "AdamW(weight_decay=0.01)"},
        "steps": args.steps, "warmup": args.warmup, "repeat": args.repeat, "threads": args.threads,
        "environment": {k: os.environ[k] for k in THREAD_SETTINGS if k in os.environ},
        "keep_freed_memory": keep_freed_memory,
        "data": args.data or "random tokens",
        "versions": info, "flops_per_step": flops, "non_embedding_params": n_params,
        "mfu_peak_tflops": peak, "mfu_formula": "(6*N_non_embedding + 12*L*T*C) * tokens / time / peak",
        "memory": ("GPU: CuPy pool used-bytes peak (hook) / torch.cuda.max_memory_allocated"
                   if args.device == "cuda" else "CPU: ru_maxrss of the row's subprocess minus after imports"),
        "rows": rows,
    }
    for name, prefix in (("ours", ""), ("ours_graph", "graph_")):
        for key in ("ratio_vs_torch_sdpa", "ratio_vs_torch_lecture"):
            if name in by_name:
                result[prefix + key] = by_name[name].get(key)
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / \
        f"{args.device}-{args.preset}-{args.precision}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result, out)
    return 0


def print_table(result, out):
    for r in result["rows"]:  # profiles first, so that the table is what prints last
        prof = r.get("profile")
        if prof and "gpu_busy_ms_per_step" not in prof:  # the CPU's: cProfile of the step
            print(f"profile {r['name']} (cProfile of {r['ms_median']:.1f} ms steps), ms per step by own time: " +
                  ", ".join(f"{h['fn']} {h['tot_ms']:.2f}" for h in prof["host"]["by_tottime"][:14]))
        elif prof:
            groups = ", ".join(f"{k} {v:.1f}" for k, v in sorted(prof["by_group_ms"].items(), key=lambda kv: -kv[1]))
            print(f"profile {r['name']}: GPU busy {prof['gpu_busy_ms_per_step']:.1f} of {r['ms_median']:.1f} ms, "
                  f"{prof['launches_per_step']:.0f} launches, batch-1 step (~host overhead) "
                  f"{prof.get('batch1_ms', float('nan')):.1f} ms, GPU idle between kernels "
                  f"{prof.get('idle_ms_per_step', float('nan')):.1f} ms; {groups}")
            if "qkv_gemm_ms" in prof:
                print(f"    q/k/v forward GEMMs of one layer: {prof['qkv_gemm_ms']}")
            if "host" in prof:
                print("    host (cProfile, batch 1), by own time: " + ", ".join(
                    f"{h['fn']} {h['tot_ms']:.2f}" for h in prof["host"]["by_tottime"][:8]))
            for k in prof["top_kernels"][:10]:
                print(f"    {k['ms']:7.3f} ms  x{k['calls']:<5.0f} {k['name'][:90]}")
    v = result["versions"]
    print(f"\n{result['device']} {v['device_name']} | preset {result['preset']} | {result['precision']} | "
          f"steps {result['steps']} x {result.get('repeat', 1)} (warmup {result['warmup']}) | torch {v.get('torch')} | "
          f"cupy {v.get('cupy', '-')} | numpy {v['numpy']}")
    mem = "peak MiB" if result["device"] == "cuda" else "peak RSS+ MiB"
    print(f"{'row':<22}{'ms/step':>9}{'p10':>8}{'p90':>8}{'tok/s':>10}{mem:>14}{'MFU':>7}"
          f"{'vs sdpa':>9}{'vs lect':>9}{'loss0':>9}")
    for r in result["rows"]:
        if "ms_median" not in r:
            print(f"{r['name']:<22} skipped: {r['skipped']}")
            continue
        mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") else "-"
        ratio = lambda k: f"{r[k]:.2f}" if k in r else "-"  # noqa: E731
        print(f"{r['name']:<22}{r['ms_median']:>9.2f}{r['ms_p10']:>8.2f}{r['ms_p90']:>8.2f}"
              f"{r['tokens_per_s']:>10.0f}{r.get('peak_mem_bytes', 0) / 2**20:>14.0f}{mfu:>7}"
              f"{ratio('ratio_vs_torch_sdpa'):>9}{ratio('ratio_vs_torch_lecture'):>9}{r['loss0']:>9.4f}")
    for r in result["rows"]:
        if "repeat_medians_ms" in r:
            print(f"  {r['name']}: medians of the repeats {', '.join(f'{m:.2f}' for m in r['repeat_medians_ms'])} ms")
    print(f"-> {out}")


if __name__ == "__main__":
    sys.exit(main())
