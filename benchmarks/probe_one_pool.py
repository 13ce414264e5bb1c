#!/usr/bin/env python3
"""Probe for the CPU's next step (benchmarks/NOTES.md, "The Numba kernels and the thread pools"):
can the GEMMs and the row loops share one thread pool?

    pip install scipy && python benchmarks/probe_one_pool.py [--threads N]

Per GEMM shape of the cpu preset's Linear layers, a GEMM followed by a row loop (a row's mean
taken off, as a layer norm's first pass), two ways:
- today: NumPy's matmul on OpenBLAS's threads, then the row loop on the calling thread;
- one pool: numba's threads each take a block of rows, multiply it with a single-threaded BLAS
  call (numba's np.dot, which calls SciPy's BLAS), and the row loop is split over the same
  threads, so no other pool spins on the cores between the two.
Medians of 200 calls, microseconds. Not part of the library: scipy is not one of its dependencies.
"""
import argparse
import importlib.util
import statistics
import sys
import time

import numpy as np

SHAPES = [(768, 128, 128), (768, 128, 512), (768, 512, 128)]  # (rows, in, out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="threads of each pool")
    args = p.parse_args(argv)
    missing = [m for m in ("numba", "scipy", "threadpoolctl") if importlib.util.find_spec(m) is None]
    if missing:
        p.error(f"needs {', '.join(missing)} (pip install {' '.join(missing)})")
    import numba
    import threadpoolctl
    from numba import njit, prange

    @njit(parallel=True)
    def gemm_rows(a, b, out, blocks):
        step = (a.shape[0] + blocks - 1) // blocks
        for k in prange(blocks):
            lo, hi = k * step, min(a.shape[0], (k + 1) * step)
            out[lo:hi] = np.dot(a[lo:hi], b)

    def centre(x, out):
        for r in prange(x.shape[0]):
            s = 0.0
            for j in range(x.shape[1]):
                s += x[r, j]
            for j in range(x.shape[1]):
                out[r, j] = x[r, j] - s / x.shape[1]
    centre_split, centre_serial = njit(parallel=True)(centre), njit(centre)

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    tiny = np.ones((4, 4), np.float32)
    for fn in (centre_split, centre_serial):
        fn(tiny, np.empty_like(tiny))
    gemm_rows(tiny, tiny, np.empty_like(tiny), 2)  # links SciPy's BLAS now, so that the limits below reach it

    def median_us(f, n=200):
        for _ in range(10):
            f()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            f()
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1e6

    rng = np.random.default_rng(0)
    print(f"{'rows x in x out':>16} {'today':>9} {'one pool':>9}   (us, {args.threads} threads)")
    for m, k, n in SHAPES:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = np.ascontiguousarray(rng.standard_normal((n, k)).astype(np.float32).T)
        out, centred = np.empty((m, n), np.float32), np.empty((m, n), np.float32)
        with threadpoolctl.threadpool_limits(args.threads, user_api="blas"):
            today = median_us(lambda: (np.matmul(a, b, out=out), centre_serial(out, centred)))
        with threadpoolctl.threadpool_limits(1, user_api="blas"):
            one_pool = median_us(lambda: (gemm_rows(a, b, out, args.threads), centre_split(out, centred)))
        print(f"{f'{m} x {k} x {n}':>16} {today:9.0f} {one_pool:9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
