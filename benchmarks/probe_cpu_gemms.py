#!/usr/bin/env python3
"""Probe for the CPU's thread pools (benchmarks/NOTES.md, "What the 16 cores showed next"): the
GEMMs of a GPT step, each timed four ways on N threads.

    python benchmarks/probe_cpu_gemms.py --threads 16 [--presets cpu,seed] [--out probe.json]

For each Linear layer of a preset (rows x in -> out), forward (x W^T) and backward (g W and
g^T x), and for attention's q k^T over all (batch, head) matrices:
- np: NumPy's matmul, OpenBLAS on N threads (what the Linear twins run);
- np1: the same on one thread;
- pool: row blocks (Linear) or matrices (attention) over numba's N threads, each a
  single-threaded np.dot through SciPy's BLAS (g^T x: a block of g's columns copied first);
- torch: PyTorch's matmul on N threads (when torch is installed).
Microseconds, the best of three interleaved medians. Needs numba, scipy and threadpoolctl.
"""
import argparse
import importlib.util
import json
import statistics
import sys
import time

import numpy as np

PRESETS = {"cpu": (768, 128, 4, 64), "seed": (16384, 384, 6, 256)}  # rows a step, width, heads, T
VOCAB = 65


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--presets", default="cpu,seed")
    p.add_argument("--calls", type=int, default=0, help="calls per median (default 200 cpu, 5 seed)")
    p.add_argument("--out", default=None, help="JSON path")
    args = p.parse_args(argv)
    missing = [m for m in ("numba", "scipy", "threadpoolctl") if importlib.util.find_spec(m) is None]
    if missing:
        p.error(f"needs {', '.join(missing)} (pip install {' '.join(missing)})")
    bad = [name for name in args.presets.split(",") if name not in PRESETS]
    if bad:
        p.error(f"--presets: unknown {bad}, expected names from {sorted(PRESETS)}")
    import numba
    # numba's np.dot calls SciPy's BLAS: loaded now, so that the limits below reach it too (else it
    # runs on all cores inside numba's threads: ~15x slower, and OpenBLAS warns of an OpenMP loop)
    import scipy.linalg.cython_blas  # noqa: F401
    import threadpoolctl
    from numba import njit, prange
    torch = None
    if importlib.util.find_spec("torch") is not None:
        import torch
        torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))

    @njit(parallel=True)
    def pool_mm(a, b, out, blocks):  # out = a @ b, a row block per iteration
        step = (a.shape[0] + blocks - 1) // blocks
        for k in prange(blocks):
            lo, hi = k * step, min(a.shape[0], (k + 1) * step)
            if lo < hi:
                np.dot(a[lo:hi], b, out[lo:hi])

    @njit(parallel=True)
    def pool_tn(a, b, out, blocks, buf):  # out = a^T @ b: a block of a's columns copied, then one GEMM
        step = (a.shape[1] + blocks - 1) // blocks
        for k in prange(blocks):
            lo, hi = k * step, min(a.shape[1], (k + 1) * step)
            if lo < hi:
                cb = buf[k, :, :hi - lo]
                for r in range(a.shape[0]):
                    for j in range(hi - lo):
                        cb[r, j] = a[r, lo + j]
                np.dot(np.ascontiguousarray(cb).T, b, out[lo:hi])

    @njit(parallel=True)
    def pool_bmm(a, b, out):  # a matrix per iteration
        for i in prange(a.shape[0]):
            np.dot(a[i], b[i], out[i])

    def blas(n):
        return threadpoolctl.threadpool_limits(n, user_api="blas")

    def best_median(f, calls):
        best = float("inf")
        for _ in range(3):
            f()
            times = []
            for _ in range(calls):
                t0 = time.perf_counter()
                f()
                times.append(time.perf_counter() - t0)
            best = min(best, statistics.median(times))
        return best * 1e6

    rng = np.random.default_rng(0)
    rows = []
    for name in args.presets.split(","):
        n_rows, c, heads, t = PRESETS[name]
        calls = args.calls or (200 if name == "cpu" else 5)
        blocks = args.threads
        for k, o in ((c, 3 * c), (c, c), (c, 4 * c), (4 * c, c), (c, VOCAB)):
            x, w, g = (rng.standard_normal(s).astype(np.float32) for s in ((n_rows, k), (o, k), (n_rows, o)))
            y, gx, gw = (np.empty(s, np.float32) for s in ((n_rows, o), (n_rows, k), (o, k)))
            buf = np.empty((blocks, n_rows, -(-o // blocks)), np.float32)
            row = {"shape": f"{name} linear {n_rows}x{k}->{o}"}
            for label, threads in (("np", args.threads), ("np1", 1)):
                with blas(threads):
                    row["fwd_" + label] = best_median(lambda: np.matmul(x, w.T, out=y), calls)
                    row["bwd_" + label] = best_median(lambda: (np.matmul(g, w, out=gx), np.matmul(g.T, x, out=gw)),
                                                      calls)
            with blas(1):
                row["fwd_pool"] = best_median(lambda: pool_mm(x, w.T, y, blocks), calls)
                row["bwd_pool"] = best_median(lambda: (pool_mm(g, w, gx, blocks), pool_tn(g, x, gw, blocks, buf)),
                                              calls)
            if torch is not None:
                tx, tw, tg = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(g)
                row["fwd_torch"] = best_median(lambda: torch.mm(tx, tw.T), calls)
                row["bwd_torch"] = best_median(lambda: (torch.mm(tg, tw), torch.mm(tg.T, tx)), calls)
            rows.append(row)
        matrices, d = n_rows // t * heads, c // heads
        q, kt = rng.standard_normal((matrices, t, d)).astype(np.float32), \
            rng.standard_normal((matrices, d, t)).astype(np.float32)
        s = np.empty((matrices, t, t), np.float32)
        row = {"shape": f"{name} attention q k^T {matrices} x {t}x{d}"}
        with blas(args.threads):
            row["np"] = best_median(lambda: np.matmul(q, kt, out=s), calls)
        with blas(1):
            row["np1"] = best_median(lambda: np.matmul(q, kt, out=s), calls)
            row["pool"] = best_median(lambda: pool_bmm(q, kt, s), calls)
        if torch is not None:
            tq, tk = torch.from_numpy(q), torch.from_numpy(kt)
            row["torch"] = best_median(lambda: torch.bmm(tq, tk), calls)
        rows.append(row)
    print(f"us, {args.threads} threads, numba threading layer {numba.threading_layer()}")
    for row in rows:
        print(f"{row['shape']:>38}  " + " ".join(f"{k}={v:.0f}" for k, v in row.items() if k != "shape"))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"command": " ".join(sys.argv), "threads": args.threads, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
