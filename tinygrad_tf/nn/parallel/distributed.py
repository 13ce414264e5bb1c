"""DistributedDataParallel: every rank runs the same model on its own batch; after each backward
the gradients are averaged over the ranks, so every rank takes the same optimizer step.

How (torch's design, without its overlap): the parameters are laid out in flat buckets of about
bucket_cap_mb; when a backward has completed a bucket's gradients (post-accumulate-grad hooks),
they are copied into the bucket, averaged with one NCCL all-reduce, and each .grad becomes a view
of the bucket. Views: the next backward's gradients land in fresh arrays, are copied in again,
and a CUDA graph that captured the step replays the same copies, all-reduce and views. Our graph
walk adds every leaf gradient at its very end, so there is no backward left to overlap the
all-reduces with; on the 2-GPU machine they take well under 1% of a step (see benchmarks)."""
import contextlib

from ... import distributed as dist
from ...backend import array_module
from ...grad_mode import no_grad
from ..module import Module

_MIB = 1 << 20


class _Bucket:
    """Parameters whose gradients are averaged together, and the flat array that holds them."""

    def __init__(self, params):
        self.params, self.flat, self.ready = params, None, set()

    def average(self, group):
        grads = [p.grad.data for p in self.params]
        if self.flat is None:  # one allocation, on the first backward (before any CUDA graph capture)
            self.flat = array_module(grads[0]).concatenate([g.reshape(-1) for g in grads])
        else:
            offset = 0
            for g in grads:
                self.flat[offset:offset + g.size] = g.reshape(-1)
                offset += g.size
        group.all_reduce(self.flat, "avg")
        offset = 0
        for p in self.params:  # the averaged gradients, where the all-reduce wrote them
            n = p.numel()
            p.grad.data = self.flat[offset:offset + n].reshape(p.shape)
            offset += n
        self.ready.clear()


class DistributedDataParallel(Module):
    """Wrap a model whose parameters are on this rank's device (dist.get_local_rank()).

    At wrap time every parameter and buffer is overwritten with rank 0's, so all ranks start
    equal. `module` is the model (its state_dict keys get the "module." prefix, as torch's)."""

    def __init__(self, module, bucket_cap_mb=25, broadcast_buffers=True):
        super().__init__()
        self.module = module
        self._group = dist._group()
        self._sync = True
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            raise ValueError("DistributedDataParallel: the module has no parameter that requires grad")
        devices = {p.device for p in params}
        if len(devices) > 1 or (self._group.world_size > 1 and devices != {self._group.device}):
            raise RuntimeError(f"DistributedDataParallel: this rank's parameters must be on {self._group.device} "
                               f"(its GPU, LOCAL_RANK), got {sorted(devices)}")
        with no_grad():
            for t in list(module.parameters()) + (list(module.buffers()) if broadcast_buffers else []):
                dist.broadcast(t, src=0)
        self._buckets = self._make_buckets(params, bucket_cap_mb * _MIB)
        for bucket in self._buckets:
            for p in bucket.params:
                p.register_post_accumulate_grad_hook(self._grad_ready_hook(bucket))

    @staticmethod
    def _make_buckets(params, cap_bytes):
        """Buckets of about cap_bytes, of one dtype each, filled from the last parameter back (the
        order a backward reaches them in, as torch does)."""
        buckets, current, size = [], [], 0
        for p in reversed(params):
            if current and (size + p.data.nbytes > cap_bytes or p.dtype != current[0].dtype):
                buckets.append(_Bucket(current))
                current, size = [], 0
            current.append(p)
            size += p.data.nbytes
        buckets.append(_Bucket(current))
        return buckets

    def _grad_ready_hook(self, bucket):
        def ready(param):
            if not self._sync:
                return
            bucket.ready.add(id(param))
            if len(bucket.ready) == len(bucket.params):
                bucket.average(self._group)
        return ready

    @contextlib.contextmanager
    def no_sync(self):
        """Backwards inside add to each rank's own .grad; the first backward after averages the sum."""
        self._sync = False
        try:
            yield
        finally:
            self._sync = True

    def forward(self, *args, **kwargs):
        unfinished = [b for b in self._buckets if b.ready]
        if unfinished:
            missing = sum(len(b.params) - len(b.ready) for b in unfinished)
            raise RuntimeError(f"DistributedDataParallel: the last backward left {missing} parameter(s) without a "
                               f"gradient, so its averaging never finished; every parameter must take part in "
                               f"the loss (or set requires_grad=False on the unused ones)")
        return self.module(*args, **kwargs)
