"""Several processes, one GPU each, training together (torch.distributed's names).

    python -m tinygrad_tf.distributed.run --nproc-per-node 2 train.py     # or torchrun

    import tinygrad_tf.distributed as dist
    dist.init_process_group(backend="nccl")      # reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT
    model = tg.nn.parallel.DistributedDataParallel(model.to(f"cuda:{dist.get_local_rank()}"))
    ...
    dist.destroy_process_group()

The launcher (or torchrun, or a Slurm job) sets the environment; the ranks meet at
MASTER_ADDR:MASTER_PORT (a TCP store served by rank 0) and agree on an NCCL communicator, which
then carries all_reduce, broadcast and barrier. The group this process joined is the package's
one piece of state, as torch.distributed's default group is."""
import os

from .process_group import ProcessGroup


class ReduceOp:
    SUM, AVG, MAX, MIN, PRODUCT = "sum", "avg", "max", "min", "prod"


class _Default:
    group = None


def _environment(name, slurm, default=None):
    value = os.environ.get(name, os.environ.get(slurm) if slurm else None)
    if value is None and default is None:
        raise RuntimeError(f"init_process_group: ${name} is not set; start the script with "
                           f"python -m tinygrad_tf.distributed.run --nproc-per-node N (or torchrun), which sets it")
    return value if value is not None else default


def init_process_group(backend="nccl", timeout=300.0, rank=None, world_size=None):
    """Join the job's process group: rank, world size and where to meet come from the launcher's
    environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; Slurm's SLURM_PROCID,
    SLURM_NTASKS, SLURM_LOCALID too). A rank that does not join within `timeout` seconds fails
    the rendezvous with a clear error."""
    if backend != "nccl":
        raise ValueError(f"init_process_group: backend must be 'nccl', got {backend!r}")
    if _Default.group is not None:
        raise RuntimeError("init_process_group was called twice; call destroy_process_group first")
    rank = int(rank if rank is not None else _environment("RANK", "SLURM_PROCID", "0"))
    world_size = int(world_size if world_size is not None else _environment("WORLD_SIZE", "SLURM_NTASKS", "1"))
    local_rank = int(_environment("LOCAL_RANK", "SLURM_LOCALID", str(rank)))
    if world_size > 1:
        addr, port = _environment("MASTER_ADDR", None), int(_environment("MASTER_PORT", None))
    else:
        addr, port = "127.0.0.1", 0
    _Default.group = ProcessGroup(rank, world_size, local_rank, addr, port, timeout)


def _group():
    if _Default.group is None:
        raise RuntimeError("the default process group is not initialized: call "
                           "tinygrad_tf.distributed.init_process_group() first")
    return _Default.group


def is_initialized():
    return _Default.group is not None


def get_rank():
    return _group().rank


def get_world_size():
    return _group().world_size


def get_local_rank():
    return _group().local_rank


def all_reduce(tensor, op=ReduceOp.SUM):
    """Reduce the tensor over every rank, in place (torch.distributed.all_reduce)."""
    _group().all_reduce(tensor.data, op)
    tensor._version[0] += 1


def broadcast(tensor, src=0):
    """Overwrite the tensor on every rank with rank src's, in place."""
    _group().broadcast(tensor.data, src)
    tensor._version[0] += 1


def barrier():
    _group().barrier()


def destroy_process_group():
    if _Default.group is not None:
        _Default.group.destroy()
        _Default.group = None


__all__ = ["ReduceOp", "init_process_group", "is_initialized", "get_rank", "get_world_size", "get_local_rank",
           "all_reduce", "broadcast", "barrier", "destroy_process_group"]
