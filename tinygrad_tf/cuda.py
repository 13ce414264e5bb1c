"""tg.cuda.is_available(), device_count(), synchronize(), CUDAGraph and graph, as torch.cuda."""
from . import backend, bounds
from .backend import cuda_available as is_available, cupy
from .cuda_graph import CUDAGraph, graph  # noqa: F401


def device_count():
    return 0 if not is_available() else cupy.cuda.runtime.getDeviceCount()


def synchronize():
    """Wait for the current GPU's queued work, then report any index check that failed on it."""
    if is_available():
        cupy.cuda.Device().synchronize()
        bounds.raise_ready(backend.state(f"cuda:{cupy.cuda.Device().id}"), wait=True)
