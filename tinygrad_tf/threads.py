"""tg.set_num_threads(n) and tg.get_num_threads(): the CPU threads of an op (PyTorch's names).

Two thread pools do the CPU's work: BLAS's (OpenBLAS under NumPy: the GEMMs) and numba's (the
kernels of kernels/numba/, when numba is installed). set_num_threads(n) sets both, so that
they do not take turns on cores that the other one's idle workers still spin on.

BLAS's count is set through threadpoolctl when it is installed: NumPy has no call for it, and
OpenBLAS reads OPENBLAS_NUM_THREADS (OMP_NUM_THREADS, MKL_NUM_THREADS) only when it is
loaded; threadpoolctl finds the BLAS library in the process and calls its own setter
(openblas_set_num_threads, MKL's). Without threadpoolctl only numba's count is set, and BLAS
keeps what those variables gave it at start-up.

With numba and SciPy installed (the `cpu` extra) a training step runs on one pool, numba's:
the Linear layers' GEMMs and attention's are single-threaded BLAS calls made from inside
numba's threads, each on its own block of rows (kernels/numba/linear.py, attention.py), and
the loops between them split over the same threads (_numba.PARALLEL_FROM). PyTorch runs its
GEMMs and loops on one OpenMP pool the same way. Two pools, NumPy's OpenBLAS for the GEMMs and
numba's for the loops, had each one's idle workers spinning on the cores the other needed: on
2 cores nothing could split, and 16 cores needed OMP_WAIT_POLICY=passive and
OPENBLAS_THREAD_TIMEOUT=4 set before start-up. Now the default environment is the fast one
(16 Xeon cores: the seed preset's step 1.63 s against PyTorch's 3.59 s; OMP_WAIT_POLICY=passive
makes the small preset slower, 26.7 ms against 18.1). The copy of OpenBLAS that SciPy's wheels
bring, the one the kernels call, is left on one thread once they have run (set again at their
next call, whatever set_num_threads gave it; _numba.py says why); NumPy's BLAS keeps the count
set here, for what runs outside the kernels (the NumPy path, matmuls of other shapes).

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
