#!/usr/bin/env python3
"""Backprop through one causal self-attention head, step by step, every gradient checked.

    python examples/attention_backprop.py                 # CPU, a few seconds
    python examples/attention_backprop.py --plant-bug     # a classic softmax-backward mistake, caught

The head is the lecture's (Karpathy's "Let's build GPT"), on one sequence, written one
op at a time so that every intermediate is a tensor with its own gradient:

    xn = layer_norm(x)                        q, k, v = xn @ Wq, xn @ Wk, xn @ Wv
    affinity = q @ k^T                        scaled = affinity * head_size**-0.5
    masked = scaled.masked_fill(tril == 0, -inf)
    wei = softmax(masked)                     out = wei @ v
    logits = out @ Wout                       loss = cross_entropy(logits, y)

For every tensor it prints the shape, the one-line formula for dL/d(tensor), and the
largest difference between our backward and central finite differences of the loss
with respect to that tensor. Then the per-op checker (tg.gradcheck_graph) checks each
op's backward on its own. All of that runs on the textbook ops (tinygrad_tf/ops/). Last, the
one-node attention op the GPT uses (ops/attention.py, or the fused twin of it that this
device runs, from tinygrad_tf/kernels/) is compared with the step-by-step head.
Pictures (matplotlib) and the graph (Graphviz DOT) go to --out-dir.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import tinygrad_tf as tg  # noqa: E402
import tinygrad_tf.nn.functional as F  # noqa: E402
from tinygrad_tf import kernels, viz  # noqa: E402
from tinygrad_tf.graphcheck import gradcheck_graph  # noqa: E402
from tinygrad_tf.ops.softmax import Softmax  # noqa: E402

LEAVES = ("x", "Wq", "Wk", "Wv", "Wout")
# dL/d(tensor) in terms of the gradients of the tensors that use it, in backward order.
FORMULAS = {
    "loss": "1  (backprop starts here)",
    "logits": "(softmax(logits) - onehot(y)) / T",
    "out": "dL/dlogits @ Wout^T",
    "Wout": "out^T @ dL/dlogits",
    "wei": "dL/dout @ v^T",
    "v": "wei^T @ dL/dout",
    "masked": "wei * (dL/dwei - rowsum(dL/dwei * wei))  (softmax Jacobian)",
    "scaled": "dL/dmasked where tril == 1, else 0  (the mask)",
    "affinity": "dL/dscaled * head_size**-0.5",
    "kT": "q^T @ dL/daffinity",
    "q": "dL/daffinity @ kT^T",
    "k": "(dL/dkT)^T",
    "Wv": "xn^T @ dL/dv",
    "Wk": "xn^T @ dL/dk",
    "Wq": "xn^T @ dL/dq",
    "xn": "dL/dq @ Wq^T + dL/dk @ Wk^T + dL/dv @ Wv^T  (three uses add up)",
    "x": "(g - mean(g) - xn * mean(g * xn)) / std(x), g = dL/dxn  (layer norm)",
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out-dir", default="out/attention_backprop", help="pictures and graph.dot go here")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--T", type=int, default=8, help="sequence length (time steps)")
    p.add_argument("--C", type=int, default=16, help="embedding size")
    p.add_argument("--head-size", type=int, default=8)
    p.add_argument("--vocab", type=int, default=12, help="classes of the toy next-token loss")
    p.add_argument("--eps", type=float, default=1e-6, help="finite-difference step")
    p.add_argument("--plant-bug", action="store_true",
                   help="replace Softmax's backward with y * g (forgetting the row-sum term) to see it caught")
    args = p.parse_args(argv)
    for name in ("T", "C", "head_size", "vocab"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    return args


def make_leaves(args):
    """Random float64 input, weights and targets (float64: finite differences need it)."""
    tg.manual_seed(args.seed)
    shapes = {"x": (args.T, args.C), "Wq": (args.C, args.head_size), "Wk": (args.C, args.head_size),
              "Wv": (args.C, args.head_size), "Wout": (args.head_size, args.vocab)}
    leaves = {name: tg.randn(*shape, dtype=tg.float64, requires_grad=True) for name, shape in shapes.items()}
    for name in ("Wq", "Wk", "Wv"):  # scaled like nn.Linear's init, so the softmax is not saturated
        leaves[name].data *= args.C ** -0.5
    targets = tg.randint(0, args.vocab, (args.T,))
    return leaves, targets


def attention_head_steps(T, head_size, targets):
    """The head as a list of (name, step); a step computes one tensor from the earlier ones."""
    keep = tg.tril(tg.ones(T, T))
    return [
        ("xn", lambda t: F.layer_norm(t["x"], (t["x"].shape[-1],))),
        ("q", lambda t: t["xn"] @ t["Wq"]),
        ("k", lambda t: t["xn"] @ t["Wk"]),
        ("v", lambda t: t["xn"] @ t["Wv"]),
        ("kT", lambda t: t["k"].transpose(-2, -1)),
        ("affinity", lambda t: t["q"] @ t["kT"]),
        ("scaled", lambda t: t["affinity"] * head_size ** -0.5),
        ("masked", lambda t: t["scaled"].masked_fill(keep == 0, float("-inf"))),
        ("wei", lambda t: t["masked"].softmax(-1)),
        ("out", lambda t: t["wei"] @ t["v"]),
        ("logits", lambda t: t["out"] @ t["Wout"]),
        ("loss", lambda t: F.cross_entropy(t["logits"], targets)),
    ]


def run(steps, tensors, start=0):
    """Compute steps[start:] into the dict `tensors` (which holds the leaves and earlier steps)."""
    for name, step in steps[start:]:
        tensors[name] = step(tensors)
    return tensors


def numeric_grad(steps, tensors, name, eps):
    """dL/d(tensors[name]) by central differences: nudge one element, recompute what comes after."""
    names = [n for n, _ in steps]
    start = names.index(name) + 1 if name in names else 0
    base = {n: t.detach() for n, t in tensors.items()}
    value = np.array(base[name].data)  # a copy; a 0-d loss may be a numpy scalar
    grad = np.zeros(value.shape)
    with tg.no_grad():
        for idx in np.ndindex(*value.shape):
            for sign in (1, -1):
                nudged = value.copy()
                nudged[idx] += sign * eps
                trial = dict(base, **{name: tg.Tensor(nudged, dtype=tg.float64)})
                grad[idx] += sign * run(steps, trial, start)["loss"].item() / (2 * eps)
    return grad


def walkthrough(steps, leaves, eps):
    """Forward with retain_grad everywhere, backward, and each gradient against finite differences."""
    tensors = run(steps, dict(leaves))
    for name, _ in steps:
        tensors[name].retain_grad()
    tensors["loss"].backward()
    rows = []
    for name in FORMULAS:
        t = tensors[name]
        analytic = t.grad.numpy()
        err = float(np.abs(analytic - numeric_grad(steps, tensors, name, eps)).max())
        made_by = "leaf" if t.is_leaf else type(t.grad_fn).__name__
        rows.append(dict(name=name, shape=t.shape, made_by=made_by, formula=FORMULAS[name],
                         err=err, norm=float(np.linalg.norm(analytic))))
    return tensors, rows


def print_walkthrough(rows, args):
    print(f"One causal attention head: T={args.T}, C={args.C}, head_size={args.head_size}, "
          f"vocab={args.vocab}, float64, seed {args.seed}")
    print("dL/d(tensor) for every tensor, from the loss back to the input; the last column is the\n"
          "largest |our backward - finite differences of the loss w.r.t. that tensor|.\n")
    header = ("tensor", "shape", "made by", "dL/d(tensor) =", "|bwd - numeric|")
    table = [header] + [(r["name"], str(r["shape"]), r["made_by"], r["formula"], f"{r['err']:.1e}")
                        for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            print("-" * (sum(widths) + 2 * (len(widths) - 1)))


def check_fused(tensors):
    """The GPT's one-node attention must give the step-by-step head's output and gradients.
    Returns the two largest differences and the class that ran (textbook or fused twin)."""
    q, k, v = (tensors[n].detach() for n in "qkv")
    for t in (q, k, v):
        t.requires_grad = True
    fused = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    (fused * tensors["out"].grad).sum().backward()  # feed in the same dL/dout
    out_diff = float(np.abs(fused.detach().numpy() - tensors["out"].detach().numpy()).max())
    grad_diff = max(float(np.abs(t.grad.numpy() - tensors[name].grad.numpy()).max())
                    for name, t in zip("qkv", (q, k, v)))
    return out_diff, grad_diff, type(fused.grad_fn)


def wrong_softmax_backward(self, g):
    """A classic mistake: the diagonal of the softmax Jacobian only (the row-sum term is missing)."""
    return self.y * g


def plot(tensors, rows, args, out_dir):
    """The three pictures; returns their paths (none, with a hint, without matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: pip install matplotlib, or pip install -e \".[plot]\", "
              "for the pictures)")
        return []
    masked = ~np.tril(np.ones((args.T, args.T), dtype=bool))
    wei = tensors["wei"].detach().numpy()
    paths = []

    def heatmap(ax, values, title, cmap, vmin, vmax, show_masked=False):
        """Masked cells (the future) are hatched; with show_masked their values show through."""
        image = ax.imshow(values if show_masked else np.ma.masked_array(values, masked),
                          cmap=cmap, vmin=vmin, vmax=vmax)
        for i, j in zip(*np.nonzero(masked)):
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, hatch="///", edgecolor="#999999", linewidth=0,
                                       facecolor=(1, 1, 1, 0.55) if show_masked else "#dddddd"))
        if args.T <= 12:  # small enough to print every value
            for i, j in zip(*np.nonzero(~masked | show_masked)):
                r, g, b, _ = image.cmap(image.norm(values[i, j]))
                dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
                colour = "#666666" if masked[i, j] else ("white" if dark else "black")
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7, color=colour)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("key position j (attended to)")
        ax.set_ylabel("query position i (attending)")
        ax.set_xticks(range(args.T))
        ax.set_yticks(range(args.T))
        return image

    fig, ax = plt.subplots(figsize=(5.4, 4.6))
    image = heatmap(ax, wei, "attention weights wei = softmax(masked scores)\n"
                    "(hatched: masked, the future; each row sums to 1)", "viridis", 0, 1)
    fig.colorbar(image, ax=ax, label="weight")
    paths.append(_save(fig, out_dir / "attention_weights.png", plt))

    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.6))
    panels = ((axes[0], "wei", "dL/dwei = dL/dout @ v^T\n(not zero under the mask, but wei is 0 there)", True),
              (axes[1], "masked", "dL/d(scores) = wei * (dL/dwei - rowsum(dL/dwei * wei))\n"
                                  "(the softmax backward: exactly 0 under the mask)", False))
    for ax, name, title, show_masked in panels:
        grad = tensors[name].grad.numpy()
        limit = float(np.abs(grad).max()) or 1.0
        image = heatmap(ax, grad, title, "RdBu_r", -limit, limit, show_masked)
        fig.colorbar(image, ax=ax, label="gradient (red +, blue -)")
    fig.suptitle("Gradients of the loss w.r.t. the attention weights and the scores", fontsize=11)
    paths.append(_save(fig, out_dir / "attention_grads.png", plt))

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.8), sharey=True)
    labels = [r["name"] for r in rows]
    colours = ["#4a86c5" if r["made_by"] == "leaf" else "#e69138" for r in rows]
    left.barh(labels, [r["norm"] for r in rows], color=colours)
    left.invert_yaxis()  # the loss on top: the order backprop visits them
    left.set_xlabel("||dL/d(tensor)|| (Frobenius norm)")
    left.set_title("gradient norm per tensor\n(orange: intermediates, blue: leaves)", fontsize=10)
    right.barh(labels, [max(r["err"], 1e-17) for r in rows], color=colours)
    right.set_xscale("log")
    right.axvline(1e-5, color="#cc0000", linestyle="--", label="tolerance 1e-5")
    right.set_xlabel("max |backward - finite differences|")
    right.set_title("our backward vs finite differences\n(float64, central, eps=%g)" % args.eps, fontsize=10)
    right.legend(loc="lower right", fontsize=8)
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    paths.append(_save(fig, out_dir / "grad_norms.png", plt))
    return paths


def _save(fig, path, plt):
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_graph(tensors, out_dir):
    """The graph behind the loss as DOT, rendered to PNG when Graphviz is installed."""
    names = {t: n for n, t in tensors.items()}
    dot_path = out_dir / "attention_graph.dot"
    source = viz.to_dot(tensors["loss"], dot_path, names=names)
    try:
        return dot_path, viz.render(source, out_dir / "attention_graph.png")
    except viz.GraphvizNotFound as e:
        print(f"({e})")
    except RuntimeError as e:
        print(f"(could not render the graph: {e})")
    return dot_path, None


def main(argv=None):
    args = parse_args(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    leaves, targets = make_leaves(args)
    steps = attention_head_steps(args.T, args.head_size, targets)
    correct = Softmax.backward
    if args.plant_bug:
        Softmax.backward = wrong_softmax_backward
        print("PLANTED BUG: Softmax.backward now returns wei * g (the row-sum term is missing)\n")
    try:
        with kernels.selected("none"):  # the walkthrough is about the textbook ops
            tensors, rows = walkthrough(steps, leaves, args.eps)
            print_walkthrough(rows, args)
            names = {}

            def head(*values):
                tensors_ = run(steps, dict(zip(LEAVES, values)))
                names.update({t: n for n, t in tensors_.items() if n not in LEAVES})
                return tensors_["loss"]

            report = gradcheck_graph(head, [leaves[n] for n in LEAVES], eps=args.eps, names=names)
    finally:
        Softmax.backward = correct
    print("\nEach op's backward on its own (tg.gradcheck_graph: the op re-run on its saved inputs,\n"
          "its backward for a random cotangent against finite differences of its forward):\n")
    print(report)
    if not report.passed:
        print(f"\n-> the first wrong backward is {report.first_failure.op}, the op that made "
              f"'{report.first_failure.name}'. In the first table, the gradients are right down to "
              f"dL/d{report.first_failure.name}\n   and wrong from that op's inputs on: the error enters there "
              f"and flows down to every leaf it reaches.")
    out_diff, grad_diff, ran = check_fused(tensors)
    print(f"\nThe one-node attention the GPT uses (F.scaled_dot_product_attention; here it ran "
          f"{ran.__module__}.{ran.__name__}):\n"
          f"  output differs from the step-by-step head's by at most {out_diff:.1e}; "
          f"dL/dq, dL/dk, dL/dv by at most {grad_diff:.1e}"
          + ("\n  (the step-by-step gradients went through the planted bug; the fused op did not)"
             if args.plant_bug else ""))
    dot_path, graph_png = write_graph(tensors, out_dir)
    pictures = plot(tensors, rows, args, out_dir)
    print(f"\nwrote to {out_dir}/:")
    for path in pictures + [dot_path] + ([graph_png] if graph_png else []):
        print(f"  {Path(path).name}")
    if graph_png is None:
        print(f"  (render the graph with: dot -Tpng {dot_path} -o {out_dir / 'attention_graph.png'})")
    return report


if __name__ == "__main__":
    main()
