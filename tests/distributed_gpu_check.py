"""DistributedDataParallel on real GPUs; run it under the launcher on a machine with 2 or more:

    NCCL_NVLS_ENABLE=0 python -m tinygrad_tf.distributed.run --nproc-per-node 2 tests/distributed_gpu_check.py

(not collected by pytest: it needs several processes). Checks, each rank starting from its own
random weights so that the broadcast at wrap time matters:
1. the gradients of one backward equal, on every rank, those of one GPU on the whole global batch;
2. after 10 SGD steps (scale-sensitive: a sum instead of a mean would show) and 10 AdamW steps,
   the parameters equal one GPU's trained on the global batch;
3. the same AdamW run with the forward and backward replayed from a CUDA graph, the all-reduce
   captured in it, gives the same parameters as the eager DDP run;
4. no_sync() accumulates locally and the next backward averages the sum.
Rank 0 prints one line per check and writes them to $OUT/distributed_gpu_check.json if OUT is set.
"""
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


def main():
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
        results[name] = worst(got, reference(make_opt)[1])
        if name == "adamw":
            eager_adamw = got

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
    # one mean, so ~1e-7 relative per gradient; AdamW's steps divide by sqrt(v), which lets
    # near-zero gradients' rounding show more, so parameters get 1e-4.
    limits = {"gradients": 1e-5, "sgd": 1e-5, "adamw": 1e-4, "adamw_cuda_graph_vs_eager": 1e-4, "no_sync": 1e-5}
    failed = {k: v for k, v in results.items() if not v <= limits[k]}
    if rank == 0:
        for k, v in results.items():
            print(f"{k:28} worst relative difference {v:.2e} (limit {limits[k]:.0e}) {'FAIL' if k in failed else 'ok'}")
        if os.environ.get("OUT"):
            with open(os.path.join(os.environ["OUT"], "distributed_gpu_check.json"), "w") as f:
                json.dump(dict(world_size=world, results=results, limits=limits), f, indent=1)
    dist.destroy_process_group()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
