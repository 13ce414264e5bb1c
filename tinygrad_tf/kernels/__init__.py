"""Fused CuPy kernels for the GPU path: plain functions on cupy arrays, forward/backward pairs.

An op in ops/ keeps its plain-xp code (the CPU path, and the reference every kernel is
tested against) and calls a kernel here only when `use(name, array)` says so: the array
is on a GPU and that kernel is switched on. Switching kernels off (`select`, or the
TINYGRAD_TF_KERNELS variable: "all", "none", "a,b" or "-a") is how the tests compare a
kernel with its reference and how benchmarks/bench_train.py measures what each one buys.
Importing this package never imports CuPy; each kernel compiles on its first call.
"""
import contextlib
import os

from .. import backend
from . import (_cuda, adam, add, attention, cross_entropy, dropout, embedding, gemm,  # noqa: F401
               layer_norm, linear, random, reduce, relu)  # (none of them imports CuPy)

NAMES = ("attention", "layer_norm", "cross_entropy", "dropout", "adam", "column_sum", "relu", "embedding", "linear",
         "add")
_off = set()


def use(name, array):
    """True when the fused kernel `name` should handle `array`: on a GPU, of a float type the
    kernels are compiled for (float32, float64), and switched on."""
    return name not in _off and backend.is_cuda_array(array) and array.dtype in _cuda.CTYPES


def select(spec="all"):
    """Switch kernels on: "all", "none", "a,b" (only those) or "-a,-b" (all but those)."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [n for n in names if n.lstrip("-") not in NAMES + ("all", "none")]
    if bad:
        raise ValueError(f"unknown kernel(s) {bad}: expected 'all', 'none' or names from {NAMES}")
    if names in (["all"], []):
        on = set(NAMES)
    elif names == ["none"]:
        on = set()
    elif all(n.startswith("-") for n in names):
        on = set(NAMES) - {n[1:] for n in names}
    else:
        on = set(names)
    _off.clear()
    _off.update(set(NAMES) - on)


@contextlib.contextmanager
def selected(spec):
    """select(spec) inside a with-block, then back to what was on before."""
    before = set(_off)
    select(spec)
    try:
        yield
    finally:
        _off.clear()
        _off.update(before)


select(os.environ.get("TINYGRAD_TF_KERNELS", "all"))
