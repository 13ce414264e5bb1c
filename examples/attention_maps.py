#!/usr/bin/env python3
"""Attention maps of a trained GPT: for a prompt, one picture per layer, its heads side by side.

    python examples/shakespeare.py --preset cpu              # train first: out/shakespeare/ckpt.npz
    python examples/attention_maps.py --prompt "ROMEO: But soft, what light"
                                                             # -> out/shakespeare/attention/layer*.png

Row i of a head's map is how much the character at position i attends to each earlier
character j (rows sum to 1; the future, above the diagonal, is masked). The weights are
recomputed from each block's own modules (ln_1, query, key) with the attention op's math,
softmax(q k^T / sqrt(head_size) + causal mask), so the model needs no hooks.
"""
import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import tinygrad_tf as tg  # noqa: E402
from tinygrad_tf.data import CharTokenizer  # noqa: E402
from tinygrad_tf.models.gpt import GPT, GPTConfig  # noqa: E402

CHECKPOINT = "ckpt.npz"  # what examples/shakespeare.py writes into its --out-dir
SHOWN = {"\n": "↵", " ": "␣", "\t": "⇥"}  # characters that would be invisible as tick labels


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out-dir", default="out/shakespeare", help="the trained run's directory (holds ckpt.npz)")
    p.add_argument("--prompt", default="First Citizen:\nBefore we proceed",
                   help="text to look at (at most block_size characters are used: the last ones)")
    p.add_argument("--save-dir", default=None, help="where the PNGs go (default: <out-dir>/attention)")
    return p.parse_args(argv)


def load_model(ckpt_path):
    """The GPT and tokenizer of a checkpoint written by examples/shakespeare.py, in eval mode on CPU."""
    state = tg.load(ckpt_path)
    for key in ("model", "config", "tokenizer"):
        if key not in state:
            raise KeyError(f"{ckpt_path} has no {key!r} entry (keys: {sorted(state)}); "
                           f"expected a checkpoint written by examples/shakespeare.py")
    model = GPT(GPTConfig(**state["config"]))
    model.load_state_dict(state["model"])
    model.eval()
    return model, CharTokenizer.from_state_dict(state["tokenizer"]), state.get("iter")


@tg.no_grad()
def attention_weights(model, idx):
    """(n_layer, n_head, T, T) attention weights of every block for token ids idx (1, T)."""
    B, T = idx.shape
    x = model.token_embedding(idx) + model.position_embedding(tg.arange(T))  # as GPT.forward
    future = tg.tril(tg.ones(T, T)) == 0
    maps = []
    for block in model.blocks:
        attn, h = block.attn, block.ln_1(x)
        head_size = h.shape[-1] // attn.n_head
        q, k = (proj(h).reshape(B, T, attn.n_head, head_size).transpose(1, 2) for proj in (attn.query, attn.key))
        scores = (q @ k.transpose(-2, -1)) * (1 / math.sqrt(head_size))
        maps.append(scores.masked_fill(future, float("-inf")).softmax(-1).numpy()[0])
        x = block(x)
    return np.stack(maps)


def plot_layer(weights, chars, title, path, plt):
    """One row of heatmaps (a head each) with the prompt's characters as tick labels."""
    n_head, T, _ = weights.shape
    size = min(max(3.2, 0.2 * T), 7.0)  # inches per head
    fig, axes = plt.subplots(1, n_head, figsize=(size * n_head + 1.2, size + 0.9), squeeze=False,
                             layout="constrained")
    labels = [SHOWN.get(c, c) for c in chars]
    font = max(4, min(9, int(0.6 * 72 * size / T)))  # points: most of a cell's height
    future = ~np.tril(np.ones((T, T), dtype=bool))
    cmap = plt.get_cmap("viridis").with_extremes(bad="#e4e4e4")  # the masked future: light grey
    for h, ax in enumerate(axes[0]):
        image = ax.imshow(np.ma.masked_array(weights[h], future), cmap=cmap, vmin=0, vmax=1)
        ax.set_title(f"head {h}", fontsize=10)
        ax.set_xticks(range(T), labels, fontsize=font, family="DejaVu Sans Mono")
        ax.set_yticks(range(T), labels, fontsize=font, family="DejaVu Sans Mono")
        ax.tick_params(length=0)
        ax.set_xlabel("attended-to character (key)", fontsize=8)
        if h == 0:
            ax.set_ylabel("attending character (query)", fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, aspect=30, label="attention weight")
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    ckpt_path = Path(args.out_dir) / CHECKPOINT
    if not ckpt_path.exists():
        sys.exit(f"error: no checkpoint at {ckpt_path} (train first with examples/shakespeare.py, "
                 f"or pass the --out-dir you trained with)")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("error: the attention maps need matplotlib: pip install matplotlib "
                 "(or pip install -e \".[plot]\")")
    model, tokenizer, trained_iters = load_model(ckpt_path)
    prompt = args.prompt[-model.config.block_size:]
    if len(prompt) < len(args.prompt):
        print(f"(the prompt is longer than block_size {model.config.block_size}: using its last "
              f"{len(prompt)} characters)")
    if not prompt:
        sys.exit("error: --prompt is empty")
    try:
        idx = tg.tensor(tokenizer.encode(prompt)[None, :])
    except ValueError as e:
        sys.exit(f"error: {e}")
    weights = attention_weights(model, idx)
    save_dir = Path(args.save_dir) if args.save_dir else Path(args.out_dir) / "attention"
    save_dir.mkdir(parents=True, exist_ok=True)
    trained = f", after {trained_iters} iterations" if trained_iters is not None else ""
    paths = []
    for layer, layer_weights in enumerate(weights):
        path = save_dir / f"layer{layer}.png"
        plot_layer(layer_weights, prompt, f"layer {layer} of {len(weights)}: attention weights for "
                   f"{prompt!r}{trained}", path, plt)
        paths.append(path)
    print(f"wrote {len(paths)} attention maps ({weights.shape[1]} heads each) to {save_dir}/: "
          + ", ".join(p.name for p in paths))
    return paths


if __name__ == "__main__":
    main()
