"""Run one torch program twice: as written, with torch, and with only its imports changed,
with tinygrad_tf; then compare what each run left in its RESULTS dict.

`port(source)` rewrites the import lines and nothing else. `run(source)` execs a source in a
fresh namespace (stdout captured) and returns its RESULTS made plain (tensors via .tolist(),
tuples as lists). `compare(a, b)` walks two plain results together and returns the list of
differences: floats within a tolerance, everything else (ints, bools, strings, shapes, the
kind of each leaf) exactly.
"""
import contextlib
import io
import math
import re

# Each rule maps a torch import line (the whole line, any indentation) to ours. Only lines
# that are import statements are touched; "torch" elsewhere in a program is left alone, so a
# program's body runs as written.
IMPORT_RULES = [
    (re.compile(r"^(\s*)import torch\s*$"), r"\1import tinygrad_tf as torch"),
    (re.compile(r"^(\s*)import torch\.nn as nn\s*$"), r"\1import tinygrad_tf.nn as nn"),
    (re.compile(r"^(\s*)import torch\.nn\.functional as F\s*$"), r"\1import tinygrad_tf.nn.functional as F"),
    (re.compile(r"^(\s*)import torch\.optim as optim\s*$"), r"\1import tinygrad_tf.optim as optim"),
    (re.compile(r"^(\s*)from torch import (.+)$"), r"\1from tinygrad_tf import \2"),
    (re.compile(r"^(\s*)from torch\.(nn|optim|utils\.data|nn\.functional|optim\.lr_scheduler) import (.+)$"),
     r"\1from tinygrad_tf.\2 import \3"),
]


class ConformanceGap(AssertionError):
    """The tinygrad_tf run raised, or its results differ from torch's. An expected failure
    (xfail) must fail this way: a program that fails under torch itself is a bug in the program."""


def port(source):
    """The program with its torch imports replaced by tinygrad_tf's; every other line as it was.
    Raises if an import line mentions torch but matches no rule (it would stay torch)."""
    out = []
    for line in source.splitlines(keepends=True):
        body = line.rstrip("\n")
        for pattern, replacement in IMPORT_RULES:
            if pattern.match(body):
                body = pattern.sub(replacement, body)
                break
        else:
            if re.match(r"^\s*(import|from)\s+torch\b", body):
                raise ValueError(f"an import line the harness does not know how to port: {body!r}")
        out.append(body + line[len(line.rstrip("\n")):])
    return "".join(out)


def plain(value):
    """RESULTS values as plain Python: tensors and arrays -> lists, tuples -> lists, dicts kept."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return plain(value.tolist())
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"RESULTS may hold numbers, strings, bools, None, lists, dicts and tensors; "
                    f"got {type(value).__name__}")


def run(source, filename):
    """Exec `source` as a script in a fresh namespace; returns (plain RESULTS, captured stdout)."""
    namespace = {"__name__": "__main__", "__file__": filename}
    stdout = io.StringIO()
    code = compile(source, filename, "exec")
    with contextlib.redirect_stdout(stdout):
        exec(code, namespace)  # noqa: S102 (the programs of this suite)
    if "RESULTS" not in namespace:
        raise AssertionError(f"{filename} defines no RESULTS dict")
    return plain(namespace["RESULTS"]), stdout.getvalue()


def _kind(v):
    return "bool" if isinstance(v, bool) else "number" if isinstance(v, (int, float)) else type(v).__name__


def compare(expected, actual, rtol, atol, path="RESULTS"):
    """Differences between torch's plain results and ours, as readable lines (empty: equal).
    Floats agree when |a - e| <= atol + rtol * |e| (NaN with NaN, inf with the same inf);
    an int must meet an int of the same value, a bool a bool."""
    if _kind(expected) != _kind(actual):
        return [f"{path}: torch gives {expected!r:.80}, tinygrad_tf gives {actual!r:.80} (a different kind)"]
    if isinstance(expected, dict):
        diffs = [f"{path}: keys differ, torch {sorted(expected)}, tinygrad_tf {sorted(actual)}"] \
            if set(expected) != set(actual) else []
        for k in expected:
            if k in actual:
                diffs += compare(expected[k], actual[k], rtol, atol, f"{path}[{k!r}]")
        return diffs
    if isinstance(expected, list):
        if len(expected) != len(actual):
            return [f"{path}: length {len(expected)} with torch, {len(actual)} with tinygrad_tf"]
        diffs = []
        for i, (e, a) in enumerate(zip(expected, actual)):
            diffs += compare(e, a, rtol, atol, f"{path}[{i}]")
            if len(diffs) > 8:
                return diffs + ["..."]
        return diffs
    if isinstance(expected, float) or isinstance(actual, float):
        if isinstance(expected, float) != isinstance(actual, float):
            return [f"{path}: torch gives {expected!r}, tinygrad_tf gives {actual!r} (int against float)"]
        if math.isnan(expected) and math.isnan(actual):
            return []
        if math.isinf(expected) or math.isinf(actual):
            return [] if expected == actual else [f"{path}: torch {expected!r}, tinygrad_tf {actual!r}"]
        if abs(actual - expected) <= atol + rtol * abs(expected):
            return []
        return [f"{path}: torch {expected!r}, tinygrad_tf {actual!r} (differ by {abs(actual - expected):.3g})"]
    return [] if expected == actual else [f"{path}: torch {expected!r}, tinygrad_tf {actual!r}"]


def masked_lines(stdout, pattern):
    """The lines of stdout that match `pattern`, each digit replaced by '#': what a run prints,
    compared where the numbers themselves come from a random generator."""
    return [re.sub(r"\d", "#", line) for line in stdout.splitlines() if re.search(pattern, line)]
