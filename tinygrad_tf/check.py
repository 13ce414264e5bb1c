"""Check every fused op against the textbook op it replaces, on this machine's devices.

    python -m tinygrad_tf.check              # every fused op, float64 and float32, every device here
    python -m tinygrad_tf.check --json out.json

The fused ops (tinygrad_tf/kernels/) are what a model runs by default; the textbook ops
(tinygrad_tf/ops/) are the spec, checked against finite differences by the test suite.
For each fused op and each of its cases below, both run on the same inputs (forward, then
backward with the same random output gradient) and the table shows the worst difference of
the output and of every input gradient, relative to the textbook result's largest value.
Dropout draws the same counter-based mask in both (ops/random.py), so it is compared
exactly like the rest. The fused AdamW updates (the GPU's, and Numba's on the CPU) are compared
with the textbook update over a few steps. The test suite runs this same table
(tests/test_kernels.py). Rows of kernels that cannot run here are skipped: the GPU's without a
GPU, Numba's without numba (or with the "numba" kernels switched off).
"""
import argparse
import json
import os
import sys
from dataclasses import dataclass, field

import numpy as np

from . import backend, kernels
from .amp import GradScaler
from .autograd import unbroadcast
from .kernels.cpu import attention as cpu_attention, embedding as cpu_embedding, layer_norm as cpu_layer_norm, \
    linear as cpu_linear
from .kernels.cuda import add, attention, cast, cross_entropy, dropout, embedding, layer_norm, linear, matmul, relu
from .kernels.numba import _numba, adam as numba_adam, add as numba_add, attention as numba_attention, \
    cross_entropy as numba_cross_entropy, dropout as numba_dropout, embedding as numba_embedding, \
    layer_norm as numba_layer_norm, linear as numba_linear, relu as numba_relu
from .optim import SGD, Adam, AdamW
from .tensor import Tensor

DTYPES = (np.float64, np.float32)
TOLERANCE = {np.float64: 1e-10, np.float32: 1e-5}
TF32_TOLERANCE = 1e-2  # float32 products rounded to TF32 (10-bit mantissa) on the GPU
# 16-bit rows (GPU kernels that take float16/bfloat16, as autocast gives them): the fused op on
# 16-bit inputs against the textbook op in float32 on the same values. A result rounded once to
# 16 bits is off by at most 2^-9 (bfloat16, 8-bit mantissa) or 2^-12 (float16) of itself, and
# attention's products round their inputs too (the weights P and dS, as flash attention does):
# four roundings' worth of room.
HALF_DTYPES = tuple(d for d in (backend.bfloat16_or_none(), backend.float16) if d is not None)
HALF_TOLERANCE = {np.dtype(np.float16): 4 * 2.0 ** -11, **({} if backend.bfloat16_or_none() is None else
                                                            {backend.bfloat16_or_none(): 4 * 2.0 ** -8})}


@dataclass
class Case:
    """One call of a fused op: `args` as NumPy arrays and constants. Float arrays are the inputs
    (cast to the dtype checked and moved to the op's device); integer and bool arrays are moved."""
    fused: type
    label: str
    args: tuple
    kwargs: dict = field(default_factory=dict)
    nan_grad_where_cut: bool = False  # the output gradient is NaN where a ReLU cut (out <= 0): must give 0 there
    dtypes: tuple = None  # the row dtypes this case is checked in (None: all)


def _r(*shape, seed=0, scale=1.0, shift=0.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale + shift


def _ids(shape, high, seed=3):
    return np.random.default_rng(seed).integers(0, high, shape)


def _targets(n, c, ignore):
    t = _ids((n,), c)
    if ignore:
        t[::7] = -100
    return t


def _linear_cases(fused):
    x, w, b = _r(4, 50, 24), _r(40, 24, seed=1), _r(40, seed=2)
    return [Case(fused, "bias", (x, w, b, None)), Case(fused, "bias+relu", (x, w, b, "relu")),
            Case(fused, "no bias+relu", (x, w, None, "relu")),
            Case(fused, "relu, NaN gradient where cut", (x, w, b, "relu"), nan_grad_where_cut=True),
            Case(fused, "transposed x", (_r(24, 30).T, w, b, None))]


def _layer_norm_cases(fused):
    return [Case(fused, "affine", (_r(3, 5, 48, scale=3, shift=1), _r(48, seed=1), _r(48, seed=2), 1, 1e-5)),
            Case(fused, "rows around 30", (_r(3, 5, 48, scale=3, shift=30), _r(48, seed=1), None, 1, 1e-5)),
            Case(fused, "2 dims, no affine", (_r(6, 4, 10, shift=2), None, None, 2, 1e-5))]


def _edge_layer_norm_cases(fused):
    return [Case(fused, "one row of 7", (_r(1, 7, scale=2), _r(7, seed=1), _r(7, seed=2), 1, 1e-5)),
            Case(fused, "0 rows", (_r(0, 48), _r(48, seed=1), _r(48, seed=2), 1, 1e-5)),
            Case(fused, "130 rows, transposed", (_r(48, 130).T, _r(48, seed=1), None, 1, 1e-5))]


def _cross_entropy_cases(fused):
    return [*[Case(fused, f"{reduction}, smoothing {s}{', ignore' * ignore}",
                   (_r(40, 65, scale=4), _targets(40, 65, ignore), -100, reduction, s))
              for reduction, s, ignore in (("mean", 0.0, False), ("sum", 0.1, False), ("none", 0.0, True),
                                           ("mean", 0.2, True))],
            *[Case(fused, f"{reduction}, every target ignored", (_r(8, 65, scale=4), np.full(8, -100), -100, reduction,
                                                                  0.1)) for reduction in ("mean", "sum", "none")],
            Case(fused, "0 rows", (_r(0, 65), np.zeros(0, np.int64), -100, "sum", 0.0))]


def _blind_bias():
    """An additive attention mask in which query 1 may see no key at all (its row is all -inf)."""
    bias = _r(4, 5, seed=4)
    bias[1] = -np.inf
    return bias


def _embedding_cases(fused):
    return [Case(fused, "repeated ids", (_ids((6, 50), 7), _r(7, 12)))]


def _edge_linear_cases(fused):
    """0 rows, and a transposed x of 150 rows (the Numba twin's blocks of rows and features)."""
    return [Case(fused, "relu, 0 rows", (_r(0, 24), _r(40, 24, seed=1), _r(40, seed=2), "relu")),
            Case(fused, "relu, 150 rows, transposed x", (_r(24, 150).T, _r(40, 24, seed=1), _r(40, seed=2), "relu")),
            Case(fused, "no bias, 150 rows, 65 features", (_r(150, 24), _r(65, 24, seed=1), None, None))]


def _qkv(*shape):
    return tuple(_r(*shape, seed=s) for s in range(3))


CASES = [
    Case(add.Add, "same shape", (_r(7, 33), _r(7, 33, seed=1))),  # 231: a partial last vector
    Case(relu.Relu, "", (_r(7, 33),)),
    Case(relu.Relu, "NaN gradient where cut", (_r(7, 33),), nan_grad_where_cut=True),
    Case(dropout.Dropout, "p=0.25", (_r(7, 33, 5), 0.25, 99)),
    Case(matmul.MatMul, "2-D", (_r(30, 24), _r(24, 20, seed=1))),
    Case(matmul.MatMul, "batched, broadcast", (_r(2, 1, 3, 4), _r(5, 4, 2, seed=1))),
    Case(matmul.MatMul, "transposed", (_r(4, 3).T, _r(5, 4, seed=1).T)),
    *_linear_cases(linear.Linear), *_linear_cases(cpu_linear.Linear),
    *_layer_norm_cases(layer_norm.LayerNorm), *_layer_norm_cases(cpu_layer_norm.LayerNorm),
    *_cross_entropy_cases(cross_entropy.CrossEntropy),
    *_embedding_cases(embedding.Embedding), *_embedding_cases(cpu_embedding.Embedding),
    *[Case(attention.Attention, f"causal {shape}{', dropout 0.3' * bool(p)}", (*_qkv(*shape), None, 0.35, p, 7, True))
      for shape, p in (((2, 3, 16, 8), 0.0), ((1, 2, 70, 16), 0.0), ((5, 33, 4), 0.0), ((2, 3, 40, 8), 0.3),
                       ((2, 3, 67, 8), 0.3))],
    Case(cpu_attention.Attention, "causal", (*_qkv(2, 3, 16, 8), None, 0.35, 0.0, None, True)),
    Case(cpu_attention.Attention, "float mask, dropout 0.3",
         (_r(2, 4, 3), _r(2, 5, 3, seed=1), _r(2, 5, 3, seed=2), _r(4, 5, seed=4), 0.5, 0.3, 7, False)),
    Case(cpu_attention.Attention, "a query that sees no key",
         (_r(2, 4, 3), _r(2, 5, 3, seed=1), _r(2, 5, 3, seed=2), _blind_bias(), 0.5, 0.3, 7, False)),
    Case(cpu_attention.Attention, "0 queries", (_r(2, 0, 3), _r(2, 5, 3, seed=1), _r(2, 5, 3, seed=2), None, 0.5,
                                                0.0, None, False)),
    Case(numba_add.Add, "same shape", (_r(7, 33), _r(7, 33, seed=1))),
    Case(numba_add.Add, "a transposed", (_r(33, 7).T, _r(7, 33, seed=1))),
    Case(numba_relu.Relu, "", (_r(7, 33),)),
    Case(numba_relu.Relu, "NaN gradient where cut", (_r(7, 33),), nan_grad_where_cut=True),
    Case(numba_relu.Relu, "transposed", (_r(300, 70).T,)),
    Case(numba_dropout.Dropout, "p=0.25, 3 chunks", (_r(7, 33, 40), 0.25, 99)),
    Case(numba_dropout.Dropout, "p=0.6, transposed", (_r(30, 70).T, 0.6, 2 ** 64 - 3)),
    *_linear_cases(numba_linear.Linear), *_edge_linear_cases(numba_linear.Linear),
    *_layer_norm_cases(numba_layer_norm.LayerNorm), *_edge_layer_norm_cases(numba_layer_norm.LayerNorm),
    *_cross_entropy_cases(numba_cross_entropy.CrossEntropy),
    Case(numba_cross_entropy.CrossEntropy, "one row, ignore_index 3, smoothing 0.1",
         (_r(1, 65, scale=4), np.array([5]), 3, "mean", 0.1)),
    Case(numba_cross_entropy.CrossEntropy, "int32 targets, one ignored",
         (_r(9, 5), np.array([0, 4, 3, 1, 2, 0, 1, 4, 3], np.int32), 1, "none", 0.0)),
    *_embedding_cases(numba_embedding.Embedding),
    Case(numba_embedding.Embedding, "negative ids", (_ids((4, 9), 7) - 7 * _ids((4, 9), 2, seed=4), _r(7, 12))),
]


CASES += [
    Case(numba_attention.Attention, "causal", (*_qkv(2, 3, 16, 8), None, 0.35, 0.0, None, True)),
    Case(numba_attention.Attention, "causal, dropout 0.3", (*_qkv(2, 3, 67, 8), None, 0.35, 0.3, 7, True)),
    Case(numba_attention.Attention, "float mask, dropout 0.3",
         (_r(2, 4, 3), _r(2, 5, 3, seed=1), _r(2, 5, 3, seed=2), _r(4, 5, seed=4), 0.5, 0.3, 7, False)),
    Case(numba_attention.Attention, "a query that sees no key",
         (_r(2, 4, 3), _r(2, 5, 3, seed=1), _r(2, 5, 3, seed=2), _blind_bias(), 0.5, 0.3, 7, False)),
    Case(numba_attention.Attention, "0 queries",
         (_r(2, 0, 3), _r(2, 5, 3, seed=1), _r(2, 5, 3, seed=2), None, 0.5, 0.0, None, False)),
    Case(numba_attention.Attention, "broadcast batch, a mask per batch, causal, dropout 0.2",
         (_r(2, 3, 7, 4), _r(3, 9, 4, seed=1), _r(1, 9, 5, seed=2), _r(2, 1, 7, 9, seed=4), 0.5, 0.2, 11, True)),
]
CASES += [Case(cast.Cast, f"float32 to {d.name}", (_r(7, 33), d), dtypes=(np.dtype(np.float32),)) for d in HALF_DTYPES]
CASES += [Case(cast.Cast, "16 bits to float32", (_r(7, 33), np.dtype(np.float32)), dtypes=HALF_DTYPES)]


def device_of_kernel(fused):
    """"cuda" for kernels/cuda, "cpu" for kernels/cpu, "numba" for kernels/numba (on the CPU)."""
    return fused.__module__.split(".")[-2]


def _skipped(device):
    """Why the kernels of `device` cannot run here, or None."""
    if device == "cuda" and not backend.cuda_available():
        return "no GPU here"
    return _numba.missing() if device == "numba" else None


def _prepare(value, dtype, device, compute=None):
    """A case's argument in `dtype` on `device`; then in `compute` (float32 for the textbook side
    of a 16-bit row: the same values, upcast)."""
    if not isinstance(value, np.ndarray):
        return value
    if value.dtype.kind == "f":
        value = value.astype(dtype).astype(compute or dtype)
    return backend.to_device(value, device)


def _run(op, args, kwargs, seed, nan_grad_where_cut=False, rounded_to=None):
    """(output, gradients of the float inputs) of op's forward and backward, as host arrays;
    the output's gradient drawn in float64, rounded to `rounded_to` (the row's dtype), then to the output's."""
    fn = op()
    fn.needs_grad = tuple(hasattr(a, "dtype") and backend.is_floating(a.dtype) for a in args)
    out = backend.array_module(args[0]).asarray(fn.forward(*args, **kwargs))
    g = np.random.default_rng(seed).standard_normal(out.shape).astype(rounded_to or out.dtype).astype(out.dtype)
    if nan_grad_where_cut:  # a ReLU's backward selects: none of these NaNs may reach the inputs
        g = np.where(backend.to_numpy(out) <= 0, np.nan, g).astype(out.dtype)
    grads = fn.backward(backend.to_device(g, backend.device_of(out)))
    grads = grads if isinstance(grads, tuple) else (grads,)
    return [_float64(out)] + [_float64(unbroadcast(gr, args[i].shape)) for i, gr in enumerate(grads) if fn.needs_grad[i]]


def _float64(a):
    return backend.to_numpy(a).astype(np.float64)


def tolerance(dtype, device):
    if np.dtype(dtype).itemsize == 2:
        return HALF_TOLERANCE[np.dtype(dtype)]
    tf32 = device == "cuda" and dtype == np.float32 and os.environ.get("CUPY_TF32", "0") != "0"
    return TF32_TOLERANCE if tf32 else TOLERANCE[dtype]


def check_case(case, dtype):
    """A result row: the worst relative difference between the fused op and its textbook op."""
    device = device_of_kernel(case.fused)
    row = dict(kernel=f"{device}/{case.fused.name}", case=case.label, device=device, dtype=np.dtype(dtype).name,
               tolerance=tolerance(dtype, device))
    if _skipped(device):
        return dict(row, worst=None, passed=None, note=_skipped(device))
    if case.dtypes is not None and np.dtype(dtype) not in case.dtypes:
        return dict(row, worst=None, passed=None, note=f"the case is for {[np.dtype(d).name for d in case.dtypes]}")
    where = "cuda:0" if device == "cuda" else "cpu"
    args = tuple(_prepare(a, dtype, where) for a in case.args)
    if not case.fused.supports(*args, **case.kwargs):
        return dict(row, worst=None, passed=False, note="the fused op does not take this case")
    half = np.dtype(dtype).itemsize == 2  # the textbook side in float32, on the same values
    textbook_args = tuple(_prepare(a, dtype, where, np.float32) for a in case.args) if half else args
    fused = _run(case.fused, args, case.kwargs, seed=9, nan_grad_where_cut=case.nan_grad_where_cut, rounded_to=dtype)
    textbook = _run(case.fused.replaces, textbook_args, case.kwargs, seed=9,
                    nan_grad_where_cut=case.nan_grad_where_cut, rounded_to=dtype)
    worst = max(_relative_difference(f, t) for f, t in zip(fused, textbook))
    return dict(row, worst=worst, passed=bool(worst <= row["tolerance"]) and len(fused) == len(textbook), note="")


def _relative_difference(fused, textbook):
    """max |fused - textbook| over max |textbook|; NaN where both are NaN counts as agreement
    (the mean of no rows is NaN in both), and NaN on one side only as an infinite difference."""
    both_nan = np.isnan(fused) & np.isnan(textbook)
    diff = np.where(both_nan, 0.0, np.abs(fused - textbook))
    scale = np.abs(np.where(np.isnan(textbook), 0.0, textbook)).max(initial=0.0)
    return float(np.where(np.isnan(diff), np.inf, diff).max(initial=0.0)) / max(float(scale), 1e-30)


def check_adam(dtype, steps=4):
    """AdamW and Adam (L2), several steps, more params than one launch takes: fused against textbook."""
    device = "cuda"
    row = dict(kernel="cuda/adam", case="AdamW and Adam, 15 params, 4 steps", device=device,
               dtype=np.dtype(dtype).name, tolerance=0.0)
    if not backend.cuda_available():
        return dict(row, worst=None, passed=None, note="no GPU here")
    worst = 0.0
    for make in (lambda ps, fused: AdamW(ps, lr=1e-2, fused=fused),
                 lambda ps, fused: Adam(ps, lr=1e-2, weight_decay=0.1, fused=fused)):
        results = []
        for fused in (True, False):
            params = [Tensor(_r(*shape, seed=i), dtype=dtype, device="cuda", requires_grad=True)
                      for i, shape in enumerate([(5, 7), (13,), (3, 4, 2), (1,), (300, 70)] * 3)]
            opt = make(params, fused)
            for step in range(steps):
                for i, p in enumerate(params):
                    p.grad = Tensor(_r(*p.shape, seed=100 * step + i), dtype=dtype, device="cuda")
                opt.step()
            results.append([p.data.get() for p in params])
        worst = max([worst] + [float(np.abs(a - b).max()) for a, b in zip(*results)])
    return dict(row, worst=worst, passed=worst == 0.0, note="bit for bit")


def check_unscale(dtype):
    """A GradScaler's unscale_ through kernels/cuda/unscale.py against its textbook array ops
    ("-unscale"): 15 gradients (two launches), a scale that is not a power of two, then an inf."""
    row = dict(kernel="cuda/unscale", case="15 gradients, then one with an inf", device="cuda",
               dtype=np.dtype(dtype).name, tolerance=0.0)
    if not backend.cuda_available():
        return dict(row, worst=None, passed=None, note="no GPU here")
    shapes = [(5, 7), (13,), (3, 4, 2), (1,), (300, 70)] * 3
    worst, flags_agree = 0.0, True
    for poison in (None, np.inf):
        results = []
        for spec in ("all", "-unscale"):
            params = [Tensor(np.zeros(shape), dtype=dtype, device="cuda", requires_grad=True) for shape in shapes]
            for i, p in enumerate(params):
                g = _r(*p.shape, seed=i) * 1e4
                g.reshape(-1)[0] = poison if poison is not None and i == 7 else g.reshape(-1)[0]
                p.grad = Tensor(g, dtype=dtype, device="cuda")
            scaler, opt = GradScaler("cuda", init_scale=3000.0), SGD(params, lr=0.1)
            scaler.scale(Tensor(1.0, device="cuda"))  # makes the scale
            with kernels.selected(spec):
                scaler.unscale_(opt)
            results.append(([p.grad.data.get() for p in params], float(scaler.found_inf(opt).get())))
        (fused, fused_inf), (textbook, textbook_inf) = results
        flags_agree = flags_agree and fused_inf == textbook_inf == (poison is not None)
        for a, b in zip(fused, textbook):  # equal where both are the same inf or both NaN
            with np.errstate(invalid="ignore"):
                diff = np.where((a == b) | (np.isnan(a) & np.isnan(b)), 0.0, np.abs(a - b))
            worst = max(worst, float(np.nan_to_num(diff, nan=np.inf).max()))
    return dict(row, worst=worst, passed=worst == 0.0 and flags_agree, note="bit for bit, found_inf alike")


def check_numba_adam(dtype, steps=4):
    """numba/adam.update against the textbook update (Adam(fused=False)): AdamW and Adam (L2)."""
    row = dict(kernel="numba/adam", case="AdamW and Adam, 15 params, 4 steps", device="numba",
               dtype=np.dtype(dtype).name, tolerance=0.0)
    if _skipped("numba"):
        return dict(row, worst=None, passed=None, note=_skipped("numba"))
    shapes = [(5, 7), (13,), (3, 4, 2), (1,), (300, 70)] * 3
    worst = 0.0
    for weight_decay, decoupled in ((1e-2, True), (0.1, False)):
        params = [Tensor(_r(*shape, seed=i), dtype=dtype, requires_grad=True) for i, shape in enumerate(shapes)]
        textbook = Adam(params, lr=1e-2, weight_decay=weight_decay, decoupled_weight_decay=decoupled, fused=False)
        arrays = [_r(*shape, seed=i).astype(dtype) for i, shape in enumerate(shapes)]
        moments = [np.zeros_like(a) for a in arrays], [np.zeros_like(a) for a in arrays]
        for step in range(steps):
            grads = [_r(*shape, seed=100 * step + i).astype(dtype) for i, shape in enumerate(shapes)]
            for p, g in zip(params, grads):
                p.grad = Tensor(g)
            textbook.step()
            numba_adam.update(arrays, grads, *moments, lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8,
                              weight_decay=weight_decay, decoupled=decoupled, step=step + 1)
        worst = max([worst] + [float(np.abs(a - p.data).max()) for a, p in zip(arrays, params)])
    return dict(row, worst=worst, passed=worst == 0.0, note="bit for bit")


def half_cases():
    """The GPU cases whose fused op takes float16/bfloat16 (the products, and the elementwise kernels)."""
    return [case for case in CASES if getattr(case.fused, "takes_16_bit", False)]


def run_all(dtypes=DTYPES):
    rows = [check_case(case, dtype) for dtype in dtypes for case in CASES]
    rows += [check_case(case, dtype) for dtype in HALF_DTYPES for case in half_cases()]
    return rows + [check(dtype) for check in (check_adam, check_unscale, check_numba_adam) for dtype in dtypes]


def format_table(rows):
    """The rows that ran, then one line per reason for those skipped (the GPU's, on a machine without one)."""
    lines = [f"{'kernel':<22}{'case':<38}{'dtype':<9}{'worst diff':>12}{'tolerance':>11}  result"]
    for r in rows:
        if r["passed"] is not None:
            worst = "-" if r["worst"] is None else f"{r['worst']:.1e}"
            note = "" if r["passed"] or not r["note"] else f" ({r['note']})"
            lines.append(f"{r['kernel']:<22}{r['case'][:37]:<38}{r['dtype']:<9}{worst:>12}"
                         f"{r['tolerance']:>11.0e}  {'pass' if r['passed'] else 'FAIL'}{note}")
    for note in sorted({r["note"] for r in rows if r["passed"] is None}):
        skipped = sorted({r["kernel"] for r in rows if r["passed"] is None and r["note"] == note})
        lines.append(f"skipped ({note}): {', '.join(skipped)}")
    return "\n".join(lines)


def gpu_name():
    if not backend.cuda_available():
        return None
    name = backend.cupy.cuda.runtime.getDeviceProperties(0)["name"]
    return name.decode() if isinstance(name, bytes) else name


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tinygrad_tf.check", description=__doc__.split("\n\n")[0])
    p.add_argument("--dtype", choices=["float64", "float32", "both"], default="both")
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    dtypes = DTYPES if args.dtype == "both" else (np.dtype(args.dtype).type,)
    rows = run_all(dtypes)
    gpu = gpu_name() or "no GPU"
    failed = [r for r in rows if r["passed"] is False]
    print(format_table(rows))
    print(f"\n{len(rows) - len(failed)} of {len(rows)} rows pass or are skipped; {len(failed)} fail "
          f"(CPU and {gpu}; float32 tolerance {'TF32' if os.environ.get('CUPY_TF32', '0') != '0' else 'plain'})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
