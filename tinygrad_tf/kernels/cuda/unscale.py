"""A GradScaler's unscale_ as a multi-tensor kernel: one launch checks and unscales up to SLOTS
gradients, where the textbook way (the array ops in amp/grad_scaler.py) takes four launches a
gradient (isfinite, all, a maximum into found_inf, the multiply): ~300 for the seed GPT, a few
ms of host time a step when the optimizer runs eagerly.

Each element is read once: when it is not finite, found_inf (a 0-d float32) becomes 1 (read
before the multiply, as PyTorch's _amp_foreach_non_finite_check_and_unscale_; the threads that
find one all write the same 1), then it is multiplied by inv_scale in the gradient's dtype, the
textbook's g *= inv_scale (a float32 inv_scale, exact in float64), so the two agree bit for bit.
"""
import numpy as np

from ...backend import cupy
from ._cuda import on_gpu, raw_kernel

SLOTS = 12


def _source():
    """The kernel for SLOTS gradients; block row blockIdx.y takes gradient blockIdx.y (picked with
    a switch over the arguments, as kernels/cuda/adam.py does, not from an array of pointers)."""
    args = ", ".join(f"T* g{s}, long long n{s}" for s in range(SLOTS))
    cases = "\n".join(f"        case {s}: g = g{s}; n = n{s}; break;" for s in range(SLOTS))
    return (f'extern "C" __global__ void unscale_multi({args}, const float* inv_scale, float* found_inf) {{\n'
            "    T* g = 0; long long n = 0;\n"
            f"    switch (blockIdx.y) {{\n{cases}\n    }}\n"
            "    const T inv = (T)*inv_scale;\n"
            "    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;\n"
            "         i += (long long)gridDim.x * blockDim.x) {\n"
            "        T v = g[i];\n"
            "        if (!isfinite(v)) *found_inf = 1.0f;\n"
            "        g[i] = v * inv;\n"
            "    }\n}\n")


_SOURCE = _source()


def supports(grads, inv_scale, found_inf):
    """float32/float64 gradients, contiguous, on the GPU of the scaler's 0-d float32 arrays."""
    scalars = (inv_scale, found_inf)
    return (on_gpu(*grads) and all(g.flags.c_contiguous for g in grads)
            and all(on_gpu(a) and a.dtype == np.float32 and a.shape == () for a in scalars)
            and len({a.device.id for a in grads + list(scalars)}) == 1)


def unscale_(grads, inv_scale, found_inf):
    """Multiply every gradient by inv_scale in place, and set found_inf to 1 if one of them holds
    an inf or NaN (found_inf is not cleared here): one launch per SLOTS gradients of a dtype."""
    by_dtype = {}
    for g in grads:
        by_dtype.setdefault(g.dtype, []).append(g)
    threads = 256
    with cupy.cuda.Device(found_inf.device.id):
        for dtype, group in by_dtype.items():
            kernel = raw_kernel(_SOURCE, "unscale_multi", dtype)
            for start in range(0, len(group), SLOTS):
                chunk = group[start:start + SLOTS]
                args, largest = [], 0
                for s in range(SLOTS):  # unused slots repeat the first gradient with a size of 0
                    size = chunk[s].size if s < len(chunk) else 0
                    args += [chunk[s] if s < len(chunk) else chunk[0], np.int64(size)]
                    largest = max(largest, size)
                blocks = min(max(1, -(-largest // threads)), 512)
                kernel((blocks, SLOTS), (threads,), tuple(args) + (inv_scale, found_inf))
