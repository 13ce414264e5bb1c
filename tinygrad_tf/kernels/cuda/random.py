"""The device word that the dropout kernels add to their seed.

The kernels hash seed + shift (ops/random.py's uniform, in CUDA), where shift is a uint64 in
device memory read when the kernel runs: zero for eager launches, and in a captured CUDA
graph the graph's own word. A graph's seeds are baked into its launches, so before each
replay the graph writes a fresh seed into its word (cuda_graph.py), and each replay draws
new masks, as many as eager steps do from tg.manual_seed's stream."""
import numpy as np

from ... import backend
from ...backend import cupy


def shift(device_id):
    """The 1-element uint64 array the kernels launched now on this GPU add to their seed."""
    held = backend.state(f"cuda:{device_id}")
    if held.capture is not None:
        return held.capture.seed_word
    if held.zero_word is None:
        with cupy.cuda.Device(device_id):
            held.zero_word = cupy.zeros(1, np.uint64)
    return held.zero_word


def keep_scale(p, dtype):
    """What a kept element is multiplied by: 1 / (1 - p) in the array's dtype, as ops/random.py."""
    return np.dtype(dtype).type(1 / (1 - p))
