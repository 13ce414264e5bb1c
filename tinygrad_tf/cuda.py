"""tg.cuda.is_available(), device_count(), synchronize(), CUDAGraph and graph, as torch.cuda."""
from .backend import cuda_available as is_available  # noqa: F401
from .cuda_graph import CUDAGraph, graph  # noqa: F401


def device_count():
    from .backend import cupy
    return 0 if not is_available() else cupy.cuda.runtime.getDeviceCount()


def synchronize():
    """Wait for the current GPU's queued work, then report any index check that failed on it."""
    from . import bounds
    from .backend import cupy
    if is_available():
        cupy.cuda.Device().synchronize()
        bounds.raise_ready(wait=True)
