"""tg.cuda.is_available(), as torch.cuda."""
from .backend import cuda_available as is_available  # noqa: F401


def device_count():
    from .backend import cupy
    return 0 if not is_available() else cupy.cuda.runtime.getDeviceCount()
