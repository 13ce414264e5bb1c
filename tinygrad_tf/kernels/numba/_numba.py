"""The one place that imports numba, the optional extra behind this package's CPU kernels
(`pip install -e ".[cpu]"`).

numba is imported on first use, when a CPU op first asks whether a kernel here takes it: not
by `import tinygrad_tf` (importing numba takes ~0.3 s), and never while the "numba" kernels
are switched off. When it is not installed `numba` stays None, no kernel here supports a
call, and the CPU runs the NumPy path of kernels/cpu/ unchanged.

`kernel(...)` makes a Python loop function a Numba kernel, compiled on its first call
(once per combination of argument types), with
- cache=True: the machine code goes to numba's on-disk cache (`__pycache__` beside the
  source, or NUMBA_CACHE_DIR), so that a later process loads it instead of compiling it
  (on the project's 2-core CPU the kernels of a float32 cpu-preset GPT step, serial and
  parallel variants, take 24-27 s to compile, and 0.7-1 s to load, numba's import included;
  a slice assignment such as row[:] = x costs ~5 s of that alone, numba compiling its
  shape-error message: the kernels write such copies as loops);
- fastmath=False: IEEE arithmetic, each operation rounded as NumPy rounds it, no
  reassociated sums and no fused multiply-adds, so that the kernels agree with the textbook
  ops to rounding (and the Adam update bit for bit);
- error_model="numpy": x / 0 is inf or nan, as in NumPy, not a ZeroDivisionError; and
  without a check per division the loops vectorize (Adam's update: 3.3 -> 0.5 ms per step).

Two options:
- reorder_sums=True (the sum helpers that the kernels call): the one exception to
  fastmath=False, LLVM's "reassoc" flag alone on the helper's arithmetic, so that the loop
  vectorizer may keep a sum's float64 running sums in SIMD registers (AVX2: 4 lanes x 4
  interleaved, 16 partial sums added up at the end). LLVM inlines the helper into the kernel
  and each instruction keeps its own flags: the kernel's other arithmetic stays IEEE in the
  order written (and no FMA anywhere: "contract" is not set). numba vectorizes no reduction
  without it (it leaves LLVM's SLP vectorizer off, so 4 or 8 named running sums stay scalar):
  768 x 128 float32 summed into float64 took ~40 us at one add per element, ~11 us
  reassociated. The sums stay in float64; only the order of their additions differs from a
  loop's, fixed for a machine (its vector width), the same on every call and every thread.
- split=True: the kernel also has a variant compiled with parallel=True, whose `prange`
  loops (`_numba.prange`: range in the serial variant) numba splits over its threads; a call
  passes its work (`kernel(*args, work=elements)`) and takes that variant when the work is at
  least PARALLEL_FROM and numba has more than one thread (tg.set_num_threads). Both variants
  are the same code: loops over rows whose rows are independent, and sums across rows taken
  per fixed chunk of rows, never per thread, so the results are the same bits on one thread
  or many. Numba's thread count is read only for calls at or above the threshold: smaller
  ones never start its threads.
  PARALLEL_FROM, 65536 elements (a 768 x 128 layer norm splits, a 64 x 128 one does not),
  holds because one pool does all of a step's work: the Linear layers' GEMMs run inside
  numba's threads too (linear.py). While NumPy's OpenBLAS did them on threads of its own, its
  idle workers spun on the cores after every GEMM and libgomp's (numba's "omp" layer) after
  every split loop, each pool waiting for the other's spinning thread to lose its core: on
  the 2-core machine a split then lost at every size (a 768 x 128 layer norm between GEMMs:
  2.7 ms serial, 11.9 ms split), so nothing split by default, and 16 cores needed
  OMP_WAIT_POLICY=passive and OPENBLAS_THREAD_TIMEOUT=4 in the environment. With one pool the
  cpu preset's step on 2 cores went from ~42 to ~39 ms (65536, 16384 and 0 measured alike),
  and on 16 cores from 32.4 to 18.1 ms (seed preset 3.27 -> 1.63 s) in the default
  environment, where OMP_WAIT_POLICY=passive now costs (26.7 ms). Without SciPy the GEMMs stay
  NumPy's, and so the default stays 2^24 there (nothing splits). Another machine may set
  TINYGRAD_TF_PARALLEL_FROM=<elements>, read at import (tests force it to 0).
- one_blas_thread=True (with split=True): the kernel calls BLAS itself (np.dot or blas.gemm,
  which reach SciPy's BLAS: has_blas()), one matrix product per iteration of its prange
  loop. Its parallel variant then runs with that BLAS on one thread: the GEMMs and the loops
  around them share numba's pool, each thread multiplying its own matrices, as PyTorch's
  batched products run. With BLAS on its own threads too, each product would wake a pool of
  its own inside each of numba's threads. Which BLAS, and for how long (blas_on_one_thread):
  SciPy's wheels bring a copy of OpenBLAS that nothing but SciPy calls; that copy is left on
  one thread once a kernel has set it (a later call sets it again if something changed it).
  Set back to its threads after every call, as at first, its idle workers woke each time and
  spun on the cores numba's threads needed: 1.0-1.6 ms of a cpu-preset step on 2 cores (medians
  of 43-57 ms; four runs of 200 steps each way, the two ways alternating step by step). Where
  SciPy's BLAS is not its own copy (conda, a system BLAS that NumPy shares), every BLAS is set to
  one thread for the call and restored after, as NumPy's matmuls need their threads.
The first compile in a process prints one line to stderr: it is a wait of seconds.
"""
import functools
import importlib.util
import os
import sys
import types

import numpy as np

from .. import enabled

def _parallel_from(setting, blas):
    """TINYGRAD_TF_PARALLEL_FROM as a count of elements. Unset: 65536 where the GEMMs join numba's
    pool (`blas`: SciPy's BLAS is here), else 2^24, above every size measured, as when NumPy's
    OpenBLAS threads do the GEMMs a split kernel waits for their spinning workers (see above)."""
    if setting is None:
        return 1 << 16 if blas else 1 << 24
    try:
        value = int(setting)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"TINYGRAD_TF_PARALLEL_FROM must be a count of elements (an int >= 0), got {setting!r}")
    return value


# The elements a call visits from which a kernel with split=True splits (above: why).
PARALLEL_FROM = _parallel_from(os.environ.get("TINYGRAD_TF_PARALLEL_FROM"),
                               blas=importlib.util.find_spec("scipy") is not None)
numba = None  # the numba module once load() has imported it; None when it is not installed
prange = range  # numba.prange once numba is loaded: the loops that a parallel kernel splits over threads
xxgemm = None  # numba's C helper around SciPy's gemm, once numba is loaded (blas.py)
_loaded = False


def load():
    """Import numba (once); the module, or None when it is not installed."""
    global numba, prange, xxgemm, _loaded
    if not _loaded:
        try:
            import numba as module
        except ImportError:
            module = None
        if module is not None:
            prange, xxgemm = module.prange, _xxgemm(module.types)
            _announce_first_compile()
        numba, _loaded = module, True
    return numba


def _xxgemm(types):
    """numba_xxgemm(kind, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), the C
    helper numba's np.dot calls BLAS through, declared with untyped pointers so that one
    declaration serves float32 and float64 (blas.py)."""
    pointer, size = types.voidptr, types.intp
    return types.ExternalFunction("numba_xxgemm", types.intc(types.char, types.char, types.char, size, size, size,
                                                             pointer, pointer, size, pointer, size, pointer, pointer,
                                                             size))


def usable():
    """Whether the Numba kernels may run: the "numba" kernels switched on and numba installed."""
    return enabled("numba") and load() is not None


def missing():
    """Why the Numba kernels do not run here, or None when they do."""
    if not enabled("numba"):
        return "the numba kernels are switched off"
    return None if load() is not None else "numba is not installed"


@functools.cache
def has_blas():
    """Whether a kernel may call np.dot: numba reaches BLAS through SciPy (the `cpu` extra has it)."""
    return importlib.util.find_spec("scipy") is not None


@functools.cache
def _kernels_blas():
    """threadpoolctl's handles on the BLAS the kernels call, SciPy's, as (own, shared): own, the
    copy inside SciPy's install (its wheels': scipy.libs, scipy/.dylibs), which only SciPy
    uses; shared, when SciPy has no copy of its own, every BLAS of the process (one of them is
    SciPy's, which NumPy may share). Neither without threadpoolctl."""
    try:
        import scipy
        import scipy.linalg.cython_blas  # noqa: F401 (loaded, so that the handles include it)
        import threadpoolctl
    except ImportError:
        return (), ()
    libraries = threadpoolctl.ThreadpoolController().select(user_api="blas").lib_controllers
    home = os.path.realpath(os.path.dirname(scipy.__file__))
    own = tuple(library for library in libraries
                if os.path.realpath(library.filepath).startswith((home + os.sep, home + ".libs" + os.sep)))
    return (own, ()) if own else ((), tuple(libraries))


def blas_on_one_thread():
    """Put the BLAS the kernels call on one thread (see one_blas_thread above): SciPy's own copy
    is left there; a shared BLAS is set back after the call, from the (library, threads) pairs
    returned. Each library's own setter, through threadpoolctl's handles."""
    own, shared = _kernels_blas()
    for library in own:
        if library.get_num_threads() != 1:
            library.set_num_threads(1)
    restore = [(library, library.get_num_threads()) for library in shared]
    for library in shared:
        library.set_num_threads(1)
    return restore


def kernel(parallel=False, reorder_sums=False, split=False, one_blas_thread=False):
    """Decorator: the function as a Kernel (above; `parallel=True`: only the parallel variant)."""
    return lambda fn: Kernel(fn, parallel, reorder_sums, split, one_blas_thread)


def flat(a, dtype=None):
    """A C-contiguous 1-D view of a (a copy when it is not contiguous): what elementwise loops index."""
    return np.ascontiguousarray(a, dtype).reshape(-1)


class Kernel:
    """A loop function compiled by numba on its first call: `kernel(*args)`, or
    `kernel(*args, work=n)` for one that may split (n: the elements the call visits).

    A kernel may call another (the sum helpers): numba's typeof asks an object it does not
    know for `_numba_type_`, and this one answers with its compiled variant's dispatcher, so
    that numba compiles the callee then, and LLVM inlines it into the caller."""

    def __init__(self, fn, parallel=False, reorder_sums=False, split=False, one_blas_thread=False):
        functools.update_wrapper(self, fn)
        self.fn, self.parallel, self.split, self.one_blas_thread = fn, parallel, split, one_blas_thread
        self.fastmath = {"reassoc"} if reorder_sums else False
        self.variants = {}  # parallel (bool) -> numba's dispatcher, made on first use

    def compiled(self, parallel):
        """numba's dispatcher of the serial or the parallel variant, made on first use."""
        if parallel not in self.variants:
            fn = self.fn
            if parallel and self.split:
                # A copy under its own name: numba's cache keys machine code by the function's
                # name and bytecode, not by its options, so the two variants need two names.
                fn = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
                fn.__qualname__, fn.__module__ = self.fn.__qualname__ + "_parallel", self.fn.__module__
            self.variants[parallel] = load().njit(cache=True, fastmath=self.fastmath, error_model="numpy",
                                                  parallel=parallel)(fn)
        return self.variants[parallel]

    @property
    def _numba_type_(self):
        return load().types.Dispatcher(self.compiled(self.parallel))

    def threads(self, work):
        """The threads a call visiting `work` elements runs on (1: the serial variant). Numba's
        count is asked only at or above the threshold."""
        return load().get_num_threads() if self.parallel or (self.split and work >= PARALLEL_FROM) else 1

    def __call__(self, *args, work=0):
        return self.run(self.threads(work), *args)

    def run(self, threads, *args):
        """The kernel on `threads` threads, as threads(work) gave them: for a caller that sizes
        its blocks by them first (linear.py), so that numba's count is asked once a call."""
        parallel = self.parallel or threads > 1
        if not (parallel and self.one_blas_thread):
            return self.compiled(parallel)(*args)
        restore = blas_on_one_thread()  # (a try, not a context manager: 0.6-0.7 ms of a 2-core step)
        try:
            return self.compiled(True)(*args)
        finally:
            for library, count in restore:
                library.set_num_threads(count)


def _announce_first_compile():
    """Print one line when a kernel of this package first compiles in this process: numba
    starts a "numba:compile" event only when its cache has no machine code for the call."""
    from numba.core import event

    class Announce(event.Listener):
        said = False

        def on_start(self, ev):
            if not self.said and getattr(ev.data["dispatcher"].py_func, "__module__", "").startswith(__package__):
                self.said = True
                print("tinygrad_tf: compiling CPU kernels with numba (once; later runs load them from its cache) ...",
                      file=sys.stderr, flush=True)

        def on_end(self, ev):
            pass

    event.register("numba:compile", Announce())
