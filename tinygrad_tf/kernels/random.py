"""Counter-based random numbers for dropout: u = hash(seed, index), on the GPU and in xp.

A mask made this way needs no memory between forward and backward (backward hashes
again) and no cuRAND call. Seeds come from a host-side stream started from
tg.manual_seed's seed and the device, so asking for one never waits for the GPU; the
stream restarts when tg.manual_seed replaces the device's generator, so seeded runs
repeat exactly.

The kernels hash seed + shift, where shift is a word in device memory read when the kernel
runs (see shift()): zero, except in a captured CUDA graph, whose seeds are baked into its
launches and whose replays each draw new masks by writing a fresh seed into the graph's
own shift."""
import contextlib

import numpy as np

from .. import backend
from ..backend import cupy

_sources = {}  # device id -> (the device generator it follows, NumPy generator of seeds)
_zero_shifts = {}  # device id -> a uint64 zero in device memory that nothing writes
_graph_shift = None  # while a CUDA graph is captured: that graph's shift word
_GOLDEN, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def next_seed(generator, device_id):
    """A fresh 63-bit seed for one mask; `generator` is backend.rng(device)."""
    held = _sources.get(device_id)
    if held is None or held[0] is not generator:
        seed = backend.initial_seed()  # None until manual_seed: then fresh entropy
        held = _sources[device_id] = (generator, np.random.default_rng(None if seed is None else (seed, device_id)))
    return int(held[1].integers(0, 2**63 - 1))


def shift(device_id):
    """The device word (a 1-element uint64 array) that the dropout kernels add to their seed."""
    if _graph_shift is not None:
        return _graph_shift
    word = _zero_shifts.get(device_id)
    if word is None:
        with cupy.cuda.Device(device_id):
            word = _zero_shifts[device_id] = cupy.zeros(1, np.uint64)
    return word


@contextlib.contextmanager
def shifted(word):
    """Inside a graph capture (cuda_graph.py): the kernels launched use `word` as their shift.
    Before each replay the graph writes a fresh next_seed() into it, so each replay draws new
    masks, and as many as eager steps do from tg.manual_seed's stream."""
    global _graph_shift
    _graph_shift = word
    try:
        yield
    finally:
        _graph_shift = None


def uniform(seed, shape, dtype, xp=np):
    """The kernels' uniforms in [0, 1) for a C-ordered array of `shape`, in plain xp."""
    u64 = xp.uint64
    n = int(np.prod(shape))
    z = u64(seed) + xp.arange(1, n + 1, dtype=u64) * u64(_GOLDEN)
    z = (z ^ (z >> u64(30))) * u64(_MIX1)
    z = (z ^ (z >> u64(27))) * u64(_MIX2)
    z = z ^ (z >> u64(31))
    dtype = np.dtype(dtype)
    bits, step = (40, 2.0 ** -24) if dtype == np.float32 else (11, 2.0 ** -53)
    return ((z >> u64(bits)).astype(dtype) * dtype.type(step)).reshape(shape)


def keep_scale(p, dtype):
    """What a kept element is multiplied by: 1 / (1 - p) in the array's dtype, as ops.nn.Dropout."""
    return np.dtype(dtype).type(1 / (1 - p))
