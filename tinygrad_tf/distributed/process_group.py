"""A process group: this process's rank among world_size processes, one GPU each, and the NCCL
communicator that carries their collectives (NCCL is NVIDIA's library for exactly this: rings and
trees over NVLink, PCIe and the network, and it can be captured in a CUDA graph).

With world_size 1 no communicator is made and every collective leaves its tensor as it is, so a
script written for several GPUs runs on one GPU or on the CPU too."""
import os
import socket
import weakref

import numpy as np

from .. import backend
from ..backend import cupy
from .store import TCPStore

try:  # CuPy's NCCL binding, where CuPy and the NCCL wheel are installed
    from cupy.cuda import nccl
except ImportError:
    nccl = None

NCCL_TYPES = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64",
              "int32": "NCCL_INT32", "int64": "NCCL_INT64"}


def nccl_module():
    """CuPy's NCCL binding, or a RuntimeError that says what to install."""
    if cupy is None or nccl is None or not getattr(nccl, "available", True):
        raise RuntimeError("backend='nccl' needs CuPy with NCCL: pip install the nvidia-nccl-cu12 or nvidia-nccl-cu13 "
                           "wheel matching your CuPy (cupy-cuda12x or cupy-cuda13x, the tinygrad_tf[cuda12]/"
                           "[cuda13] extra)")
    return nccl


class ProcessGroup:
    """Rendezvous through a TCP store on master_addr:master_port, then an NCCL communicator."""

    def __init__(self, rank, world_size, local_rank, master_addr, master_port, timeout):
        if not 0 <= rank < world_size:
            raise ValueError(f"RANK={rank} is out of range for WORLD_SIZE={world_size}")
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.device, self.comm, self.store = "cpu", None, None
        self.graphs = weakref.WeakSet()  # CUDA graphs that captured a collective: reset before the communicator goes
        if world_size == 1:
            return
        self.nccl = nccl_module()
        if not backend.cuda_available() or local_rank >= cupy.cuda.runtime.getDeviceCount():
            raise RuntimeError(f"rank {rank} needs GPU {local_rank} (LOCAL_RANK), but "
                               f"{cupy.cuda.runtime.getDeviceCount() if backend.cuda_available() else 0} are visible")
        cupy.cuda.Device(local_rank).use()
        self.device = f"cuda:{local_rank}"
        self.store = TCPStore(master_addr, master_port, is_server=rank == 0, timeout=timeout)
        self.store.set(f"rank/{rank}", {"world_size": world_size, "host": socket.gethostname(), "pid": os.getpid()})
        uid = self._agree_on_an_id()
        self.comm = self.nccl.NcclCommunicator(world_size, bytes(uid), rank)

    def _agree_on_an_id(self):
        """Rank 0 checks that every rank joined with the same world size, then hands out NCCL's id."""
        if self.rank == 0:
            for r in range(self.world_size):
                joined = self.store.get(f"rank/{r}")
                if joined["world_size"] != self.world_size:
                    message = (f"rank {r} (pid {joined['pid']} on {joined['host']}) has WORLD_SIZE="
                               f"{joined['world_size']}, rank 0 has {self.world_size}")
                    self.store.set("nccl_id", {"error": message})
                    raise RuntimeError(message)
            self.store.set("nccl_id", {"id": list(bytes(self.nccl.get_unique_id()))})  # 128 bytes, as JSON ints
        answer = self.store.get("nccl_id")
        if "error" in answer:
            raise RuntimeError(f"the rendezvous failed: {answer['error']}")
        return answer["id"]

    # --- collectives, in place on a CuPy array of this rank's GPU ----------------------------------
    def _call(self, name, array, *args):
        if array.dtype.name not in NCCL_TYPES:
            raise TypeError(f"{name}: NCCL takes {sorted(NCCL_TYPES)}, got {array.dtype}")
        if not backend.is_cuda_array(array) or array.device.id != self.local_rank:
            raise RuntimeError(f"{name}: the tensor must be on this rank's GPU ({self.device}), got "
                               f"{backend.device_of(array)}")
        if not array.flags.c_contiguous:
            raise ValueError(f"{name} needs a contiguous tensor")
        nccl_type = getattr(self.nccl, NCCL_TYPES[array.dtype.name])
        stream = cupy.cuda.get_current_stream().ptr
        capture = backend.state(self.device).capture
        if capture is not None:
            self.graphs.add(capture)
        getattr(self.comm, name)(*args[:-1], array.size, nccl_type, *args[-1:], stream)

    def all_reduce(self, array, op):
        if self.comm is not None:
            self._call("allReduce", array, array.data.ptr, array.data.ptr, getattr(self.nccl, f"NCCL_{op.upper()}"))

    def broadcast(self, array, src):
        if self.comm is not None:
            self._call("bcast", array, array.data.ptr, src)

    def barrier(self):
        if self.comm is not None:
            word = cupy.zeros(1, np.float32)
            self.all_reduce(word, "sum")
            cupy.cuda.get_current_stream().synchronize()

    def destroy(self):
        """Free the communicator before exit: NCCL's own teardown at interpreter exit can hang. A
        CUDA graph that captured one of its collectives keeps the communicator busy (NCCL counts
        such graphs), so ncclCommDestroy would wait forever: those graphs are reset first."""
        if self.comm is not None:
            for graph in list(self.graphs):
                graph.reset()
            cupy.cuda.Device(self.local_rank).synchronize()
            self.comm.destroy()
            self.comm = None
        if self.store is not None:
            self.store.close()
            self.store = None
