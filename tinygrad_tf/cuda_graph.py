"""CUDA graphs: GPU work captured once and replayed with one launch, as torch.cuda.CUDAGraph.

Why: the seed GPT's training step is ~450 kernel launches and cuBLAS calls, each costing
15-40 us of Python and driver time. With TF32 that host time is longer than the GPU's
work, so the GPU waits. A replay launches all of it at once.

    g = tg.cuda.CUDAGraph()
    step(x, y)                    # warm-up, eagerly: compiles kernels, picks GEMM algorithms
    optimizer.zero_grad()         # grads must not exist yet: the capture's backward makes them
    with tg.cuda.graph(g):
        _, loss = model(x, y)     # x, y: tensors made before the capture
        loss.backward()
    for batch in batches:
        x.copy_(batch.x); y.copy_(batch.y)
        g.replay()                # rewrites loss and every .grad in place
        optimizer.step()          # eager; don't zero the grads: the replay overwrites them

A replay runs no Python: what the host decided during the capture is fixed. Shapes,
which kernels run, their arguments and every array's address are those of the capture.
So inputs go in through tensors made before it, and outputs are the tensors it made.
The capture itself runs nothing, so run the code once before it: a first call compiles
kernels, times GEMM algorithms and uploads constants, which can't happen in a capture.

Three things would go stale, and are handled:
- Memory: arrays made during the capture come from a memory pool of the graph's own, so
  nothing allocated between replays can take their place.
- Dropout: the seeds are baked into the launches. The masks hash seed + a device word,
  the graph's `seed_word`, and each replay first writes a fresh seed into it, from the
  stream that tg.manual_seed starts (kernels/cuda/random.py). So each replay draws new
  masks, and seeded runs repeat. (That is the dropout kernels' path, on by default; the
  textbook ops' masks would be captured as they are and replayed unchanged.)
- Index checks: their host copies are captured, and checked after each replay (bounds.py).

While a capture runs, the device's state (backend.DeviceState) names this graph as its
`capture`: that is how the kernels find the seed word and the index checks their list.
"""
import contextlib

import numpy as np

from . import backend, bounds
from .backend import cuda_available, cupy


class CUDAGraph:
    """A captured sequence of GPU work: capture it with tg.cuda.graph(g), then g.replay()."""

    def __init__(self):
        self._graph = None
        self._stream = None
        self._settings = None  # while capturing: an ExitStack that restores what the capture changed
        self.pool = None  # the CuPy memory pool of the arrays made in the capture (all of it is the graph's)
        self.seed_word = None  # the dropout kernels add this to their seeds (kernels/cuda/random.py)
        self.index_checks = []  # (pinned host copy of (lo, hi), report) of the captured index checks
        self._device = None  # the DeviceState of the GPU it was captured on

    def capture_begin(self):
        """Start capturing the current device's GPU work (tg.cuda.graph(g) calls this)."""
        if not cuda_available():
            raise RuntimeError("CUDA graphs need a GPU, and none is visible (tg.cuda.is_available() is False)")
        if self._graph is not None or self._settings is not None:
            raise RuntimeError("this CUDAGraph has already been captured; make a new one for new work")
        device = backend.state(f"cuda:{cupy.cuda.Device().id}")
        if device.capture is not None:
            raise RuntimeError(f"another CUDA graph is being captured on {device.device}")
        cupy.cuda.Device().synchronize()  # work queued before the capture is done,
        bounds.raise_ready(device, wait=True)  # and its index checks reported
        pool, word, stream = cupy.cuda.MemoryPool(), cupy.zeros(1, np.uint64), cupy.cuda.Stream(non_blocking=True)
        settings = contextlib.ExitStack()
        settings.enter_context(stream)
        settings.enter_context(cupy.cuda.using_allocator(pool.malloc))
        try:
            stream.begin_capture()
        except BaseException:
            settings.close()
            raise
        self._stream, self._settings, self._device = stream, settings, device
        self.pool, self.seed_word, self.index_checks = pool, word, []
        device.capture = self
        settings.callback(setattr, device, "capture", None)

    def capture_end(self):
        """Finish the capture; the graph is then ready to replay."""
        if self._settings is None:
            raise RuntimeError("capture_end() without capture_begin()")
        settings, self._settings = self._settings, None
        try:
            self._graph = self._stream.end_capture()
        finally:
            settings.close()

    def abort_capture(self):
        """Drop a capture that failed, and restore what it changed (tg.cuda.graph calls this)."""
        if self._settings is None:
            return
        settings, self._settings = self._settings, None
        self.pool, self.seed_word, self.index_checks = None, None, []
        try:
            self._stream.end_capture()
        except Exception:  # noqa: BLE001 - a failed capture may refuse to end; the caller raises its error
            pass
        finally:
            settings.close()

    def reset(self):
        """Drop the captured work (torch's name). A graph that captured NCCL collectives holds their
        communicator, so destroy_process_group resets such graphs before destroying it."""
        self._graph = None

    def replay(self):
        """Run the captured work again, on the current stream."""
        if self._graph is None:
            raise RuntimeError("replay() needs a captured graph: capture one first with tg.cuda.graph(g)")
        bounds.raise_ready(self._device, wait=True)  # the last replay's index checks, before this one rewrites them
        self.seed_word.fill(self._device.next_seed())  # new dropout masks
        self._graph.launch()
        if self.index_checks:
            bounds.arm(self._device, self.index_checks)


@contextlib.contextmanager
def graph(cuda_graph):
    """Capture the GPU work of the with-block into `cuda_graph` (torch.cuda.graph)."""
    cuda_graph.capture_begin()
    try:
        yield cuda_graph
    except BaseException as e:
        cuda_graph.abort_capture()
        if isinstance(e, Exception) and "captur" in str(e).lower():
            raise RuntimeError(f"{e}\n(CUDA graph capture: run the captured code once before capturing it, so "
                               f"that nothing in it loads code or times GEMMs; read no GPU value back inside "
                               f"it; and keep tinygrad_tf's kernels on: CuPy's own cuBLAS calls, e.g. "
                               f"cupy.matmul, refuse to be captured)") from e
        raise
    cuda_graph.capture_end()
