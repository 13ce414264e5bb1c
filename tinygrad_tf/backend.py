"""The one place that knows about NumPy vs CuPy.

Every op asks `array_module(x)` for `xp` and then writes plain array code, so the
same forward/backward runs on the CPU (NumPy) and on NVIDIA GPUs (CuPy), the way
Chainer does it. CuPy is optional: CPU-only machines never import it.
"""
import numpy as np

try:  # CuPy is an optional extra (pip install tinygrad_tf[cuda12] / [cuda13]).
    import cupy
except ImportError:  # pragma: no cover - depends on the machine
    cupy = None

def _keep_freed_memory():
    """Ask glibc to keep freed blocks instead of returning them to the OS.

    NumPy mallocs every temporary; glibc serves big ones as fresh mmap'd pages and
    unmaps them on free, so each op of a training step pays page faults on new,
    zeroed memory (measured: 56 -> 43 ms per step of the CPU GPT). Keeping freed
    memory in the heap, as PyTorch's allocators do, removes that cost. Set
    TINYGRAD_TF_KEEP_FREED_MEMORY=0 to leave malloc alone."""
    import ctypes
    import os
    import sys
    if not sys.platform.startswith("linux") or os.environ.get("TINYGRAD_TF_KEEP_FREED_MEMORY") == "0":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (e.g. musl): nothing to tune
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)
    libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)


_keep_freed_memory()

float16, float32, float64 = np.dtype("float16"), np.dtype("float32"), np.dtype("float64")
int32, int64, bool_ = np.dtype("int32"), np.dtype("int64"), np.dtype("bool")
DTYPES = {"float16": float16, "float32": float32, "float64": float64,
          "int32": int32, "int64": int64, "bool": bool_}


def cuda_available():
    """True when CuPy is installed and sees at least one GPU."""
    if cupy is None:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except cupy.cuda.runtime.CUDARuntimeError:
        return False


def parse_device(device):
    """Normalise a device name to "cpu" or "cuda:N"; anything else raises."""
    if device is None:
        return "cpu"
    name = str(device)
    if name == "cpu":
        return "cpu"
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        index = int(name[5:]) if ":" in name else 0
        if not cuda_available():
            raise RuntimeError(f"device {name!r} needs CuPy and an NVIDIA GPU, but "
                               f"{'CuPy is not installed' if cupy is None else 'no GPU is visible'}; "
                               f"use device='cpu' or install tinygrad_tf[cuda12]/[cuda13]")
        count = cupy.cuda.runtime.getDeviceCount()
        if index >= count:
            raise RuntimeError(f"device {name!r} does not exist: {count} GPU(s) visible")
        return f"cuda:{index}"
    raise ValueError(f"unknown device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'")


def parse_dtype(dtype):
    """Accept tg.float32, np.float32, 'float32'; return a NumPy dtype."""
    if dtype is None:
        return None
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"unknown dtype {dtype!r}: expected one of {sorted(DTYPES)}") from None
    if dt not in DTYPES.values():
        raise TypeError(f"unsupported dtype {dt}: expected one of {sorted(DTYPES)}")
    return dt


def is_cuda_array(a):
    return cupy is not None and isinstance(a, cupy.ndarray)


def array_module(a):
    """`xp` for an array: numpy or cupy. The one backend switch of the engine."""
    return cupy if is_cuda_array(a) else np


def device_of(a):
    return f"cuda:{a.device.id}" if is_cuda_array(a) else "cpu"


def xp_for(device):
    return np if device == "cpu" else cupy


def to_device(a, device):
    """Move an array to "cpu" or "cuda:N" (a no-op when it is already there)."""
    if device == "cpu":
        return to_numpy(a)
    index = int(device[5:])
    if is_cuda_array(a) and a.device.id == index:
        return a
    with cupy.cuda.Device(index):
        return cupy.asarray(a)


def to_numpy(a):
    """A host copy of a GPU array (or the array itself); a read back also reports any
    index check that failed on the GPU since (bounds.py)."""
    if not is_cuda_array(a):
        return a
    host = a.get()
    from . import bounds
    bounds.raise_ready(wait=True)
    return host


# --- random numbers: one seeded generator per backend -------------------------
_rngs = {}


def manual_seed(seed):
    """Seed every generator the engine uses (CPU now, each GPU lazily)."""
    _rngs.clear()
    _rngs["seed"] = int(seed)


def initial_seed():
    """The seed of the last manual_seed, or None when it was never called."""
    return _rngs.get("seed")


def rng(device):
    """The generator for a device, created from the last manual_seed."""
    if device not in _rngs:
        seed = _rngs.get("seed")
        if device == "cpu":
            _rngs[device] = np.random.default_rng(seed)
        else:
            with cupy.cuda.Device(int(device[5:])):
                _rngs[device] = cupy.random.default_rng(seed)
    return _rngs[device]


def rng_state():
    """JSON-friendly state of the CPU generator (saved in checkpoints)."""
    return {"seed": _rngs.get("seed"), "cpu": rng("cpu").bit_generator.state}


def set_rng_state(state):
    manual_seed(0 if state.get("seed") is None else state["seed"])
    rng("cpu").bit_generator.state = state["cpu"]
