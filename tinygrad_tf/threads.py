"""tg.set_num_threads(n) and tg.get_num_threads(): the CPU threads of an op (PyTorch's names).

Two thread pools do the CPU's work: BLAS's (OpenBLAS under NumPy: the GEMMs) and numba's (the
kernels of kernels/numba/, when numba is installed). set_num_threads(n) sets both, so that
they do not take turns on cores that the other one's idle workers still spin on.

BLAS's count is set through threadpoolctl when it is installed: NumPy has no call for it, and
OpenBLAS reads OPENBLAS_NUM_THREADS (OMP_NUM_THREADS, MKL_NUM_THREADS) only when it is
loaded; threadpoolctl finds the BLAS library in the process and calls its own setter
(openblas_set_num_threads, MKL's). Without threadpoolctl only numba's count is set, and BLAS
keeps what those variables gave it at start-up.

Measured on the project's 2-core machine (a GPT --preset cpu training step, ~50 ms): BLAS on
one thread costs ~20 ms, and a shorter spin of its idle workers (OPENBLAS_THREAD_TIMEOUT=4)
~9 ms; so BLAS keeps both cores, and the Numba kernels run on the calling thread. A loop split
over numba's threads (a kernel's split variant, from _numba.PARALLEL_FROM elements: none on
this machine) waits at its barrier for the core that
BLAS's idle worker spins on, and libgomp's workers spin in turn: for an attention kernel that
was split, OMP_WAIT_POLICY=passive or NUMBA_NUM_THREADS=1 saved up to ~5 ms a step, and under
libgomp's default spin a split loop took ~7.5 ms a call whenever other work shared the cores.

On many cores the kernels should split, and then neither pool may spin while the other works.
The recipe, three settings read when the libraries load (so in the environment, before Python
starts; nothing here sets them):

    OMP_WAIT_POLICY=passive OPENBLAS_THREAD_TIMEOUT=4 TINYGRAD_TF_PARALLEL_FROM=65536

(numba's OpenMP workers sleep after a split loop, OpenBLAS's after a GEMM, and loops of 65536
elements and up split). Measured on 16 Xeon cores (benchmarks/results/cpu16-onepool-log.txt),
the seed preset's step: 1.71-1.83 s with it, 3.27 s without; PyTorch 3.72-3.82 s in its default
environment. On the cpu preset (768 rows) it helps ours less (28.6 ms, 32.4 without) and PyTorch
stays ahead there (17.6 ms). PyTorch's own OpenMP pool reads OMP_WAIT_POLICY too, and loses
with it: keep the recipe to the processes that train with this package.

Numba counts threads per calling thread (a count set in one Python thread does not apply to
another) and goes up to NUMBA_NUM_THREADS at most (the cores, unless that variable says
otherwise). Importing tinygrad_tf sets nothing: only these calls do.
"""
import os

from .kernels.numba import _numba


def _threadpoolctl():
    try:
        import threadpoolctl
    except ImportError:
        return None
    return threadpoolctl


def set_num_threads(n):
    """Use n threads for the CPU's ops: numba's kernels and BLAS's GEMMs."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"set_num_threads expects a positive int, got {n!r}")
    numba = _numba.load()
    if numba is not None:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    threadpoolctl = _threadpoolctl()
    if threadpoolctl is not None:
        threadpoolctl.threadpool_limits(limits=n, user_api="blas")


def get_num_threads():
    """The threads of the CPU's ops: numba's count when numba is installed, else BLAS's (through
    threadpoolctl), else the number of CPUs this process may run on."""
    numba = _numba.load()
    if numba is not None:
        return numba.get_num_threads()
    threadpoolctl = _threadpoolctl()
    blas = [] if threadpoolctl is None else [p["num_threads"] for p in threadpoolctl.threadpool_info()
                                             if p["user_api"] == "blas"]
    return blas[0] if blas else len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
