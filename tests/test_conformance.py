"""The PyTorch conformance suite (tests/conformance/): each program runs as written with torch
and, with only its imports changed, with tinygrad_tf; what the two runs leave in RESULTS must
agree (values, or properties where the program draws from torch's random generator).

A program that a known gap keeps from porting is a strict expected failure: it must fail with
ConformanceGap (the tinygrad_tf run raised or disagreed), never because torch itself failed,
and its test turns red once it passes, so that the gap is struck from conformance/registry.py.
"""
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conformance import harness, report  # noqa: E402
from conformance.registry import ABSENT, PROGRAMS, PROGRAMS_DIR  # noqa: E402

import tinygrad_tf  # noqa: E402


@pytest.fixture
def torch():
    """torch itself, with one thread (tiny models on a small shared machine: its thread pool costs
    more than it gives); the grad mode of both libraries is restored afterwards, so that a program
    that stops inside set_grad_enabled(False) leaves later tests their graphs."""
    torch = pytest.importorskip("torch")
    threads, modes = torch.get_num_threads(), (torch.is_grad_enabled(), tinygrad_tf.is_grad_enabled())
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)
    torch.set_grad_enabled(modes[0])
    tinygrad_tf.set_grad_enabled(modes[1])


def _param(program):
    if not program.gaps:
        return pytest.param(program, id=program.name)
    reason = "; ".join(gap.title for gap in program.gaps)
    return pytest.param(program, id=program.name, marks=pytest.mark.xfail(
        strict=True, raises=harness.ConformanceGap, reason=reason))


def _unmet(results, expect):
    return [f"RESULTS[{k!r}] is {results.get(k, '<missing>')!r}, expected {v!r}"
            for k, v in expect.items() if results.get(k, object()) != v]


@pytest.mark.parametrize("program", [_param(p) for p in PROGRAMS])
def test_program_ports(program, torch):
    try:
        _run_both(program)
    except harness.ConformanceGap as gap:
        if program.gaps and not any(re.search(g.match, str(gap)) for g in program.gaps):
            raise AssertionError(f"{program.name} fails for a reason none of its gaps names:\n{gap}") from gap
        raise


def _run_both(program):
    source = program.source
    filename = str(program.path)
    expected, torch_stdout = harness.run(source, filename)  # a failure here is a bug in the program
    unmet = _unmet(expected, program.expect)
    assert not unmet, f"{program.name} under torch itself: " + "; ".join(unmet)

    try:
        actual, our_stdout = harness.run(harness.port(source), filename)
    except Exception as e:  # noqa: BLE001 (any error of the ported run is the finding)
        raise harness.ConformanceGap(f"{program.name} raised under tinygrad_tf: {type(e).__name__}: {e}") from e
    diffs = harness.compare(expected, actual, program.rtol, program.atol)
    diffs += _unmet(actual, program.expect)
    if program.stdout is not None:
        printed = harness.masked_lines(torch_stdout, program.stdout)
        ours = harness.masked_lines(our_stdout, program.stdout)
        if printed != ours:
            diffs.append(f"printed lines differ: torch {printed[:4]}, tinygrad_tf {ours[:4]}")
    if diffs:
        raise harness.ConformanceGap(f"{program.name}: tinygrad_tf differs from torch:\n" + "\n".join(diffs))


def test_every_program_file_is_registered():
    on_disk = sorted(p.stem for p in PROGRAMS_DIR.glob("*.py"))
    assert on_disk == sorted(p.name for p in PROGRAMS)


def test_porting_changes_only_the_import_lines_of_each_program():
    for program in PROGRAMS:
        source = program.source
        ported = harness.port(source)
        changed = [(a, b) for a, b in zip(source.splitlines(), ported.splitlines()) if a != b]
        assert changed, f"{program.name} imports nothing from torch"
        assert all(a.lstrip().startswith(("import torch", "from torch")) for a, _ in changed), program.name
        assert "import torch" not in ported and "from torch" not in ported, program.name
        assert "RESULTS = {" in source, program.name


def test_port_rewrites_each_import_form():
    source = ("import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
              "from torch.nn import functional as F\nimport torch.optim as optim\n"
              "from torch.utils.data import DataLoader, Dataset\nfrom torch.optim.lr_scheduler import LambdaLR\n"
              "x = torch.zeros(2)  # import torch stays in comments and code\n")
    assert harness.port(source) == (
        "import tinygrad_tf as torch\nimport tinygrad_tf.nn as nn\nimport tinygrad_tf.nn.functional as F\n"
        "from tinygrad_tf.nn import functional as F\nimport tinygrad_tf.optim as optim\n"
        "from tinygrad_tf.utils.data import DataLoader, Dataset\n"
        "from tinygrad_tf.optim.lr_scheduler import LambdaLR\n"
        "x = torch.zeros(2)  # import torch stays in comments and code\n")
    with pytest.raises(ValueError, match="does not know how to port"):
        harness.port("import torch.distributed as dist\n")


def test_compare_is_strict_about_kinds_and_loose_only_on_floats():
    assert harness.compare({"a": [1.0, 2]}, {"a": [1.0 + 1e-13, 2]}, 1e-10, 0) == []
    assert harness.compare([1], [1.0], 1e-10, 0)        # an int is not a float
    assert harness.compare([True], [1], 1e-10, 0)       # a bool is not an int
    assert harness.compare([1.0], [1.001], 1e-10, 0)
    assert harness.compare({"a": 1}, {"b": 1}, 1e-10, 0)
    assert harness.compare([float("nan")], [float("nan")], 0, 0) == []


def test_the_compatibility_page_is_current():
    doc = report.DOC
    assert doc.exists(), "docs/pytorch_compatibility.md is missing: run python -m tests.conformance --write"
    assert doc.read_text() == report.render(), \
        "docs/pytorch_compatibility.md is stale: run python -m tests.conformance --write"


@pytest.mark.parametrize("name", ABSENT)
def test_names_listed_as_absent_are_still_absent(name):
    """The page's "also absent" list: once one of these lands, strike it from registry.ABSENT."""
    head, _, rest = name.partition(".")
    path = rest if head == "torch" else f"{dict(F='nn.functional', nn='nn')[head]}.{rest}"
    owner = tinygrad_tf
    for part in path.split("."):
        owner = getattr(owner, part, None)
    assert owner is None, f"{name} exists now: strike it from ABSENT in tests/conformance/registry.py"
