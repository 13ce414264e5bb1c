"""The fast layer: fused Functions beside the textbook ops they replace, and their switches.

kernels/cuda/ holds CuPy RawKernels and cuBLAS/cuBLASLt calls for NVIDIA GPUs; kernels/cpu/
the CPU's fast paths (BLAS idioms); kernels/numba/ CPU loops compiled by Numba, when the
optional numba is installed. Each fused op is a Function with the same inputs and
outputs as its textbook op (`replaces`), a `name` (its switch) and `supports(...)`, which
says whether it can take a call. dispatch.py picks it when it is switched on and supports
the call, else the textbook op runs. Every fused op has a parity case against its textbook
op (tinygrad_tf/check.py: `python -m tinygrad_tf.check`).

Switches: `select("all" | "none" | "a,b" | "-a,-b")`, `selected(spec)` for a with-block, or
the TINYGRAD_TF_KERNELS variable at start-up. `select("none")` runs any model on textbook
ops only, on either device. A name switches a kernel off on every device; "numba" switches
all of kernels/numba/ ("-numba": the CPU's NumPy path, as when numba is not installed). The
choice is part of the current context (like grad mode, a thread starts from TINYGRAD_TF_KERNELS).
"""
import contextlib
import contextvars
import os

NAMES = ("add", "relu", "dropout", "matmul", "linear", "layer_norm", "cross_entropy", "embedding", "attention",
         "adam", "unscale", "cast", "numba")


def parse(spec):
    """The set of kernel names switched on by a spec: "all", "none", "a,b" (only those) or "-a,-b"."""
    names = [s.strip() for s in str(spec).split(",") if s.strip()]
    bad = [n for n in names if n.lstrip("-") not in NAMES + ("all", "none")]
    if bad:
        raise ValueError(f"unknown kernel(s) {bad}: expected 'all', 'none' or names from {NAMES}")
    if names in (["all"], []):
        return frozenset(NAMES)
    if names == ["none"]:
        return frozenset()
    if all(n.startswith("-") for n in names):
        return frozenset(NAMES) - {n[1:] for n in names}
    if any(n.startswith("-") or n in ("all", "none") for n in names):
        raise ValueError(f"kernel spec {spec!r} mixes names to keep and names to drop; use 'a,b' or '-a,-b'")
    return frozenset(names)


_switched_on = contextvars.ContextVar("tinygrad_tf_kernels", default=parse(os.environ.get("TINYGRAD_TF_KERNELS",
                                                                                            "all")))


def enabled(name):
    """Whether the fused kernel `name` is switched on in this context."""
    return name in _switched_on.get()


def select(spec="all"):
    """Switch kernels on or off: "all", "none", "a,b" (only those) or "-a,-b" (all but those)."""
    _switched_on.set(parse(spec))


@contextlib.contextmanager
def selected(spec):
    """select(spec) inside a with-block, then back to what was on before."""
    token = _switched_on.set(parse(spec))
    try:
        yield
    finally:
        _switched_on.reset(token)
