"""Check every node of a graph on its own: which op's backward is wrong?

`tg.gradcheck` says *whether* the gradient of a whole function is right. When it is
not, `gradcheck_graph` says *where*: it runs the function once, remembering what each
op was called with, then checks each op's backward in isolation against central
finite differences of that op's forward, in float64:

    report = tg.gradcheck_graph(lambda x: F.layer_norm(x, (8,)).tanh().sum(), [x])
    print(report)                 # one row per op: shapes, max errors, pass/FAIL
    report.first_failure.op       # e.g. "Tanh", or no failure: None

Each op sees a random output cotangent v and is checked on d sum(forward(...) * v),
as gradcheck does for the whole function (one backward per op, 2 forwards per input
element). Only inputs that required grad in the run are checked: they are the
gradients the graph actually used.
"""
import copy
from dataclasses import dataclass

import numpy as np

from . import autograd, backend
from .function import Function
from .grad_mode import enable_grad
from .tensor import Tensor, observed


@dataclass
class NodeCheck:
    """One op of the graph and how its backward compares to finite differences.

    passed is None when the op could not be checked (note says why)."""
    index: int                 # position in the order the ops ran
    op: str                    # the Function's class name, e.g. "MatMul"
    name: str                  # the label given through `names`, or ""
    input_shapes: tuple        # shapes of the inputs that were checked (those that required grad)
    output_shape: tuple | None  # None: not recorded
    max_abs_err: float
    max_rel_err: float         # max abs error / largest |numeric gradient| of that input
    passed: bool | None
    note: str = ""
    node: Function | None = None  # the graph's own node (tensor._ctx), to find rows by tensor


class GraphReport:
    """The checks of every op behind fn's output, in the order the ops ran."""

    def __init__(self, rows, atol, rtol):
        self.rows, self.atol, self.rtol = rows, atol, rtol

    @property
    def passed(self):
        return not self.failures

    @property
    def failures(self):
        return [r for r in self.rows if r.passed is False]

    @property
    def first_failure(self):
        """The earliest op (in running order) whose backward disagrees, or None."""
        failures = self.failures
        return failures[0] if failures else None

    def row_for(self, tensor):
        """The row of the op that made `tensor` (a tensor fn created and kept a reference to)."""
        for row in self.rows:
            if row.node is not None and row.node is tensor._ctx:
                return row
        raise KeyError(f"no op of this report made that tensor (shape {tensor.shape})")

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __str__(self):
        header = ("#", "op", "name", "input shapes", "output", "max abs err", "max rel err", "result")
        table = [header] + [(str(r.index), r.op, r.name, ", ".join(_shape(s) for s in r.input_shapes),
                             _shape(r.output_shape), _err(r.max_abs_err), _err(r.max_rel_err),
                             {True: "pass", False: "FAIL", None: "skip"}[r.passed]
                             + (f" ({r.note})" if r.note else "")) for r in self.rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1]
                 for row in table]
        lines.insert(1, "-" * len(lines[0]))
        checked = sum(r.passed is not None for r in self.rows)
        if self.passed:
            summary = f"{checked} of {len(self.rows)} ops checked, all passed"
        else:
            first = self.first_failure
            summary = (f"{len(self.failures)} of {checked} checked ops FAILED; first: "
                       f"{first.op} (#{first.index}{', ' + first.name if first.name else ''})")
        lines.append(f"{summary} (atol={self.atol}, rtol={self.rtol})")
        return "\n".join(lines)

    def __repr__(self):
        return f"<GraphReport: {len(self.rows)} ops, {len(self.failures)} failed>"


@dataclass
class _Call:
    """What one op was called with, snapshotted before its forward ran."""
    cls: type
    args: tuple
    kwargs: dict
    needs_grad: tuple
    output_shape: tuple


def gradcheck_graph(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0, names=None):
    """Run fn(*inputs) and check each op behind its output on its own; returns a GraphReport.

    Each op is re-run in float64 on copies of the arrays it was given (whatever dtype
    fn ran in), so the report is about the op's backward, not rounding. Random number
    generators passed to an op (dropout) are replayed from the state they had, so
    each re-run draws the same mask. `names` ({tensor: label}, may be filled in while
    fn runs) labels the rows of the ops that made those tensors.

    Each op is checked as it ran: the textbook op, or the fused twin that dispatch.py picked
    (tg.kernels.selected("none") checks the textbook ops).
    """
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    recorder = _Recorder()
    with enable_grad(), observed(recorder):
        out = fn(*inputs)
    calls = recorder.calls
    outs = out if isinstance(out, (tuple, list)) else (out,)
    roots = [o._ctx for o in outs if isinstance(o, Tensor) and o._ctx is not None]
    if not roots:
        raise ValueError("gradcheck_graph: fn's output has no graph (no input requires grad, or fn "
                         "returned no tensor made by an op); nothing to check")
    labels = _labels(names or {})
    root = _Root(roots)
    reachable = set(autograd.topological_order(root)) - {root}
    ran = {node: i for i, node in enumerate(calls)}
    # Nodes made before fn ran (e.g. a non-leaf input) are in the graph but were not recorded.
    nodes = sorted(reachable, key=lambda n: ran.get(n, -1))
    # Its own stream: default_rng(seed) would replay tg.manual_seed(seed)'s numbers, and a
    # cotangent equal to the op's input can hide a wrong backward (layer norm: along x).
    rng = np.random.default_rng([seed, 0x67726164])
    rows = []
    for i, node in enumerate(nodes):
        call = calls.get(node)
        if call is None:
            rows.append(NodeCheck(i, type(node).__name__, labels.get(id(node), ""), (), None, float("nan"),
                                  float("nan"), None, "made before gradcheck_graph ran: not recorded", node))
            continue
        rows.append(_check_call(i, call, labels.get(id(node), ""), node, eps, atol, rtol, rng))
    return GraphReport(rows, atol, rtol)


class _Recorder:
    """Snapshots of each op's arguments, kept for the nodes that made it into the graph."""

    def __init__(self):
        self.calls, self.pending = {}, None

    def before(self, fn, args, kwargs):
        self.pending = (tuple(_copy(a) for a in args), {k: _copy(v) for k, v in kwargs.items()})

    def after(self, fn, out):
        args, kwargs = self.pending
        self.calls[fn] = _Call(type(fn), args, kwargs, fn.needs_grad, out.shape)


class _Root:
    """A stand-in node whose parents are all of fn's outputs, so one walk finds the graph."""
    is_leaf_node = False

    def __init__(self, roots):
        self.parents = tuple(roots)


def _labels(names):
    """{tensor: label} -> {id(the Function that made it): label}."""
    return {id(t._ctx): label for t, label in names.items() if isinstance(t, Tensor) and t._ctx is not None}


def _is_array(a):
    return isinstance(a, np.ndarray) or backend.is_cuda_array(a)


def _float64(a):
    """Float arrays as float64 arrays; numpy float scalars (what a full reduction gives) too."""
    if (_is_array(a) or isinstance(a, np.floating)) and backend.is_floating(a.dtype):
        return backend.array_module(a).asarray(a, dtype=np.float64)
    return a


def _copy(a):
    """Arrays are copied and generators cloned at their current state: recorded calls must not
    see later in-place updates, and each re-run must start from the same arrays and draw the
    same random numbers (forward may write into fresh temporaries or advance a generator)."""
    if _is_array(a):
        return a.copy()
    if hasattr(a, "bit_generator") or type(a).__module__.startswith("cupy.random"):
        return copy.deepcopy(a)
    return a


def _run_forward(call, args):
    fn = call.cls()
    fn.needs_grad = call.needs_grad
    out = fn.forward(*(_copy(a) for a in args), **{k: _copy(v) for k, v in call.kwargs.items()})
    return fn, out


def _check_call(index, call, name, node, eps, atol, rtol, rng):
    op = call.cls.__name__
    args = tuple(_float64(a) for a in call.args)
    checked = [i for i, needed in enumerate(call.needs_grad) if needed]
    shapes = tuple(args[i].shape for i in checked)

    def row(abs_err, rel_err, passed, note=""):
        return NodeCheck(index, op, name, shapes, call.output_shape, abs_err, rel_err, passed, note, node)

    fn, out = _run_forward(call, args)
    if out.dtype != np.float64:
        return row(float("nan"), float("nan"), None, f"output is {out.dtype}: finite differences need float64")
    xp = backend.array_module(out)
    v = backend.to_device(np.asarray(rng.standard_normal(out.shape)), backend.device_of(out))
    v[~xp.isfinite(out)] = 0  # -inf from a mask has no gradient, and -inf * v would poison the sums
    grads = fn.backward(v.copy())
    grads = grads if isinstance(grads, tuple) else (grads,)
    worst_abs, worst_rel, ok, notes = 0.0, 0.0, True, []
    for i in checked:
        g = grads[i] if i < len(grads) else None
        if g is None:
            ok = False
            notes.append(f"backward returned no gradient for input {i}")
            continue
        try:
            analytic = backend.to_numpy(autograd.unbroadcast(g, args[i].shape))
        except (ValueError, IndexError):
            ok = False
            notes.append(f"backward gave shape {g.shape} for input {i} of shape {args[i].shape}")
            continue
        numeric = _numeric_grad(call, args, i, v, eps, xp)
        err = np.abs(analytic - numeric)
        abs_err, scale = float(err.max(initial=0.0)), float(np.abs(numeric).max(initial=0.0))
        worst_abs = max(worst_abs, abs_err)
        worst_rel = max(worst_rel, abs_err / scale if scale > 0 else (0.0 if abs_err == 0 else float("inf")))
        bad = ~(err <= atol + rtol * np.abs(numeric))  # NaN counts as bad
        if bad.any():
            ok = False
            notes.append(f"input {i}: {int(bad.sum())} of {bad.size} elements out of tolerance")
    return row(worst_abs, worst_rel, ok, "; ".join(notes))


def _numeric_grad(call, args, i, v, eps, xp):
    """d sum(forward(args) * v) / d args[i] by central differences, one element at a time."""
    base = args[i]
    numeric = np.zeros(base.shape)
    perturbed = list(args)
    for j in range(base.size):
        idx = np.unravel_index(j, base.shape)
        for sign in (1, -1):
            x = base.copy()
            x[idx] += sign * eps
            perturbed[i] = x
            _, out = _run_forward(call, perturbed)
            numeric[idx] += sign * float(xp.sum(xp.where(v != 0, out, 0) * v)) / (2 * eps)
    return numeric


def _shape(shape):
    if shape is None:
        return "?"
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def _err(x):
    return "-" if x != x else f"{x:.1e}"
