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
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

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
CHECKPOINT, BEST, LOG = "ckpt.npz", "best.npz", "log.jsonl"


def main(argv=None):
    """Build or resume the run, then the lecture's loop: batch, forward, backward, step; evaluate and
    checkpoint every eval_interval iterations."""
    args = parse_args(argv)
    text, tokenizer = load_corpus(args)
    state, source = load_checkpoint(args, tokenizer)
    if args.sample_only:
        model = build_model(args, tokenizer, state)
        print(f"from {source} (iteration {state['iter']})")
        print(sample_text(model, tokenizer, args))
        return
    if args.device == "cpu":
        tg.backend.keep_freed_memory()  # freed NumPy temporaries stay in the heap: CPU steps ~30% shorter
    run = start_run(args, text, tokenizer, build_model(args, tokenizer, state), state)
    tg.manual_seed(args.seed)  # the captured dropout seeds: the same in a fresh and a resumed run
    train_step = make_train_step(run.model, run.optimizer, args)
    clock = TrainingClock(run.elapsed, args.batch_size * args.block_size)
    bar = progress_bar(args, run.start)
    with ctrl_c_sets_flag() as interrupted:
        for it in range(run.start, args.max_iters + 1):
            if interrupted:
                stop_after_ctrl_c(run, it, clock, bar)
            due = it % args.eval_interval == 0 or it == args.max_iters
            if due and not (it == run.start and run.evaluated):  # resumed where it evaluated: logged already
                tokens_per_s = clock.pause()  # evaluating is not training
                losses = evaluate(run.model, run.splits, args)
                log_evaluation(run, it, losses, tokens_per_s, clock.elapsed)
                save_best(run, it, losses["val"])
                save_checkpoint(run, it, clock.elapsed, evaluated=True)
                clock.resume()
            if it == args.max_iters:
                break
            # Dropout draws from a generator reseeded from (seed, iteration): a resumed run
            # makes exactly the same random choices as an uninterrupted one, on any device.
            tg.manual_seed(args.seed * 1_000_003 + it)
            set_learning_rate(run.optimizer, it, args)
            loss = train_step(*run.sampler.sample())  # forward and backward
            if args.grad_clip > 0:
                tg.nn.utils.clip_grad_norm_(run.model.parameters(), args.grad_clip)
            run.optimizer.step()
            clock.step()
            show_progress(bar, it, loss, clock)
    bar.close()
    finish(run)


# --- building or resuming the run ---------------------------------------------------------
def parse_args(argv=None):
    """The flags, with the preset filling in those not given; a bad value stops here, before any work."""
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
    if args.temperature <= 0 or (args.top_k is not None and args.top_k < 1):
        p.error("--temperature must be positive and --top-k at least 1")
    if args.device == "auto":
        args.device = "cuda" if tg.cuda.is_available() else "cpu"
    try:
        tg.backend.parse_device(args.device)
    except (ValueError, RuntimeError) as e:  # an unknown name, or cuda without CuPy or a GPU
        p.error(str(e))
    if args.tf32:
        os.environ["CUPY_TF32"] = "1"  # CuPy reads it at its first float32 GEMM, which is still to come
    return args


def load_corpus(args):
    """The text and its tokenizer. The --prompt is checked against it now, not after training."""
    try:
        text = load_text(args.data)
    except DataError as e:
        sys.exit(f"error: {e}")
    tokenizer = CharTokenizer(text)
    try:
        tokenizer.encode(args.prompt)
    except ValueError as e:
        sys.exit(f"error: --prompt: {e}")
    return text, tokenizer


def load_checkpoint(args, tokenizer):
    """(state, path) of what --resume continues or --sample-only writes from (best.npz when there
    is one); (None, None) for a fresh run, which must not replace an earlier run by accident."""
    out_dir = Path(args.out_dir)
    ckpt_path = out_dir / CHECKPOINT
    if not (args.resume or args.sample_only):
        if ckpt_path.exists() and not args.overwrite:
            sys.exit(f"error: {out_dir} already holds a training run ({ckpt_path}); pass --resume to continue "
                     f"it, --overwrite to replace it, or another --out-dir")
        return None, None
    path = out_dir / BEST if args.sample_only and (out_dir / BEST).exists() else ckpt_path
    if not path.exists():
        sys.exit(f"error: no checkpoint at {ckpt_path} (train first, or pass the --out-dir you trained with)")
    state = tg.load(path)
    saved_tok = CharTokenizer.from_state_dict(state["tokenizer"])
    if saved_tok != tokenizer:  # its token ids would mean other characters
        sys.exit(f"error: the checkpoint's vocabulary ({saved_tok.vocab_size} chars) differs from "
                 f"this text's ({tokenizer.vocab_size}); pass the --data it was trained on")
    return state, path


def build_model(args, tokenizer, state):
    """The GPT the flags describe, or the checkpoint's, whose shape then overrides the flags: the args
    saved with the next checkpoint must describe the model it holds."""
    if state is None:
        try:
            config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=args.block_size, n_layer=args.n_layer,
                               n_head=args.n_head, n_embd=args.n_embd, dropout=args.dropout)
        except ValueError as e:  # e.g. --n-embd not a multiple of --n-head
            sys.exit(f"error: {e}")
    else:
        config = GPTConfig(**state["config"])
        for key in ("n_layer", "n_head", "n_embd", "block_size", "dropout"):
            setattr(args, key, getattr(config, key))
    tg.manual_seed(args.seed)
    model = GPT(config).to(args.device, getattr(tg, args.dtype))
    print(f"GPT: {sum(p.numel() for p in model.parameters()):,} parameters, {config.n_layer} layers, "
          f"{config.n_head} heads, n_embd {config.n_embd}, block {config.block_size}; "
          f"device {args.device}, {args.dtype}; vocab {tokenizer.vocab_size}")
    if state is not None:
        model.load_state_dict(state["model"])
    return model


@dataclass
class Run:
    """A training run and where it stands: what a checkpoint keeps, so that a resumed run continues exactly."""
    args: argparse.Namespace
    tokenizer: CharTokenizer
    model: GPT
    optimizer: optim.AdamW
    sampler: BatchSampler  # the training batches
    splits: dict  # "train" and "val" tokens, for evaluate
    out_dir: Path
    start: int = 0  # the first iteration of this session
    elapsed: float = 0.0  # seconds spent training before it, evaluations excluded
    best_val: float = float("inf")
    evaluated: bool = False  # iteration `start` was evaluated and logged before the checkpoint


def start_run(args, text, tokenizer, model, state):
    """The optimizer and batches for `model`, restored from `state` when resuming; a fresh run
    starts a fresh log."""
    train_data, val_data = train_val_split(tokenizer.encode(text))
    if len(val_data) <= args.block_size:
        sys.exit(f"error: the text is too short for --block-size {args.block_size} "
                 f"(its validation split has {len(val_data)} chars)")
    try:
        optimizer = optim.AdamW(model.parameters(), lr=args.lr, betas=(args.beta1, args.beta2),
                                weight_decay=args.weight_decay)
    except ValueError as e:  # --lr, --beta1, --beta2 or --weight-decay out of range
        sys.exit(f"error: {e}")
    sampler = BatchSampler(train_data, args.batch_size, args.block_size, seed=args.seed)
    run = Run(args, tokenizer, model, optimizer, sampler, {"train": train_data, "val": val_data}, Path(args.out_dir))
    if state is None:
        run.out_dir.mkdir(parents=True, exist_ok=True)
        (run.out_dir / LOG).unlink(missing_ok=True)
    else:
        optimizer.load_state_dict(state["optimizer"])
        sampler.load_state_dict(state["sampler"])
        run.start, run.elapsed = int(state["iter"]), float(state["elapsed_s"])
        run.best_val, run.evaluated = float(state["best_val_loss"]), bool(state["evaluated"])
        print(f"resumed from {run.out_dir / CHECKPOINT} at iteration {run.start}")
    return run


# --- the training step ----------------------------------------------------------------------
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


def set_learning_rate(optimizer, it, args):
    """Cosine decay from --lr to --min-lr after --warmup-iters of linear warm-up."""
    lr = cosine_with_warmup(it, args.lr, min(args.warmup_iters, args.max_iters), args.max_iters, args.min_lr)
    for group in optimizer.param_groups:
        group["lr"] = lr


# --- evaluation and checkpoints -------------------------------------------------------------
def evaluate(model, splits, args):
    """Mean loss over eval_iters batches per split; the same batches every time."""
    model.eval()
    losses = {}
    with tg.no_grad():
        for name, data in splits.items():
            sampler = BatchSampler(data, args.batch_size, args.block_size, seed=args.seed + 1)
            total = 0.0
            for _ in range(args.eval_iters):
                x, y = sampler.sample()
                total += model(tg.tensor(x, device=args.device), tg.tensor(y, device=args.device))[1].item()
            losses[name] = total / args.eval_iters
    model.train()
    return losses


def log_evaluation(run, it, losses, tokens_per_s, elapsed):
    """Append the evaluation to log.jsonl (for the plot, and for whoever reads the run later) and show it."""
    row = {"iter": it, "train_loss": round(losses["train"], 4), "val_loss": round(losses["val"], 4),
           "tokens_per_s": round(tokens_per_s, 1), "elapsed_s": round(elapsed, 1)}
    with open(run.out_dir / LOG, "a") as f:
        f.write(json.dumps(row) + "\n")
    tqdm.write(f"iter {it}: train {losses['train']:.4f}, val {losses['val']:.4f}, {tokens_per_s:,.0f} tokens/s")
    sys.stdout.flush()  # shown now also when stdout is a log file


def save_best(run, it, val_loss):
    """Keep the model with the lowest val loss so far in best.npz: long runs overfit."""
    if val_loss < run.best_val:
        run.best_val = val_loss
        tg.save({"model": run.model.state_dict(), "config": run.model.config.to_dict(),
                 "tokenizer": run.tokenizer.state_dict(), "iter": it, "val_loss": val_loss},
                run.out_dir / BEST)


def save_checkpoint(run, it, elapsed, evaluated):
    """Everything a resumed run needs to continue exactly (`evaluated`: iteration it is logged)."""
    args = {k: v for k, v in vars(run.args).items() if v is None or isinstance(v, (int, float, str, bool))}
    tg.save({"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
             "sampler": run.sampler.state_dict(), "tokenizer": run.tokenizer.state_dict(),
             "config": run.model.config.to_dict(), "iter": it, "elapsed_s": elapsed, "evaluated": evaluated,
             "best_val_loss": run.best_val, "args": args},
            run.out_dir / CHECKPOINT)


# --- Ctrl-C and progress --------------------------------------------------------------------
@contextlib.contextmanager
def ctrl_c_sets_flag():
    """Within it Ctrl-C only appends to the list it yields, which the loop checks between steps:
    the checkpoint it then saves never holds a half-applied optimizer step."""
    flag = []
    previous_handler = signal.signal(signal.SIGINT, lambda *_: flag.append(True))
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous_handler)


def stop_after_ctrl_c(run, it, clock, bar):
    """Save a checkpoint at iteration `it` (not yet evaluated) and exit as an interrupted program does."""
    clock.pause()
    save_checkpoint(run, it, clock.elapsed, evaluated=False)
    bar.close()
    print(f"\ninterrupted: checkpoint at iteration {it} saved to {run.out_dir / CHECKPOINT}; "
          f"continue with --resume")
    sys.exit(130)


class TrainingClock:
    """Seconds spent training, and tokens/s since the last evaluation; evaluations pause it."""

    def __init__(self, elapsed, tokens_per_step):
        self.elapsed, self.tokens_per_step = elapsed, tokens_per_step  # elapsed: until the last pause
        self.resume()

    def resume(self):
        self.since, self.tokens = time.perf_counter(), 0

    def step(self):
        self.tokens += self.tokens_per_step

    def tokens_per_s(self):
        return self.tokens / (time.perf_counter() - self.since)

    def pause(self):
        """Stop counting; return the tokens/s since the last resume (0 when no step was taken)."""
        seconds = time.perf_counter() - self.since
        self.elapsed += seconds
        return self.tokens / seconds if self.tokens else 0.0


def progress_bar(args, start):
    """A bar over the iterations; --no-progress disables it (its calls then do nothing), e.g. for logs."""
    return tqdm(total=args.max_iters, initial=start, unit="it", dynamic_ncols=True, disable=args.no_progress)


def show_progress(bar, it, loss, clock):
    """Advance the bar, and every 10 steps show loss and tokens/s (loss.item() waits for the GPU)."""
    bar.update(1)
    if it % 10 == 0 and not bar.disable:
        bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{clock.tokens_per_s():,.0f}")


# --- after training -------------------------------------------------------------------------
def finish(run):
    """Say where the run's files are, plot its losses and write a sample."""
    print(f"checkpoint: {run.out_dir / CHECKPOINT}\nbest model (val loss {run.best_val:.4f}): "
          f"{run.out_dir / BEST}\nlog: {run.out_dir / LOG}")
    plot_losses(run.out_dir / LOG, run.out_dir / "loss.png")
    print("\n--- sample ---")
    print(sample_text(run.model, run.tokenizer, run.args))


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


def sample_text(model, tokenizer, args):
    """--sample-tokens characters after --prompt, seeded by --seed: the same checkpoint writes the same text."""
    tg.manual_seed(args.seed)
    prompt = tg.tensor(tokenizer.encode(args.prompt)[None, :], device=args.device)
    out = model.generate(prompt, args.sample_tokens, temperature=args.temperature, top_k=args.top_k)
    return tokenizer.decode(out.numpy()[0])


if __name__ == "__main__":
    main()
