"""Draw the graph behind a tensor: Graphviz DOT source, rendered when `dot` is installed.

    src = tg.viz.to_dot(loss, "graph.dot", names={p: n for n, p in model.named_parameters()})
    tg.viz.render(src, "graph.svg")   # needs Graphviz's `dot`; else GraphvizNotFound says how

Ops are ellipses labelled with the op and its output's shape; leaf tensors that need
grad are boxes with their shape (and name). Edges run from inputs to the op using
them, in the direction of the forward pass; gradients flow back along them.
"""
import os
import shutil
import subprocess

from . import autograd
from .graphcheck import _shape
from .tensor import Tensor

HOW_TO_RENDER = ("install Graphviz (apt-get install graphviz / brew install graphviz) or paste the "
                 ".dot into an online viewer (e.g. https://dreampuf.github.io/GraphvizOnline)")


class GraphvizNotFound(RuntimeError):
    """The `dot` program is not on PATH; the message says how to get a picture anyway."""


def to_dot(tensor, path=None, names=None):
    """DOT source of the graph that made `tensor`; also written to `path` if given.

    names: {tensor or id(tensor): label}, e.g. {p: n for n, p in model.named_parameters()};
    a label on a tensor made by an op names that op's node ("wei = Softmax").
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot expects a Tensor, got {type(tensor).__name__}")
    names = names or {}
    by_id = {k if isinstance(k, int) else id(k): v for k, v in names.items()}
    op_names = {id(k._ctx): v for k, v in names.items() if isinstance(k, Tensor) and k._ctx is not None}
    lines = ["digraph tinygrad_tf {", '  rankdir=BT;', '  node [fontname="Helvetica", fontsize=11];',
             '  edge [color="#555555", arrowsize=0.7];']
    ids = {}

    def node_id(obj):
        return ids.setdefault(id(obj), f"n{len(ids)}")

    root = tensor._ctx
    if root is None:  # a lone leaf: nothing was computed
        lines.append(_leaf_line(node_id(tensor), tensor, by_id.get(id(tensor))))
        return _finish(lines, path)
    order = autograd.topological_order(root)
    out_shapes = {id(root): tensor.shape}
    for fn in order:  # an op's output shape is what its consumers record as their input's
        for parent, shape in zip(fn.parents, fn.input_shapes):
            if parent is not None and not parent.is_leaf_node:
                out_shapes[id(parent)] = shape
    edges = []
    for fn in order:
        label = type(fn).__name__ + "\\n" + _shape(out_shapes[id(fn)])
        if id(fn) in op_names:
            label = _escape(op_names[id(fn)]) + " = " + label
        style = ', penwidth=2.2' if fn is root else ''
        lines.append(f'  {node_id(fn)} [label="{label}", shape=ellipse, style=filled, '
                     f'fillcolor="#eeeeee"{style}];')
        inputs = [p for p in fn.parents if p is not None]
        for i, parent in enumerate(fn.parents):
            if parent is None:
                continue
            if parent.is_leaf_node and id(parent) not in ids:
                lines.append(_leaf_line(node_id(parent), parent, by_id.get(id(parent))))
            arg = f' [label="{i}", fontsize=9]' if len(inputs) > 1 else ""
            edges.append(f"  {node_id(parent)} -> {node_id(fn)}{arg};")
    return _finish(lines + edges, path)


def render(dot_source, path, format=None):
    """Render DOT source to `path` (format from its suffix, svg or png) with Graphviz's `dot`.

    Returns the path; raises GraphvizNotFound (with how to render otherwise) when `dot`
    is not installed, RuntimeError with dot's message when it fails."""
    path = os.fspath(path)
    format = format or os.path.splitext(path)[1].lstrip(".").lower() or "svg"
    if format not in ("svg", "png"):
        raise ValueError(f"render: format must be 'svg' or 'png', got {format!r}")
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizNotFound(f"cannot render {path}: the Graphviz `dot` program is not on PATH; "
                               + HOW_TO_RENDER)
    result = subprocess.run([dot, f"-T{format}", "-o", path], input=dot_source.encode(),
                            capture_output=True, check=False)
    if result.returncode:
        raise RuntimeError(f"dot failed (exit {result.returncode}) rendering {path}: "
                           f"{result.stderr.decode(errors='replace').strip()}")
    return path


def _leaf_line(nid, tensor, name):
    label = _shape(tensor.shape) + ("\\nrequires_grad" if tensor.requires_grad else "")
    if name:
        label = _escape(name) + "\\n" + label
    return f'  {nid} [label="{label}", shape=box, style="filled,rounded", fillcolor="#cfe2f3"];'


def _finish(lines, path):
    lines.append("}")
    source = "\n".join(lines) + "\n"
    if path is not None:
        with open(path, "w") as f:
            f.write(source)
    return source


def _escape(text):
    return str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
