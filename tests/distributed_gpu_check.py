"""DistributedDataParallel on real GPUs; run it under the launcher on a machine with 2 or more:

    NCCL_NVLS_ENABLE=0 python -m tinygrad_tf.distributed.run --nproc-per-node 2 tests/distributed_gpu_check.py

(not collected by pytest: it needs several processes). Checks, each rank starting from its own
random weights so that the broadcast at wrap time matters:
1. the gradients of one backward equal, on every rank, those of one GPU on the whole global batch;
2. after 10 SGD steps (scale-sensitive: a sum instead of a mean would show) and 10 AdamW steps,
   the parameters equal one GPU's trained on the global batch (AdamW: the largest absolute
   difference, within the bound its updates allow, see the limits);
3. the same AdamW run with the forward and backward replayed from a CUDA graph, the all-reduce
   captured in it, gives the same parameters as the eager DDP run;
4. no_sync() accumulates locally and the next backward averages the sum.
Rank 0 prints one line per check and writes them to $OUT/distributed_gpu_check.json if OUT is set.
"""
import faulthandler
import json
import os
import sys

import numpy as np

import tinygrad_tf as tg
import tinygrad_tf.distributed as dist
from tinygrad_tf import optim
from tinygrad_tf.models.gpt import GPT, GPTConfig

CONFIG = GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=2, n_embd=64, dropout=0.0)
B, STEPS = 4, 10


def global_batches(world):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 65, (B * world, CONFIG.block_size + 1)) for _ in range(STEPS)]


def model_on(device, seed):
    tg.manual_seed(seed)
    return GPT(CONFIG).to(device)


def train(model, forward, batches, make_opt, device, rows):
    opt = make_opt(model)
    for b in batches:
        _, loss = forward(tg.tensor(b[rows, :-1], device=device), tg.tensor(b[rows, 1:], device=device))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {n: p.detach().numpy() for n, p in model.named_parameters()}


def worst(a, b):
    return max(float(np.abs(a[n] - b[n]).max() / max(np.abs(b[n]).max(), 1e-30)) for n in a)


def worst_names(a, b, k=3):
    """The k parameters that differ most, with their largest absolute differences (for the report)."""
    diffs = sorted(((float(np.abs(a[n] - b[n]).max()), n) for n in a), reverse=True)[:k]
    return [f"{n}: {d:.2e}" for d, n in diffs]


def main():
    faulthandler.dump_traceback_later(150, exit=True)  # a hang prints where each rank is
    dist.init_process_group("nccl")
    rank, world, device = dist.get_rank(), dist.get_world_size(), f"cuda:{dist.get_local_rank()}"
    mine = slice(rank * B, (rank + 1) * B)
    everything = slice(0, B * world)
    batches = global_batches(world)
    results = {}

    def reference(make_opt, steps=batches):  # one GPU, the global batch, rank 0's initial weights
        model = model_on(device, seed=0)
        return model, train(model, model, steps, make_opt, device, everything)

    # 1. one backward's gradients
    model = model_on(device, seed=rank)  # rank 0's weights reach every rank through the wrap
    ddp = tg.nn.parallel.DistributedDataParallel(model)
    x, y = (tg.tensor(batches[0][mine, s], device=device) for s in (slice(0, -1), slice(1, None)))
    ddp(x, y)[1].backward()
    ref_model = model_on(device, seed=0)
    ref_model(tg.tensor(batches[0][everything, :-1], device=device),
              tg.tensor(batches[0][everything, 1:], device=device))[1].backward()
    ref_grads = {n: p.grad.numpy() for n, p in ref_model.named_parameters()}
    results["gradients"] = worst({n: p.grad.numpy() for n, p in model.named_parameters()}, ref_grads)

    # 2. ten steps of SGD and of AdamW
    for name, make_opt in (("sgd", lambda m: optim.SGD(m.parameters(), lr=0.1)),
                           ("adamw", lambda m: optim.AdamW(m.parameters(), lr=1e-3))):
        model = model_on(device, seed=rank)
        ddp = tg.nn.parallel.DistributedDataParallel(model)
        got = train(model, ddp, batches, make_opt, device, mine)
        ref = reference(make_opt)[1]
        results[name] = worst(got, ref)
        if name == "adamw":
            eager_adamw, adamw_reference, adamw_worst = got, ref, worst_names(got, ref)

    # 3. the same AdamW run, forward and backward replayed from a CUDA graph
    model = model_on(device, seed=rank)
    ddp = tg.nn.parallel.DistributedDataParallel(model)
    opt = optim.AdamW(model.parameters(), lr=1e-3)
    x, y = (tg.tensor(batches[0][mine, s], device=device) for s in (slice(0, -1), slice(1, None)))
    _, loss = ddp(x, y)  # step 1 eagerly: the warm-up (kernels, GEMM plans, the NCCL communicator)
    opt.zero_grad()
    loss.backward()
    opt.step()
    opt.zero_grad()
    graph = tg.cuda.CUDAGraph()
    with tg.cuda.graph(graph):
        _, loss = ddp(x, y)
        loss.backward()
    for b in batches[1:]:
        x.copy_(b[mine, :-1])
        y.copy_(b[mine, 1:])
        graph.replay()
        opt.step()
    results["adamw_cuda_graph_vs_eager"] = worst({n: p.detach().numpy() for n, p in model.named_parameters()},
                                                 eager_adamw)

    # 4. no_sync: two local backwards, then one averaged
    model = model_on(device, seed=rank)
    ddp = tg.nn.parallel.DistributedDataParallel(model)
    with ddp.no_sync():
        ddp(tg.tensor(batches[0][mine, :-1], device=device), tg.tensor(batches[0][mine, 1:], device=device))[1].backward()
    ddp(tg.tensor(batches[1][mine, :-1], device=device), tg.tensor(batches[1][mine, 1:], device=device))[1].backward()
    ref_model = model_on(device, seed=0)
    for b in batches[:2]:
        ref_model(tg.tensor(b[everything, :-1], device=device), tg.tensor(b[everything, 1:], device=device))[1].backward()
    results["no_sync"] = worst({n: p.grad.numpy() for n, p in model.named_parameters()},
                               {n: p.grad.numpy() for n, p in ref_model.named_parameters()})

    # fp32 (no TF32), different reduction orders: the mean over ranks of per-rank means against
    # one mean, so ~1e-7 relative per gradient, and SGD's parameters follow. AdamW moves each
    # coordinate by about lr * m / sqrt(v), whatever the gradient's scale: where a gradient is at
    # the level of rounding noise, the two runs may step it by up to lr in opposite directions, so
    # its parameters can differ by up to 2 * lr * steps = 0.02 (seen: 1e-5 and 1.5e-3 in two runs).
    # The gradients and SGD checks above are what show the averaging is exact.
    results["adamw"] = max(float(np.abs(got - ref).max()) for got, ref in zip(eager_adamw.values(),
                                                                                adamw_reference.values()))
    limits = {"gradients": 1e-5, "sgd": 1e-5, "adamw": 2 * 1e-3 * STEPS, "adamw_cuda_graph_vs_eager": 1e-6,
              "no_sync": 1e-5}
    failed = {k: v for k, v in results.items() if not v <= limits[k]}
    if rank == 0:
        for k, v in results.items():
            print(f"{k:28} worst difference {v:.2e} (limit {limits[k]:.0e}) {'FAIL' if k in failed else 'ok'}")
        print("adamw's largest differences:", ", ".join(adamw_worst), flush=True)
        if os.environ.get("OUT"):
            with open(os.path.join(os.environ["OUT"], "distributed_gpu_check.json"), "w") as f:
                json.dump(dict(world_size=world, results=results, limits=limits), f, indent=1)
    print(f"rank {rank}: destroying the process group", flush=True)
    dist.destroy_process_group()
    print(f"rank {rank}: done", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
