"""The one place that knows about NumPy vs CuPy, and what the engine keeps per device.

Every op asks `array_module(x)` for `xp` and then writes plain array code, so the
same forward/backward runs on the CPU (NumPy) and on NVIDIA GPUs (CuPy), the way
Chainer does it. CuPy is optional: CPU-only machines never import it.

State that belongs to a device (its random generator, its stream of dropout seeds,
the GPU index checks on their way back, the CUDA graph being captured on it) lives in
that device's `DeviceState`, reached through `state(device)`.
"""
import ctypes
import sys

import numpy as np

try:  # CuPy is an optional extra (pip install tinygrad_tf[cuda12] / [cuda13]).
    import cupy
except ImportError:  # pragma: no cover - depends on the machine
    cupy = None

try:  # bfloat16: NumPy and CuPy have none of their own; ml_dtypes' works with both (optional).
    import ml_dtypes
except ImportError:  # pragma: no cover - depends on the machine
    ml_dtypes = None

float16, float32, float64 = np.dtype("float16"), np.dtype("float32"), np.dtype("float64")
int32, int64, bool_ = np.dtype("int32"), np.dtype("int64"), np.dtype("bool")
_BFLOAT16 = None if ml_dtypes is None else np.dtype(ml_dtypes.bfloat16)
DTYPES = {"float16": float16, "float32": float32, "float64": float64,
          "int32": int32, "int64": int64, "bool": bool_, **({} if _BFLOAT16 is None else {"bfloat16": _BFLOAT16})}
FLOAT_DTYPES = tuple(d for d in (float16, _BFLOAT16, float32, float64) if d is not None)


def bfloat16():
    """The bfloat16 dtype (ml_dtypes'), or a clear error where ml_dtypes is not installed."""
    if _BFLOAT16 is None:
        raise ModuleNotFoundError("bfloat16 needs the ml_dtypes package (NumPy and CuPy have no bfloat16 of "
                                  "their own): pip install ml_dtypes, or install tinygrad_tf[cuda12]/[cuda13]")
    return _BFLOAT16


def bfloat16_or_none():
    """The bfloat16 dtype, or None without ml_dtypes. Test a dtype with is_bfloat16, not == this:
    NumPy reads `dtype == None` as `dtype == float64`."""
    return _BFLOAT16


def is_bfloat16(dtype):
    """Whether `dtype` is bfloat16 (False where ml_dtypes is not installed)."""
    return _BFLOAT16 is not None and dtype == _BFLOAT16


def is_floating(dtype):
    """float16, bfloat16, float32, float64 (bfloat16's NumPy kind is 'V', so .kind == 'f' misses it)."""
    return dtype.kind == "f" or is_bfloat16(dtype)


def _category(dtype):
    """0 for bool, 1 for integers, 2 for floating point: what torch's promotion compares first."""
    return 2 if is_floating(dtype) else 1 if dtype.kind in "iu" else 0


def promote_floats(floats):
    """The widest of some float dtypes; float16 with bfloat16 gives float32, as in torch."""
    widest = max(floats, key=lambda d: d.itemsize)
    return float32 if widest.itemsize == 2 and len(set(floats)) > 1 else widest


def _promote(dtypes):
    """The common dtype of tensors of one priority: the widest float if any, else the ints' type."""
    floats = [d for d in dtypes if is_floating(d)]
    if floats:
        return promote_floats(floats)
    ints = [d for d in dtypes if d.kind in "iu"]
    return np.result_type(*ints) if ints else bool_


def result_type(*operands):
    """The dtype torch gives an elementwise op of these operands (arrays or Python numbers).

    Operands rank by kind: arrays of one or more dims, then 0-d arrays, then Python numbers.
    A lower-ranked operand only counts when its category (bool < int < float) is higher than
    what the ranks above give, and a Python number then brings the default dtype of its
    category (float32 for floats, int64 for ints). So float32 * 2.5 is float32, int64 + 0.5 is
    float32, and a float32 tensor plus a 0-d float64 tensor stays float32, as in torch."""
    ranks = ([], [], [])
    for o in operands:
        if isinstance(o, bool):
            ranks[2].append(bool_)
        elif isinstance(o, int):
            ranks[2].append(int64)
        elif isinstance(o, float):
            ranks[2].append(float32)
        else:
            ranks[0 if o.ndim else 1].append(o.dtype)
    result = None
    for dtypes in ranks:
        if dtypes and (result is None or _category(_promote(dtypes)) > _category(result)):
            result = _promote(dtypes)
    return result


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
    if dtype == "bfloat16" or getattr(dtype, "__name__", None) == "bfloat16":
        return bfloat16()  # asked for by name where ml_dtypes is missing: say what to install
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
    """A host copy of a GPU array (or the array itself)."""
    return a.get() if is_cuda_array(a) else a


def keep_freed_memory():
    """Ask glibc to keep freed memory in the heap instead of returning it to the OS; call it
    once at the start of a CPU training program (examples/shakespeare.py and the benchmark do).

    NumPy mallocs every temporary; glibc serves big ones as fresh mmap'd pages and unmaps them
    on free, so each op of a training step pays page faults on new, zeroed memory. Kept,
    as PyTorch's allocators keep it, the CPU GPT's step took 54-65 ms against 77-98 ms
    (--preset cpu, this project's 2-core machine, three runs each). It changes the whole
    process's allocator, so importing tinygrad_tf never does it. Returns False where there is
    no glibc to ask (not Linux, or another C library)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))


# --- per-device state -----------------------------------------------------------------
class DeviceState:
    """What the engine keeps for one device ("cpu" or "cuda:N").

    generator: the device's generator (NumPy's or CuPy's), from the last manual_seed;
    seeds: a host-side stream of 63-bit dropout seeds, restarted by manual_seed (asking
      for a seed never waits for the GPU); the same stream on every device, so a model
      draws the same dropout masks on the CPU and on a GPU;
    pending_checks: GPU index checks whose bounds are on their way back (bounds.py);
    capture: the CUDAGraph being captured on this GPU, or None (cuda_graph.py);
    zero_word: a uint64 zero in GPU memory that the dropout kernels add to their seed
      outside a capture (kernels/cuda/random.py)."""

    def __init__(self, device, seed):
        self.device, self.pending_checks, self.capture, self.zero_word = device, [], None, None
        self.reseed(seed)

    def reseed(self, seed):
        self.seed, self._generator, self._seeds = seed, None, None

    @property
    def generator(self):
        if self._generator is None:
            if self.device == "cpu":
                self._generator = np.random.default_rng(self.seed)
            else:
                with cupy.cuda.Device(int(self.device[5:])):
                    self._generator = cupy.random.default_rng(self.seed)
        return self._generator

    def next_seed(self):
        """A fresh seed for one dropout mask: the same sequence after each manual_seed(n)."""
        if self._seeds is None:  # its own stream: not the numbers the generator gives after manual_seed
            self._seeds = np.random.default_rng(None if self.seed is None else (self.seed, 0x64726F70))
        return int(self._seeds.integers(0, 2**63 - 1))


class _Devices:
    """Every device's DeviceState, created on first use, and the seed they start from."""

    def __init__(self):
        self.seed, self.states = None, {}

    def __getitem__(self, device):
        held = self.states.get(device)
        if held is None:
            held = self.states[device] = DeviceState(device, self.seed)
        return held

    def manual_seed(self, seed):
        self.seed = int(seed)
        for held in self.states.values():
            held.reseed(self.seed)


_devices = _Devices()


class Generator:
    """A random number generator of its own, as torch.Generator: pass it as `generator=` to
    randn, rand, randint, randperm, multinomial, DataLoader and random_split to draw from it
    instead of the device's generator (which tg.manual_seed seeds)."""

    def __init__(self, device="cpu"):
        self.device = parse_device(device)
        self.manual_seed(int(np.random.SeedSequence().entropy % 2**63))

    def manual_seed(self, seed):
        """Restart from `seed`; returns the generator, as torch's does."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"manual_seed expects an integer seed, got {seed!r}")
        self._seed = int(seed)
        if self.device == "cpu":
            self.rng = np.random.default_rng(self._seed)
        else:
            with cupy.cuda.Device(int(self.device[5:])):
                self.rng = cupy.random.default_rng(self._seed)
        return self

    def initial_seed(self):
        return self._seed

    def seed(self):
        """Reseed from fresh entropy; returns the new seed."""
        return self.manual_seed(int(np.random.SeedSequence().entropy % 2**63))._seed


def draw_from(generator, device):
    """The NumPy/CuPy generator to draw from: a Generator's own, else the device's (manual_seed's)."""
    if generator is None:
        return rng(device)
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a tinygrad_tf.Generator, got {type(generator).__name__}")
    if generator.device != device:
        raise RuntimeError(f"the generator is on {generator.device}, but the tensor is made on {device}")
    return generator.rng


def state(device):
    """The DeviceState of "cpu" or "cuda:N"."""
    return _devices[device]


def manual_seed(seed):
    """Seed every generator the engine uses (CPU and each GPU), and the dropout seed streams."""
    _devices.manual_seed(seed)


def rng(device):
    """The generator for a device, created from the last manual_seed."""
    return _devices[device].generator


def next_seed(device):
    """A fresh dropout seed for `device` (see DeviceState.next_seed)."""
    return _devices[device].next_seed()
