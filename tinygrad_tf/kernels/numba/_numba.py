"""The one place that imports numba, the optional extra behind this package's CPU kernels
(`pip install -e ".[cpu]"`).

numba is imported on first use, when a CPU op first asks whether a kernel here takes it: not
by `import tinygrad_tf` (importing numba takes ~0.3 s), and never while the "numba" kernels
are switched off. When it is not installed `numba` stays None, no kernel here supports a
call, and the CPU runs the NumPy path of kernels/cpu/ unchanged.

`kernel(parallel)` makes a Python loop function a Numba kernel, compiled on its first call
(once per combination of argument types), with
- cache=True: the machine code goes to numba's on-disk cache (`__pycache__` beside the
  source, or NUMBA_CACHE_DIR), so that a later process loads it instead of compiling it
  (on the project's 2-core CPU the kernels of a float32 GPT step take ~5 s to compile, and
  ~0.5 s to load, numba's import included; all of them, both dtypes: ~11 s);
- fastmath=False: IEEE arithmetic, each operation rounded as NumPy rounds it, no
  reassociated sums and no fused multiply-adds, so that the kernels agree with the textbook
  ops to rounding (and the Adam update bit for bit);
- error_model="numpy": x / 0 is inf or nan, as in NumPy, not a ZeroDivisionError; and
  without a check per division the loops vectorize (Adam's update: 3.3 -> 0.5 ms per step);
- parallel=True only where asked: `prange` loops are then split over numba's threads (one
  launch and one barrier per call). The kernels of this package run on the calling thread:
  on the 2-core machine no loop of a training step paid for a split (a layer norm of 16384
  rows of 384: 7.4 ms serial, 7.8 ms on two threads while the cores are shared with other
  work, and 7.5 ms per call for any size under libgomp's default spin-waiting), and between
  GEMMs the second core belongs to BLAS.
The first compile in a process prints one line to stderr: it is a wait of seconds.
"""
import functools
import sys

from .. import enabled

numba = None  # the numba module once load() has imported it; None when it is not installed
prange = range  # numba.prange once numba is loaded: the loops that a parallel kernel splits over threads
_loaded = False


def load():
    """Import numba (once); the module, or None when it is not installed."""
    global numba, prange, _loaded
    if not _loaded:
        try:
            import numba as module
        except ImportError:
            module = None
        if module is not None:
            prange = module.prange
            _announce_first_compile()
        numba, _loaded = module, True
    return numba


def usable():
    """Whether the Numba kernels may run: the "numba" kernels switched on and numba installed."""
    return enabled("numba") and load() is not None


def missing():
    """Why the Numba kernels do not run here, or None when they do."""
    if not enabled("numba"):
        return "the numba kernels are switched off"
    return None if load() is not None else "numba is not installed"


def kernel(parallel=False):
    """Decorator: the function compiled by numba (see above) on its first call."""
    def wrap(fn):
        compiled = None

        @functools.wraps(fn)
        def call(*args):
            nonlocal compiled
            if compiled is None:
                compiled = load().njit(cache=True, fastmath=False, error_model="numpy", parallel=parallel)(fn)
            return compiled(*args)
        return call
    return wrap


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
