#!/usr/bin/env python3
"""Train a character-level GPT on tiny Shakespeare with tinygrad_tf, then write some.

    python examples/shakespeare.py --preset cpu        # small model, ~10 minutes on a laptop CPU
    python examples/shakespeare.py --preset seed --device cuda   # the lecture's 10.8M-parameter model
    python -m tinygrad_tf.distributed.run --nproc-per-node 2 examples/shakespeare.py --preset seed   # 2 GPUs

Every evaluation appends a line to <out-dir>/log.jsonl and writes <out-dir>/ckpt.npz
(atomically); --resume continues from it exactly. The model with the lowest val loss so
far is also kept, in best.npz; --sample-only writes text from it (no data file needed).
Ctrl-C or SIGTERM saves a checkpoint before it stops (a second Ctrl-C stops at once). On a GPU
each step replays a CUDA graph of the forward and backward, captured once at the start
(--no-cuda-graph: run them eagerly).

Under the launcher (or torchrun) each process trains on its own GPU, cuda:LOCAL_RANK, on its own
rows of a global batch of batch_size x world_size sequences, and the gradients are averaged over
the processes in each backward (DistributedDataParallel). Rank 0 alone shows the progress, writes
the log and the checkpoints (the same files as a single-process run's) and samples at the end.
"""
import argparse
import contextlib
import json
import math
import os
import signal
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

try:  # NumPy (and CuPy) take a moment to import: Ctrl-C meanwhile is one line too, not a traceback
    import numpy as np
    from tqdm import tqdm

    import tinygrad_tf as tg
    import tinygrad_tf.distributed as dist
    from tinygrad_tf import optim
    from tinygrad_tf.data import BatchSampler, CharTokenizer, DataError, load_text, train_val_split
    from tinygrad_tf.models.gpt import GPT, GPTConfig
    from tinygrad_tf.optim.lr_scheduler import cosine_with_warmup
    from tinygrad_tf.serialize import CheckpointError
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)

PRESETS = {
    # The lecture's model and schedule (Karpathy's "Let's build GPT").
    "seed": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64, dropout=0.2,
                 lr=3e-4, min_lr=3e-4, warmup_iters=0, max_iters=5000, eval_interval=500, eval_iters=200),
    # Small enough for a 2-core CPU: a readable sample in about ten minutes.
    "cpu": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, dropout=0.0,
                lr=2e-3, min_lr=2e-4, warmup_iters=100, max_iters=10000, eval_interval=500, eval_iters=50),
}
PRESET_NOTES = {"seed": "the lecture's model and schedule (Karpathy's \"Let's build GPT\"): 10.8M parameters, "
                        "for a GPU",
                "cpu": "0.8M parameters, small enough for a 2-core CPU: a readable sample in about ten minutes"}
DEFAULTS = dict(preset="cpu", dtype="float32", seed=1337, weight_decay=0.01, beta1=0.9, beta2=0.999, grad_clip=0.0)
MODEL_FLAGS = ("n_layer", "n_head", "n_embd", "block_size", "dropout")  # the GPTConfig
RUN_FLAGS = (*DEFAULTS, *PRESETS["cpu"])  # what a run is made of: a checkpoint keeps them
CHANGEABLE_ON_RESUME = ("max_iters", "eval_interval", "eval_iters")  # e.g. train longer
CHECKPOINT, BEST, LOG = "ckpt.npz", "best.npz", "log.jsonl"


def main(argv=None):
    """Build or resume the run, then the lecture's loop: batch, forward, backward, step; evaluate and
    checkpoint every eval_interval iterations. Under the launcher every rank runs this loop on its own GPU."""
    args = parse_args(argv)
    with process_group():  # launched (WORLD_SIZE set): join the other ranks; leave at the end, also on errors
        state, source = load_checkpoint(args)
        tokenizer, splits = load_corpus(args, state)
        if args.sample_only:
            model = build_model(args, tokenizer, state, source)
            print(f"from {source} (iteration {state['iter']})")
            print(sample_text(model, tokenizer, args))
            return
        if args.device == "cpu":
            tg.backend.keep_freed_memory()  # freed NumPy temporaries stay in the heap: CPU steps ~30% shorter
        run = start_run(args, tokenizer, splits, build_model(args, tokenizer, state, source), state)
        tg.manual_seed(args.seed)  # the captured dropout seeds: the same in a fresh and a resumed run
        train_step = make_train_step(run.model, run.optimizer, args, run.scaler)
        clock = TrainingClock(run.elapsed, args.batch_size * world_size() * args.block_size)  # every rank's tokens
        bar = progress_bar(args, run.start)
        with stop_signals_set_flag(args.device) as stop_requested:
            for it in range(run.start, args.max_iters + 1):
                due = it % args.eval_interval == 0 or it == args.max_iters
                logged = due and it == run.start and run.evaluated  # resumed where it evaluated
                if due and not logged:
                    if it == run.start:
                        say(f"evaluating at iteration {it} ({args.eval_iters} batches of each split)...")
                    tokens_per_s = clock.pause()  # evaluating is not training
                    losses = evaluate(run.model, run.splits, args, stop_requested)  # None: cut short by Ctrl-C
                    if losses is not None:
                        log_evaluation(run, it, losses, tokens_per_s, clock.elapsed)
                        save_best(run, it, losses["val"])
                        save_checkpoint(run, it, clock.elapsed, evaluated=True)
                        logged = True
                    clock.resume()
                if stop_requested():  # Ctrl-C or SIGTERM during the last step or this evaluation (on any rank)
                    stop_after_signal(run, it, logged, clock, bar, stop_requested.signum)
                if it == args.max_iters:
                    break
                # Dropout draws from a generator reseeded from (seed, iteration, rank): a resumed run
                # makes exactly the same random choices as an uninterrupted one, on any device.
                tg.manual_seed((args.seed * 1_000_003 + it) * world_size() + rank())
                set_learning_rate(run.optimizer, it, args)
                loss = train_step(*run.sampler.sample())  # forward and backward (and the ranks' average)
                if args.grad_clip > 0:
                    run.scaler.unscale_(run.optimizer)  # float16: clip the true gradients
                    tg.nn.utils.clip_grad_norm_(run.model.parameters(), args.grad_clip)
                run.scaler.step(run.optimizer)  # float16: skipped (on the GPU) when a gradient overflowed
                run.count_skipped()
                run.scaler.update()
                clock.step()
                show_progress(bar, it, loss, clock)
        bar.close()
        finish(run)


# --- the flags --------------------------------------------------------------------------------
def make_parser():
    """Every flag, with its help; those of a run (RUN_FLAGS) default to None: the preset, or with
    --resume the checkpoint, fills in those not given."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=presets_help(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help=f"the defaults of the model and schedule flags below (default: {DEFAULTS['preset']}; "
                        f"the presets are listed at the end)")
    p.add_argument("--data", help="path to tinyshakespeare.txt (default: $TINYGRAD_TF_DATA, else a "
                                  "checksummed download kept in ~/.cache/tinygrad_tf)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto: cuda when a GPU is usable; "
                                                    "under the launcher cuda is each process's own GPU, "
                                                    "cuda:LOCAL_RANK (default: %(default)s)")
    p.add_argument("--dtype", choices=["float32", "float64", "bfloat16", "float16"],
                   help=f"dtype of the weights and activations (default: {DEFAULTS['dtype']}); bfloat16 and "
                        f"float16 train in mixed precision: float32 weights, the forward under tg.autocast, "
                        f"and float16's loss scaled by a tg.amp.GradScaler")
    p.add_argument("--tf32", action="store_true", help="GPU: TF32 matrix products (faster, ~10 bits of mantissa)")
    p.add_argument("--out-dir", default="out/shakespeare",
                   help="checkpoints, log.jsonl and the loss plot go here (default: %(default)s)")
    p.add_argument("--seed", type=int, help=f"seeds the initial weights, the batches, dropout and the sample "
                                            f"(default: {DEFAULTS['seed']})")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true",
                      help="continue from <out-dir>/ckpt.npz; flags not given take the checkpoint's values")
    mode.add_argument("--sample-only", action="store_true",
                      help="only write text, from <out-dir>/best.npz (else ckpt.npz); needs no data file")
    mode.add_argument("--overwrite", action="store_true", help="start afresh in an --out-dir that holds a run")
    p.add_argument("--sample-tokens", type=int, default=500,
                   help="characters the sample adds to the prompt (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="divides the logits before sampling: below 1 safer text, above 1 wilder "
                        "(default: %(default)s)")
    p.add_argument("--top-k", type=int, help="sample only from the k likeliest characters (default: all)")
    p.add_argument("--prompt", default="\n", help="text the sample starts from (default: a newline)")
    for name, text in [("n_layer", "transformer blocks"), ("n_head", "attention heads, a divisor of --n-embd"),
                       ("n_embd", "width of the embeddings"), ("block_size", "context length, in characters"),
                       ("batch_size", "sequences per training step of each process: under the launcher the "
                                      "global batch is batch_size x the number of processes"),
                       ("dropout", "dropout probability, in [0, 1)"),
                       ("lr", "peak learning rate"), ("min_lr", "learning rate at the end of the cosine decay"),
                       ("warmup_iters", "steps of linear warm-up"), ("max_iters", "training steps in all"),
                       ("eval_interval", "evaluate and checkpoint every this many steps"),
                       ("eval_iters", "batches of each split per evaluation")]:
        p.add_argument("--" + name.replace("_", "-"), type=type(PRESETS["cpu"][name]),
                       help=text + " (default: the preset's)")
    p.add_argument("--weight-decay", type=float,
                   help=f"AdamW's decoupled weight decay (default: {DEFAULTS['weight_decay']})")
    p.add_argument("--beta1", type=float, help=f"AdamW's decay of its gradient average (default: {DEFAULTS['beta1']})")
    p.add_argument("--beta2", type=float,
                   help=f"AdamW's decay of its squared-gradient average (default: {DEFAULTS['beta2']})")
    p.add_argument("--grad-clip", type=float,
                   help=f"clip the global grad norm to this (default: {DEFAULTS['grad_clip']}: off)")
    p.add_argument("--no-cuda-graph", action="store_true",
                   help="GPU: run every step eagerly instead of replaying it as a captured CUDA graph")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in logs)")
    return p


def presets_help():
    """The --help epilog: each preset's values, and what it is for."""
    lines = ["presets (a flag not given takes the preset's value; with --resume, the checkpoint's):"]
    for name, values in PRESETS.items():
        lines += textwrap.wrap(", ".join(f"{k}={v}" for k, v in values.items()), 100,
                               initial_indent=f"  {name}: ", subsequent_indent=" " * (len(name) + 4))
        lines.append(" " * (len(name) + 4) + PRESET_NOTES[name])
    return "\n".join(lines)


def parse_args(argv=None):
    """The flags, checked: a bad value, an unusable device or --out-dir stops here, before any work, with
    one line (argparse's own errors, e.g. a word for a number, also show the usage and exit with 2).
    A fresh run's flags not given take the preset's values; load_checkpoint fills in those of --resume
    and --sample-only."""
    args = make_parser().parse_args(argv)
    args.given = {key for key in RUN_FLAGS if getattr(args, key) is not None}
    if not (args.resume or args.sample_only):
        fill_flags(args, {})
    if problem := bad_value(args):
        sys.exit(f"error: {problem}")
    if not args.prompt:
        sys.exit("error: --prompt must not be empty: the sample continues it (default: a newline)")
    if args.device == "auto":
        args.device = "cuda" if tg.cuda.is_available() else "cpu"
    if "WORLD_SIZE" in os.environ:  # started by the launcher or torchrun
        args.device = device_of_this_rank(args)
    try:
        tg.backend.parse_device(args.device)
    except (ValueError, RuntimeError) as e:  # an unknown name, or cuda without CuPy or a GPU
        sys.exit(f"error: --device: {e}")
    out_dir = Path(args.out_dir)
    existing = next(d for d in (out_dir, *out_dir.parents) if d.exists())  # out_dir or the folder it goes in
    if not existing.is_dir():
        sys.exit(f"error: --out-dir {out_dir}: {existing} is not a directory")
    if not args.sample_only and not os.access(existing, os.W_OK | os.X_OK):
        sys.exit(f"error: --out-dir {out_dir}: {existing} is not writable")
    if args.tf32:
        os.environ["CUPY_TF32"] = "1"  # CuPy reads it at its first float32 GEMM, which is still to come
    return args


def fill_flags(args, saved):
    """Set each run flag not given to `saved`'s value (a checkpoint's), else the preset's, else DEFAULTS'."""
    preset = args.preset or saved.get("preset") or DEFAULTS["preset"]
    values = {**DEFAULTS, **PRESETS[preset], **saved, "preset": preset}
    for key in RUN_FLAGS:
        if getattr(args, key) is None:
            setattr(args, key, values[key])


def bad_value(args):
    """What is wrong with the flags' values (those set so far), or None."""
    positive, finite = (lambda v: v > 0), (lambda v: 0 <= v < math.inf)
    rules = {  # flag: (test, what it must be)
        **{k: (positive, "positive") for k in ("n_layer", "n_head", "n_embd", "block_size", "batch_size",
                                                "eval_interval", "eval_iters")},
        **{k: ((lambda v: v >= 0), ">= 0") for k in ("max_iters", "warmup_iters", "sample_tokens")},
        "lr": ((lambda v: 0 < v < math.inf), "a positive, finite learning rate"),
        **{k: (finite, ">= 0 and finite") for k in ("min_lr", "weight_decay", "grad_clip")},
        **{k: ((lambda v: 0 <= v < 1), "in [0, 1)") for k in ("dropout", "beta1", "beta2")},
        "temperature": ((lambda v: 0 < v < math.inf), "positive and finite"),
        "top_k": ((lambda v: v >= 1), "at least 1"),
        "seed": ((lambda v: 0 <= v < 2**32), "in [0, 2**32)"),
    }
    for key, (ok, must_be) in rules.items():
        value = getattr(args, key)
        if value is not None and not ok(value):
            return f"--{key.replace('_', '-')} must be {must_be}, got {value}"
    if args.n_embd and args.n_head and args.n_embd % args.n_head:
        return f"n_embd (--n-embd {args.n_embd}) must be divisible by n_head (--n-head {args.n_head})"
    return None


# --- several processes: the launcher's ranks -----------------------------------------------
def device_of_this_rank(args):
    """Under the launcher (WORLD_SIZE set) each process trains on its own GPU: --device cuda (or auto
    on a GPU machine) becomes cuda:LOCAL_RANK. The CPU takes one process only (the tests launch one)."""
    try:
        world = int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")))
    except ValueError:
        sys.exit(f"error: $WORLD_SIZE ({os.environ['WORLD_SIZE']!r}) and $LOCAL_RANK must be integers")
    if world > 1 and args.sample_only:
        sys.exit("error: --sample-only writes one sample: run it without the launcher")
    if world > 1 and args.device == "cpu":
        sys.exit(f"error: --device cpu: the launcher's {world} processes train on one GPU each (NCCL); on the "
                 f"CPU launch one (--nproc-per-node 1), or run the script alone")
    if args.device == "cuda":
        return f"cuda:{local_rank}"
    if args.device.startswith("cuda:") and args.device != f"cuda:{local_rank}":
        sys.exit(f"error: --device {args.device}: under the launcher each process trains on GPU LOCAL_RANK, "
                 f"here cuda:{local_rank}; pass --device cuda")
    return args.device


@contextlib.contextmanager
def process_group():
    """Under the launcher or torchrun (WORLD_SIZE set): join the other ranks for the run (NCCL; one
    process needs no NCCL, and runs on the CPU too) and leave at the end, also after an error or Ctrl-C.
    Alone: nothing, as before there was a launcher."""
    if "WORLD_SIZE" not in os.environ:
        yield
        return
    try:
        dist.init_process_group(backend="nccl")
    except (RuntimeError, ValueError, OSError) as e:  # no NCCL or GPU, or a rank that never came
        sys.exit(f"error: {' '.join(str(e).split())}")
    try:
        yield
    finally:
        dist.destroy_process_group()


def rank():
    """This process's rank: 0 alone or on the launcher's first process, the one that prints, logs and saves."""
    return dist.get_rank() if dist.is_initialized() else 0


def world_size():
    """How many processes train together: 1 alone."""
    return dist.get_world_size() if dist.is_initialized() else 1


def data_parallel(model):
    """Under the launcher: the model in DistributedDataParallel, which gives every rank rank 0's weights
    now and averages the gradients over the ranks in each backward (inside it, so a CUDA graph of the
    backward captures the all-reduce too; one process averages with no one). Alone: the model."""
    return tg.nn.parallel.DistributedDataParallel(model) if dist.is_initialized() else model


# --- building or resuming the run ---------------------------------------------------------
def load_checkpoint(args):
    """(state, path) of what --resume continues or --sample-only writes from (best.npz when there is
    one), whose config and flags then fill in the flags not given; a given one that contradicts them
    stops the program. (None, None) for a fresh run, which must not replace an earlier run by accident."""
    out_dir = Path(args.out_dir)
    ckpt_path, best_path = out_dir / CHECKPOINT, out_dir / BEST
    if not (args.resume or args.sample_only):
        if ckpt_path.exists() and not args.overwrite:
            sys.exit(f"error: {out_dir} already holds a training run ({ckpt_path}); pass --resume to continue "
                     f"it, --overwrite to replace it, or another --out-dir")
        return None, None
    if args.resume and not ckpt_path.exists():
        sys.exit(f"error: no checkpoint at {ckpt_path} (train first, or pass the --out-dir you trained with)")
    if args.sample_only and not (best_path.exists() or ckpt_path.exists()):
        sys.exit(f"error: no checkpoint in {out_dir}: neither {BEST} nor {CHECKPOINT} is there (train first, "
                 f"or pass the --out-dir you trained with)")
    path = best_path if args.sample_only and best_path.exists() else ckpt_path
    with checkpoint_errors(path):
        state = tg.load(path)
        needed = ["model", "config", "tokenizer", "iter"]
        if args.resume:
            needed += ["optimizer", "sampler", "elapsed_s", "best_val_loss", "evaluated"]
        if missing := [key for key in needed if key not in state]:
            raise ValueError(f"it lacks {', '.join(missing)}")
        state["tokenizer"] = CharTokenizer.from_state_dict(state["tokenizer"])
        config = GPTConfig(**state["config"])
        if config.vocab_size != state["tokenizer"].vocab_size:
            raise ValueError(f"its model has {config.vocab_size} tokens, its tokenizer "
                             f"{state['tokenizer'].vocab_size}")
        saved = state.get("args", {})
        if not isinstance(saved, dict):
            raise TypeError("its 'args' entry is not a dict")
        saved = {**saved, **{key: getattr(config, key) for key in MODEL_FLAGS}}
        fixed = MODEL_FLAGS if args.sample_only else [key for key in RUN_FLAGS if key not in CHANGEABLE_ON_RESUME]
        for key in fixed:
            if key in args.given and key in saved and getattr(args, key) != saved[key]:
                flag = "--" + key.replace("_", "-")
                sys.exit(f"error: {flag} {getattr(args, key)} contradicts {path}, whose run has {key}="
                         f"{saved[key]}; leave {flag} out (flags not given take the checkpoint's values), or train "
                         f"afresh in another --out-dir")
        fill_flags(args, saved)
        if problem := bad_value(args):
            sys.exit(f"error: {path}: {problem}")
        if args.resume and args.max_iters < state["iter"]:
            sys.exit(f"error: --max-iters {args.max_iters} is below the iteration {state['iter']} of {path}")
        if args.resume and saved.get("world_size", 1) != world_size():  # its global batch, its batches
            sys.exit(f"error: {path} was trained by {saved['world_size']} process(es) and this run has "
                     f"{world_size()}; resume it with the same number (python -m tinygrad_tf.distributed.run "
                     f"--nproc-per-node {saved['world_size']} ... when it is above 1), or train afresh in another "
                     f"--out-dir")
    return state, path


@contextlib.contextmanager
def checkpoint_errors(path):
    """Within it, what a corrupt or foreign checkpoint raises stops the program with one line that names
    the file and what is wrong with it."""
    try:
        yield
    except CheckpointError as e:  # tg.load's message names the file
        sys.exit(f"error: {e}")
    except OSError as e:
        sys.exit(f"error: cannot read {path}: {e.strerror or e}")
    except KeyError as e:
        sys.exit(f"error: {path} is not a checkpoint of this example: it has no entry {e}")
    except (TypeError, ValueError, RuntimeError) as e:
        sys.exit(f"error: {path} is not a checkpoint of this example: {' '.join(str(e).split())}")


def load_corpus(args, state):
    """The tokenizer and the text's "train" and "val" tokens, the block size and the prompt checked
    against them now, not after training. --sample-only reads no text (splits: None): the checkpoint
    holds its tokenizer."""
    if args.sample_only:
        tokenizer, splits = state["tokenizer"], None
    else:
        try:
            text = load_text(args.data)
        except DataError as e:
            sys.exit(f"error: {e}")
        tokenizer = CharTokenizer(text)
        if state is not None and state["tokenizer"] != tokenizer:  # its token ids would mean other characters
            sys.exit(f"error: the checkpoint's vocabulary ({state['tokenizer'].vocab_size} chars) differs from "
                     f"this text's ({tokenizer.vocab_size}); pass the --data it was trained on")
        tokens = tokenizer.encode(text)
        train, val = train_val_split(tokens) if len(tokens) > 1 else (tokens[:0], tokens)
        if min(len(train), len(val)) <= args.block_size:  # each split is sampled in blocks (and one more)
            sys.exit(f"error: the text is too short for --block-size {args.block_size}: its training split "
                     f"(the first 90%) has {len(train)} chars and its validation split (the last 10%) "
                     f"{len(val)}; each needs more than {args.block_size}")
        splits = {"train": train, "val": val}
    try:
        tokenizer.encode(args.prompt)
    except ValueError as e:
        sys.exit(f"error: --prompt: {e}")
    return tokenizer, splits


def build_model(args, tokenizer, state, source):
    """The GPT the flags describe (on resume, load_checkpoint set them to the checkpoint's config),
    with the checkpoint's weights when there is one."""
    config = GPTConfig(vocab_size=tokenizer.vocab_size, **{key: getattr(args, key) for key in MODEL_FLAGS})
    tg.manual_seed(args.seed)
    model = GPT(config).to(args.device, tg.float32 if mixed_precision(args) else getattr(tg, args.dtype))
    n = world_size()
    ranks = f"; {n} process{'es' if n > 1 else ''}: global batch {n} x {args.batch_size} = {n * args.batch_size}" \
        if dist.is_initialized() and not args.sample_only else ""
    if rank() == 0:
        print(f"GPT: {sum(p.numel() for p in model.parameters()):,} parameters, {config.n_layer} layers, "
              f"{config.n_head} heads, n_embd {config.n_embd}, block {config.block_size}; "
              f"device {args.device}, {args.dtype}; vocab {tokenizer.vocab_size}{ranks}")
    if state is not None:
        with checkpoint_errors(source):
            model.load_state_dict(state["model"])
    return model


class RankBatches:
    """This process's rows of each global batch. One BatchSampler, seeded by --seed, draws
    batch_size x world_size sequences, the same ones on every rank, and rank r trains on rows
    r * batch_size to (r + 1) * batch_size: the ranks see different sequences, yet every rank's
    sampler is in the same state, so the checkpoint keeps it once (as a single-process run's) and a
    resumed run gives each rank exactly its next rows. N ranks train on exactly the batches of one
    process with --batch-size N x batch_size. With one process it is that BatchSampler."""

    def __init__(self, data, batch_size, block_size, seed, this_rank=0, world=1):
        self.sampler = BatchSampler(data, batch_size * world, block_size, seed=seed)
        self.rows = slice(this_rank * batch_size, (this_rank + 1) * batch_size)

    def sample(self):
        x, y = self.sampler.sample()
        return x[self.rows], y[self.rows]

    def state_dict(self):
        return self.sampler.state_dict()

    def load_state_dict(self, state):
        self.sampler.load_state_dict(state)


@dataclass
class Run:
    """A training run and where it stands: what a checkpoint keeps, so that a resumed run continues exactly."""
    args: argparse.Namespace
    tokenizer: CharTokenizer
    model: GPT  # under the launcher DistributedDataParallel(GPT): what trains
    optimizer: optim.AdamW
    sampler: RankBatches  # the training batches (this rank's rows)
    splits: dict  # "train" and "val" tokens, for evaluate
    out_dir: Path
    start: int = 0  # the first iteration of this session
    elapsed: float = 0.0  # seconds spent training before it, evaluations excluded
    best_val: float = float("inf")
    evaluated: bool = False  # iteration `start` was evaluated and logged before the checkpoint
    scaler: object = None  # tg.amp.GradScaler: float16's loss scale (a pass-through otherwise)
    skipped: object = None  # float16: steps skipped for an overflow, counted on the device (0-d array)

    def count_skipped(self):
        """Add this step's overflow flag to `skipped`, on the device (no read back per step)."""
        found = self.scaler.found_inf(self.optimizer)
        if found is not None:
            self.skipped += found

    @property
    def raw_model(self):
        """The GPT itself, also under DistributedDataParallel: checkpoints and samples take it, so that
        a checkpoint has the same names as a single-process run's (no "module." prefix)."""
        return self.model.module if isinstance(self.model, tg.nn.parallel.DistributedDataParallel) else self.model


def start_run(args, tokenizer, splits, model, state):
    """The optimizer and batches for `model`, restored from `state` when resuming; a fresh run
    starts a fresh log. Under the launcher the model trains wrapped in DistributedDataParallel."""
    optimizer = optim.AdamW(model.parameters(), lr=args.lr, betas=(args.beta1, args.beta2),
                            weight_decay=args.weight_decay)
    sampler = RankBatches(splits["train"], args.batch_size, args.block_size, args.seed, rank(), world_size())
    run = Run(args, tokenizer, data_parallel(model), optimizer, sampler, splits, Path(args.out_dir),
              scaler=tg.amp.GradScaler("cpu" if args.device == "cpu" else "cuda", enabled=args.dtype == "float16"),
              skipped=tg.backend.to_device(np.zeros((), np.float32), tg.backend.parse_device(args.device)))
    if state is None:
        if rank() == 0:
            run.out_dir.mkdir(parents=True, exist_ok=True)
            (run.out_dir / LOG).unlink(missing_ok=True)
    else:
        with checkpoint_errors(run.out_dir / CHECKPOINT):
            optimizer.load_state_dict(state["optimizer"])
            sampler.load_state_dict(state["sampler"])
            run.start, run.elapsed = int(state["iter"]), float(state["elapsed_s"])
            run.best_val, run.evaluated = float(state["best_val_loss"]), bool(state["evaluated"])
            run.scaler.load_state_dict(state.get("scaler", run.scaler.state_dict()))
            run.skipped += state.get("skipped_steps", 0)
        if rank() == 0:
            print(f"resumed from {run.out_dir / CHECKPOINT} at iteration {run.start}")
    return run


# --- the training step ----------------------------------------------------------------------
def mixed_precision(args):
    return args.dtype in ("bfloat16", "float16")


def autocast(args):
    """The forward's precision: tg.autocast to --dtype's 16 bits, or as it is."""
    device_type = "cpu" if args.device == "cpu" else "cuda"
    return tg.autocast(device_type, dtype=getattr(tg, args.dtype) if mixed_precision(args) else None,
                       enabled=mixed_precision(args))


def make_train_step(model, optimizer, args, scaler):
    """step(x, y) -> loss: forward and backward of one batch, leaving the grads in each .grad.

    On a GPU (unless --no-cuda-graph) the two are captured once as a CUDA graph and each
    step replays it: one launch instead of ~450, whose Python and driver time would
    otherwise keep the GPU waiting (tinygrad_tf/cuda_graph.py). The capture follows a
    warm-up forward and backward on a batch of zeros, which updates nothing."""
    device = args.device

    def eager(x, y):
        with autocast(args):
            _, loss = model(tg.tensor(x, device=device), tg.tensor(y, device=device))
        optimizer.zero_grad()
        scaler.scale(loss).backward()  # float16: the loss times the scale, so small gradients survive
        return loss

    if device == "cpu" or args.no_cuda_graph:
        return eager
    xs, ys = (tg.zeros((args.batch_size, args.block_size), dtype=tg.int64, device=device) for _ in range(2))
    eager(xs.numpy(), ys.numpy())  # warm-up: compiles kernels, picks GEMM algorithms
    optimizer.zero_grad()
    graph = tg.cuda.CUDAGraph()
    with tg.cuda.graph(graph):
        with autocast(args):
            _, loss = model(xs, ys)
        scaler.scale(loss).backward()  # reads the scale from the GPU at each replay
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
def evaluate(model, splits, args, stop_requested=None):
    """Mean loss over eval_iters batches per split; the same batches every time. Under the launcher each
    rank takes its own rows of them and the ranks' means are averaged. None when a stop is requested
    meanwhile (stop_requested(): Ctrl-C or SIGTERM): the rest would only delay it."""
    model.eval()
    losses = {}
    try:
        with tg.no_grad():
            for name, data in splits.items():
                sampler = RankBatches(data, args.batch_size, args.block_size, args.seed + 1, rank(), world_size())
                total = 0.0
                for _ in range(args.eval_iters):
                    if stop_requested is not None and stop_requested():
                        return None
                    x, y = sampler.sample()
                    with autocast(args):
                        total += model(tg.tensor(x, device=args.device), tg.tensor(y, device=args.device))[1].item()
                losses[name] = total / args.eval_iters
        return average_over_ranks(losses, args.device)
    finally:
        model.train()


def average_over_ranks(losses, device):
    """Under the launcher: each loss averaged over the ranks (one all_reduce), the same on every rank.
    The ranks' means are of equally many batches, so this is the mean over all their batches."""
    if not dist.is_initialized():
        return losses
    values = tg.tensor(list(losses.values()), dtype=tg.float64, device=device)
    dist.all_reduce(values, op=dist.ReduceOp.AVG)
    return dict(zip(losses, values.tolist()))


def log_evaluation(run, it, losses, tokens_per_s, elapsed):
    """Append the evaluation to log.jsonl (for the plot, and for whoever reads the run later) and show it
    (rank 0 alone). tokens_per_s is None (null in the log) when no step was taken since the last evaluation."""
    if rank() != 0:
        return
    row = {"iter": it, "train_loss": round(losses["train"], 4), "val_loss": round(losses["val"], 4),
           "tokens_per_s": None if tokens_per_s is None else round(tokens_per_s, 1), "elapsed_s": round(elapsed, 1)}
    if run.scaler.is_enabled():  # float16: how often an overflow skipped a step, and the scale now
        row.update(skipped_steps=int(run.skipped), loss_scale=run.scaler.get_scale())
    with open(run.out_dir / LOG, "a") as f:
        f.write(json.dumps(row) + "\n")
    speed = "" if tokens_per_s is None else f", {tokens_per_s:,.0f} tokens/s"
    say(f"iter {it}: train {losses['train']:.4f}, val {losses['val']:.4f}{speed}")


def say(line):
    """Print a line above the progress bar, shown now also when stdout is a log file (rank 0 alone)."""
    if rank() != 0:
        return
    tqdm.write(line)
    sys.stdout.flush()


def save_best(run, it, val_loss):
    """Keep the model with the lowest val loss so far in best.npz: long runs overfit."""
    if val_loss < run.best_val:
        run.best_val = val_loss
        if rank() == 0:
            tg.save({"model": run.raw_model.state_dict(), "config": run.raw_model.config.to_dict(),
                     "tokenizer": run.tokenizer.state_dict(), "iter": it, "val_loss": val_loss},
                    run.out_dir / BEST)


def save_checkpoint(run, it, elapsed, evaluated):
    """Everything a resumed run needs to continue exactly (`evaluated`: iteration it is logged), saved by
    rank 0: the ranks hold the same weights, optimizer state and sampler state (RankBatches)."""
    if rank() != 0:
        return
    args = {k: v for k, v in vars(run.args).items() if v is None or isinstance(v, (int, float, str, bool))}
    tg.save({"model": run.raw_model.state_dict(), "optimizer": run.optimizer.state_dict(),
             "sampler": run.sampler.state_dict(), "tokenizer": run.tokenizer.state_dict(),
             "config": run.raw_model.config.to_dict(), "iter": it, "elapsed_s": elapsed, "evaluated": evaluated,
             "best_val_loss": run.best_val, "args": {**args, "world_size": world_size()},
             "scaler": run.scaler.state_dict(), "skipped_steps": int(run.skipped)},
            run.out_dir / CHECKPOINT)


# --- Ctrl-C, SIGTERM and progress ------------------------------------------------------------
class StopRequest:
    """Whether Ctrl-C or SIGTERM asked the run to stop. The signal handler only records the signal in
    `received`; the loop calls this after each step and before each evaluation batch, and stops when it
    returns the signal's number (0: go on; .signum keeps the last answer).

    Under the launcher the signal reaches the ranks at slightly different moments, and a rank that
    stopped alone would leave the others waiting in their next all-reduce. So each call is also a tiny
    all_reduce (MAX) of every rank's signal number: all ranks get the same answer at the same call,
    and stop at the same iteration. Reading it back waits for the GPU once a step."""

    def __init__(self, device):
        self.device, self.received, self.signum = device, [], 0

    def __call__(self):
        signum = self.received[0] if self.received else 0
        if dist.is_initialized():
            votes = tg.tensor([signum], dtype=tg.int64, device=self.device)
            dist.all_reduce(votes, op=dist.ReduceOp.MAX)
            signum = int(votes.item())
        self.signum = signum
        return signum


@contextlib.contextmanager
def stop_signals_set_flag(device="cpu"):
    """Within it Ctrl-C (SIGINT) and SIGTERM only record their number in the StopRequest it yields, which
    the loop checks after each step and evaluation batch: the checkpoint it then saves never holds a
    half-applied optimizer step. A second one raises KeyboardInterrupt at once, without a checkpoint."""
    stop = StopRequest(device)

    def handler(signum, frame):
        if stop.received:
            raise KeyboardInterrupt
        stop.received.append(signum)

    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for signum, old_handler in previous.items():
            signal.signal(signum, old_handler)


def stop_after_signal(run, it, evaluated, clock, bar, signum):
    """Save a checkpoint at iteration `it` (`evaluated`: it is in the log) and exit as a program stopped
    by `signum` does: status 130 after Ctrl-C, 143 after SIGTERM. Under the launcher rank 0 saves and
    the others wait until it has (barrier) before they exit."""
    clock.pause()
    save_checkpoint(run, it, clock.elapsed, evaluated)
    if dist.is_initialized():
        dist.barrier()
    bar.close()
    what = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
    if rank() == 0:
        print(f"\n{what}: checkpoint at iteration {it} saved to {run.out_dir / CHECKPOINT}; continue with --resume")
    sys.exit(128 + signum)


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
        """Stop counting; return the tokens/s since the last resume (None when no step was taken)."""
        seconds = time.perf_counter() - self.since
        self.elapsed += seconds
        return self.tokens / seconds if self.tokens else None


def progress_bar(args, start):
    """A bar over the iterations; --no-progress disables it (its calls then do nothing), e.g. for logs, and
    so do ranks other than 0."""
    return tqdm(total=args.max_iters, initial=start, unit="it", dynamic_ncols=True,
                disable=args.no_progress or rank() != 0)


def show_progress(bar, it, loss, clock):
    """Advance the bar, and every 10 steps show loss and tokens/s (loss.item() waits for the GPU)."""
    bar.update(1)
    if it % 10 == 0 and not bar.disable:
        bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{clock.tokens_per_s():,.0f}")


# --- after training -------------------------------------------------------------------------
def finish(run):
    """Say where the run's files are, plot its losses and write a sample (rank 0 alone)."""
    if rank() != 0:
        return
    print(f"checkpoint: {run.out_dir / CHECKPOINT}\nbest model (val loss {run.best_val:.4f}): "
          f"{run.out_dir / BEST}\nlog: {run.out_dir / LOG}")
    plot_losses(run.out_dir / LOG, run.out_dir / "loss.png")
    print("\n--- sample ---")
    print(sample_text(run.raw_model, run.tokenizer, run.args))


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
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C outside the training loop (loading, the sample at the end), or a second one
        print("interrupted", file=sys.stderr)
        sys.exit(130)
