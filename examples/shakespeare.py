#!/usr/bin/env python3
"""Train a character-level GPT on tiny Shakespeare with tinygrad_tf, then write some.

    python examples/shakespeare.py --preset cpu        # small model, ~10 minutes on a laptop CPU
    python examples/shakespeare.py --preset seed --device cuda   # the lecture's 10.8M-parameter model

Every evaluation appends a line to <out-dir>/log.jsonl and writes <out-dir>/ckpt.npz
(atomically); --resume continues from it exactly. The model with the lowest val loss so
far is also kept, in best.npz; --sample-only writes text from it.
Ctrl-C saves a checkpoint before it stops. On a GPU each step replays a CUDA graph of the
forward and backward, captured once at the start (--no-cuda-graph: run them eagerly).
"""
import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import tinygrad_tf as tg  # noqa: E402
from tinygrad_tf import optim  # noqa: E402
from tinygrad_tf.data import BatchSampler, CharTokenizer, DataError, load_text, train_val_split  # noqa: E402
from tinygrad_tf.models.gpt import GPT, GPTConfig  # noqa: E402
from tinygrad_tf.optim.lr_scheduler import cosine_with_warmup  # noqa: E402

PRESETS = {
    # The lecture's model and schedule (Karpathy's "Let's build GPT").
    "seed": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64, dropout=0.2,
                 lr=3e-4, min_lr=3e-4, warmup_iters=0, max_iters=5000, eval_interval=500, eval_iters=200),
    # Small enough for a 2-core CPU: a readable sample in about ten minutes.
    "cpu": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, dropout=0.0,
                lr=2e-3, min_lr=2e-4, warmup_iters=100, max_iters=10000, eval_interval=500, eval_iters=50),
}
CHECKPOINT, BEST = "ckpt.npz", "best.npz"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu", help="defaults for every flag below")
    p.add_argument("--data", help="path to tinyshakespeare.txt (default: $TINYGRAD_TF_DATA or download)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--tf32", action="store_true", help="GPU: TF32 matrix products (faster, ~10 bits of mantissa)")
    p.add_argument("--out-dir", default="out/shakespeare", help="checkpoint, log.jsonl and plots go here")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--resume", action="store_true", help="continue from <out-dir>/ckpt.npz")
    p.add_argument("--sample-only", action="store_true", help="load the checkpoint and only write text")
    p.add_argument("--overwrite", action="store_true", help="start afresh in an --out-dir that holds a run")
    p.add_argument("--sample-tokens", type=int, default=500)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--prompt", default="\n", help="text the sample starts from")
    for name, kind in [("n_layer", int), ("n_head", int), ("n_embd", int), ("block_size", int),
                       ("batch_size", int), ("dropout", float), ("lr", float), ("min_lr", float),
                       ("warmup_iters", int), ("max_iters", int), ("eval_interval", int),
                       ("eval_iters", int)]:
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help="preset's value if unset")
    p.add_argument("--weight-decay", type=float, default=0.01, help="AdamW's decoupled weight decay")
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--grad-clip", type=float, default=0.0, help="clip the global grad norm (0: off)")
    p.add_argument("--no-cuda-graph", action="store_true",
                   help="GPU: run every step eagerly instead of replaying it as a captured CUDA graph")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in logs)")
    args = p.parse_args(argv)
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "eval_interval", "eval_iters"):
        if getattr(args, key) <= 0:
            p.error(f"--{key.replace('_', '-')} must be positive, got {getattr(args, key)}")
    if args.max_iters < 0 or args.warmup_iters < 0:
        p.error("--max-iters and --warmup-iters must be >= 0")
    if args.device == "auto":
        args.device = "cuda" if tg.cuda.is_available() else "cpu"
    if args.tf32:
        os.environ["CUPY_TF32"] = "1"  # CuPy reads it at its first float32 GEMM, which is still to come
    return args


def evaluate(model, splits, args, device):
    """Mean loss over eval_iters batches per split; the same batches every time."""
    model.eval()
    losses = {}
    with tg.no_grad():
        for name, data in splits.items():
            sampler = BatchSampler(data, args.batch_size, args.block_size, seed=args.seed + 1)
            total = 0.0
            for _ in range(args.eval_iters):
                x, y = sampler.sample()
                total += model(tg.tensor(x, device=device), tg.tensor(y, device=device))[1].item()
            losses[name] = total / args.eval_iters
    model.train()
    return losses


def save_checkpoint(path, model, optimizer, sampler, tokenizer, args, it, elapsed, evaluated, best_val):
    """Everything a resumed run needs to continue exactly (`evaluated`: iteration it is logged)."""
    tg.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "sampler": sampler.state_dict(), "tokenizer": tokenizer.state_dict(),
             "config": model.config.to_dict(), "iter": it, "elapsed_s": elapsed, "evaluated": evaluated,
             "best_val_loss": best_val,
             "args": {k: v for k, v in vars(args).items() if v is None or isinstance(v, (int, float, str, bool))}},
            path)


def make_train_step(model, optimizer, args):
    """step(x, y) -> loss: forward and backward of one batch, leaving the grads in each .grad.

    On a GPU (unless --no-cuda-graph) the two are captured once as a CUDA graph and each
    step replays it: one launch instead of ~450, whose Python and driver time would
    otherwise keep the GPU waiting (tinygrad_tf/cuda_graph.py). The capture follows a
    warm-up forward and backward on a batch of zeros, which updates nothing."""
    device = args.device

    def eager(x, y):
        _, loss = model(tg.tensor(x, device=device), tg.tensor(y, device=device))
        optimizer.zero_grad()
        loss.backward()
        return loss

    if device == "cpu" or args.no_cuda_graph:
        return eager
    xs, ys = (tg.zeros((args.batch_size, args.block_size), dtype=tg.int64, device=device) for _ in range(2))
    eager(xs.numpy(), ys.numpy())  # warm-up: compiles kernels, picks GEMM algorithms
    optimizer.zero_grad()
    graph = tg.cuda.CUDAGraph()
    with tg.cuda.graph(graph):
        _, loss = model(xs, ys)
        loss.backward()
    grads = [(p, p.grad) for p in model.parameters()]  # what each replay rewrites

    def replay(x, y):
        xs.copy_(x)
        ys.copy_(y)
        graph.replay()
        for p, g in grads:  # the graph's grads, also after clip_grad_norm_ replaced them last step
            p.grad = g
        return loss
    return replay


def plot_losses(log_path, png_path):
    """Save a loss curve when matplotlib is installed; say so when it is not."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: pip install matplotlib for a loss-curve PNG)")
        return
    rows = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["iter"] for r in rows], [r["train_loss"] for r in rows], label="train")
    ax.plot([r["iter"] for r in rows], [r["val_loss"] for r in rows], label="val")
    ax.set_xlabel("iteration"), ax.set_ylabel("cross-entropy (nats/char)"), ax.legend(), ax.grid(alpha=0.3)
    ax.set_title("tinygrad_tf GPT on tiny Shakespeare")
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    print(f"loss curve: {png_path}")


def sample_text(model, tokenizer, args, device):
    tg.manual_seed(args.seed)
    prompt = tg.tensor(tokenizer.encode(args.prompt)[None, :], device=device)
    out = model.generate(prompt, args.sample_tokens, temperature=args.temperature, top_k=args.top_k)
    return tokenizer.decode(out.numpy()[0])


def main(argv=None):
    args = parse_args(argv)
    out_dir = Path(args.out_dir)
    ckpt_path = out_dir / CHECKPOINT
    try:
        text = load_text(args.data)
    except DataError as e:
        sys.exit(f"error: {e}")
    tokenizer = CharTokenizer(text)
    state = None
    if args.resume or args.sample_only:
        path = out_dir / BEST if args.sample_only and (out_dir / BEST).exists() else ckpt_path
        if not path.exists():
            sys.exit(f"error: no checkpoint at {ckpt_path} (train first, or pass the --out-dir you trained with)")
        state = tg.load(path)
        saved_tok = CharTokenizer.from_state_dict(state["tokenizer"])
        if saved_tok != tokenizer:
            sys.exit(f"error: the checkpoint's vocabulary ({saved_tok.vocab_size} chars) differs from "
                     f"this text's ({tokenizer.vocab_size}); pass the --data it was trained on")
        config = GPTConfig(**state["config"])
        for key in ("n_layer", "n_head", "n_embd", "block_size", "dropout"):
            setattr(args, key, getattr(config, key))
    else:
        if ckpt_path.exists() and not args.overwrite:
            sys.exit(f"error: {out_dir} already holds a training run ({ckpt_path}); pass --resume to continue "
                     f"it, --overwrite to replace it, or another --out-dir")
        config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=args.block_size, n_layer=args.n_layer,
                           n_head=args.n_head, n_embd=args.n_embd, dropout=args.dropout)

    tg.manual_seed(args.seed)
    model = GPT(config).to(args.device, getattr(tg, args.dtype))
    print(f"GPT: {sum(p.numel() for p in model.parameters()):,} parameters, {config.n_layer} layers, "
          f"{config.n_head} heads, n_embd {config.n_embd}, block {config.block_size}; "
          f"device {args.device}, {args.dtype}; vocab {tokenizer.vocab_size}")
    if state is not None:
        model.load_state_dict(state["model"])
    if args.sample_only:
        print(f"from {path} (iteration {state['iter']})")
        print(sample_text(model, tokenizer, args, args.device))
        return

    data = tokenizer.encode(text)
    train_data, val_data = train_val_split(data)
    splits = {"train": train_data, "val": val_data}
    optimizer = optim.AdamW(model.parameters(), lr=args.lr, betas=(args.beta1, args.beta2),
                            weight_decay=args.weight_decay)
    sampler = BatchSampler(train_data, args.batch_size, args.block_size, seed=args.seed)
    start, elapsed, best_val = 0, 0.0, float("inf")
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        sampler.load_state_dict(state["sampler"])
        start, elapsed, best_val = int(state["iter"]), float(state["elapsed_s"]), float(state["best_val_loss"])
        print(f"resumed from {ckpt_path} at iteration {start}")
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "log.jsonl"
    if state is None and log_path.exists():
        log_path.unlink()  # a fresh run starts a fresh log

    tg.manual_seed(args.seed)  # the captured dropout seeds: the same in a fresh and a resumed run
    train_step = make_train_step(model, optimizer, args)
    tokens_per_step = args.batch_size * args.block_size
    it, window_start, window_tokens = start, time.perf_counter(), 0
    progress = None
    if not args.no_progress:
        from tqdm import tqdm
        progress = tqdm(total=args.max_iters, initial=start, unit="it", dynamic_ncols=True)
    # Ctrl-C only raises a flag, checked between steps, so the checkpoint it saves
    # never holds a half-applied optimizer step.
    stop = []
    previous_handler = signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    try:
        for it in range(start, args.max_iters + 1):
            if stop:
                save_checkpoint(ckpt_path, model, optimizer, sampler, tokenizer, args, it,
                                elapsed + time.perf_counter() - window_start, False, best_val)
                if progress:
                    progress.close()
                print(f"\ninterrupted: checkpoint at iteration {it} saved to {ckpt_path}; "
                      f"continue with --resume")
                sys.exit(130)
            logged = state is not None and it == start and state["evaluated"]
            if (it % args.eval_interval == 0 or it == args.max_iters) and not logged:
                now = time.perf_counter()
                elapsed += now - window_start
                tps = window_tokens / (now - window_start) if window_tokens else 0.0
                losses = evaluate(model, splits, args, args.device)
                row = {"iter": it, "train_loss": round(losses["train"], 4), "val_loss": round(losses["val"], 4),
                       "tokens_per_s": round(tps, 1), "elapsed_s": round(elapsed, 1)}
                with open(log_path, "a") as f:
                    f.write(json.dumps(row) + "\n")
                if losses["val"] < best_val:  # keep the best model too: long runs overfit
                    best_val = losses["val"]
                    tg.save({"model": model.state_dict(), "config": model.config.to_dict(),
                             "tokenizer": tokenizer.state_dict(), "iter": it, "val_loss": best_val},
                            out_dir / BEST)
                save_checkpoint(ckpt_path, model, optimizer, sampler, tokenizer, args, it, elapsed, True, best_val)
                message = (f"iter {it}: train {losses['train']:.4f}, val {losses['val']:.4f}, "
                           f"{tps:,.0f} tokens/s")
                progress.write(message) if progress else print(message, flush=True)
                window_start, window_tokens = time.perf_counter(), 0
            if it == args.max_iters:
                break
            # Dropout draws from a generator reseeded from (seed, iteration): a resumed run
            # makes exactly the same random choices as an uninterrupted one, on any device.
            tg.manual_seed(args.seed * 1_000_003 + it)
            for group in optimizer.param_groups:
                group["lr"] = cosine_with_warmup(it, args.lr, min(args.warmup_iters, args.max_iters),
                                                 args.max_iters, args.min_lr)
            loss = train_step(*sampler.sample())
            if args.grad_clip > 0:
                tg.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            optimizer.step()
            window_tokens += tokens_per_step
            if progress:
                progress.update(1)
                if it % 10 == 0:
                    seconds = time.perf_counter() - window_start
                    progress.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{window_tokens / seconds:,.0f}")
    finally:
        signal.signal(signal.SIGINT, previous_handler)
    if progress:
        progress.close()
    print(f"checkpoint: {ckpt_path}\nbest model (val loss {best_val:.4f}): {out_dir / BEST}\nlog: {log_path}")
    plot_losses(log_path, out_dir / "loss.png")
    print("\n--- sample ---")
    print(sample_text(model, tokenizer, args, args.device))


if __name__ == "__main__":
    main()
