"""Property-based checks (hypothesis).

The first two tests check random broadcastable shapes and reductions against NumPy and finite
differences. The rest run random small programs on tinygrad_tf and on torch side by side (float64)
and compare every intermediate result (shape, dtype, values) and, at the end, the gradients of every
input after backward of sum(out * random weights): broadcasting, reductions, indexing, reshapes, and
chains of 2-4 of those. Shapes have 0-4 dims of sizes 0-4, so 0-d tensors and 0-size dims come up
everywhere torch accepts them. Where torch raises, ours must raise too, with a message that names the
problem (`check_error`).

A failing example is reported as a program that runs on both libraries (`M` is tinygrad_tf or
torch), e.g.
    X = M.tensor(<array of shape (2, 0, 3)>, dtype=M.float64, requires_grad=True)
    x = X
    x = x.sum(dim=-1, keepdim=True)

Left out of the strategies, each where it is drawn:
- our documented deviations: negative slice steps (torch refuses them;
  test_negative_step_slices_match_numpy_and_torch checks them against the same selection in torch)
  and in-place ops on tensors in a graph (none is drawn);
- where torch itself is odd: keepdim without dim (torch's TypeError, ours accepts it), the gradient
  of var/std with dim=() (torch's backward disagrees with its own forward), and roll with an
  out-of-range dim of an empty tensor (torch does not check);
- the known bugs (KNOWN_BUGS): the strategy that draws a bug's case tags the step, the step is left
  out only where the bug's condition holds on torch's result, and each one is counted. Every bug has
  reproducers in test_known_bugs, xfail(strict=True): fixing one fails that test until its entry in
  KNOWN_BUGS (which also lets the strategies draw its case again) is moved to FIXED_BUGS, whose
  reproducers run as plain tests. None is known now; the strategies tag nothing.

`pytest -s` prints how many examples each test ran and how they ended.
"""
import collections
import contextlib
import linecache
import os
import re
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, note, settings, strategies as st  # noqa: E402
from hypothesis.extra.numpy import mutually_broadcastable_shapes  # noqa: E402

import tinygrad_tf as tg  # noqa: E402


def _import_torch():
    try:
        return pytest.importorskip("torch")
    except pytest.skip.Exception:
        return None


torch = _import_torch()
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

SHAPES = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=3)


def leaf(shape, seed):
    return tg.tensor(np.random.default_rng(seed).standard_normal(shape), dtype=tg.float64, requires_grad=True)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(shapes=SHAPES, seed=st.integers(0, 2**16))
def test_broadcasting_arithmetic_gradchecks(shapes, seed):
    a, b = leaf(shapes.input_shapes[0], seed), leaf(shapes.input_shapes[1], seed + 1)
    assert tg.gradcheck(lambda a, b: (a * b - a / (b * b + 1)) + 2 * a, (a, b))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), keepdim=st.booleans(),
       data=st.data(), seed=st.integers(0, 2**16))
def test_reductions_match_numpy_and_gradcheck(shape, keepdim, data, seed):
    dims = data.draw(st.lists(st.integers(0, len(shape) - 1), unique=True, min_size=1))
    x = leaf(tuple(shape), seed)
    for op in ("sum", "mean"):
        out = getattr(x, op)(tuple(dims), keepdim=keepdim)
        ref = getattr(x.detach().numpy(), op)(axis=tuple(dims), keepdims=keepdim)
        np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-12)
        assert tg.gradcheck(lambda t: getattr(t, op)(tuple(dims), keepdim=keepdim), (x,))


# =====================================================================================================
# Differential testing against torch
# =====================================================================================================
RTOL, ATOL = 1e-9, 1e-12
PACKAGE_DIR = os.path.dirname(os.path.abspath(tg.__file__))
# An error raised from inside NumPy or Python (not by tinygrad_tf itself) must still say what is wrong.
SENSIBLE = re.compile(r"index|indices|dim|shape|size|broadcast|bound|range|reshape|expand|view|mask|"
                      r"sections|split|chunk|element", re.I)
OBSCURE = re.compile(r"(tuple|list) index out of range|has no attribute|not iterable|NoneType|unsupported operand|"
                     r"not subscriptable|referenced before assignment|division by zero", re.I)

# Per test: examples run, and how they ended: "compared" (values and gradients), "torch raises" (and
# ours raised a sensible error), "known bug: NAME" (left out at that step), and how many had a 0-size
# or 0-d value along the way. test_zz_strategies_reach_their_cases checks them; run with -s to print.
COUNTS = collections.defaultdict(collections.Counter)


def torch_ok(out):
    return not isinstance(out, Exception)


def torch_raises(out):
    return isinstance(out, Exception)


def always(out):
    return True


class Bug:
    """A known difference from torch. `when(torch_result)` says whether a step tagged with it by its
    strategy really is the case (else it is compared as usual); `grad_only` bugs leave out only the
    gradient check of the program. `cases` are the reproducers: (setup statements, expression), run on
    both libraries by test_known_bugs, which must fail until the bug is fixed (xfail, strict)."""

    def __init__(self, when, cases, ours, grad_only=False):
        self.when, self.cases, self.ours, self.grad_only = when, cases, ours, grad_only


def X(value):
    """Reproducer setup: the leaf X holding `value`."""
    return f"X = M.tensor({value!r}, dtype=M.float64, requires_grad=True)"


def X0(*shape):
    """Reproducer setup: a leaf X of zeros of `shape`."""
    return f"X = M.zeros({shape!r}, dtype=M.float64, requires_grad=True)"


KNOWN_BUGS = {}  # none now

# The bugs these tests found, since fixed: the strategies draw their cases again, and their reproducers
# run as plain tests (test_known_bugs), as do those of what the strategies found after (the last ones).
FIXED_BUGS = {
    # --- gradients -------------------------------------------------------------------------------
    "nan_grad_leak": Bug(torch_ok, [
        (X([4.0, 1.0]) + "\nY = M.tensor([-1.0, 2.0], dtype=M.float64, requires_grad=True)",
         "M.minimum(X, Y).sqrt()"),
        (X([-1.0, -4.0]), "X.max(dim=0).values.sqrt()"),
        (X([-1.0, -4.0]), "X.max().sqrt()"),
        (X([-1.0, 4.0]), "X.relu().sqrt()"),
        (X([-1.0, 4.0]), "X.clamp(min=0.0).sqrt()"),
    ], "a NaN/inf gradient coming into maximum/minimum, max/min (dim or full), relu or clamp reaches the "
       "inputs they did not pick (g * 0 = nan); torch gives those 0", grad_only=True),
    "std_zero_grad": Bug(lambda out: torch_ok(out) and bool((out == 0).any()), [
        (X([[1.0, 1.0], [1.0, 2.0]]), "X.std(dim=1)"),
        (X(1.5), "X.std(dim=0, unbiased=False)"),
    ], "the gradient of std where std is 0 (equal values, or one value with unbiased=False) is nan; "
       "torch's is 0", grad_only=True),
    # --- reductions ------------------------------------------------------------------------------
    "cumsum_0d": Bug(always, [(X(1.5), "X.cumsum(0)")], "cumsum of a 0-d tensor has shape (1,); torch ()"),
    "any_all_0d": Bug(always, [(X(1.5), "(X > 0).any(dim=0)"), (X(1.5), "(X > 0).all(dim=-1)")],
                      "any/all(dim=0) of a 0-d tensor raises NumPy's AxisError; torch gives a 0-d tensor"),
    "keepdim_0d_indices": Bug(always, [(X(1.5), "X.argmax(dim=0, keepdim=True)"),
                                       (X(1.5), "X.max(dim=0, keepdim=True)"),
                                       (X(1.5), "X.argmin(dim=-1, keepdim=True)")],
                              "argmax/argmin/max(dim)/min(dim) indices with keepdim=True of a 0-d tensor "
                              "have shape (1,); torch ()"),
    "amax_empty": Bug(torch_ok, [(X0(3, 0), "X.amax(dim=0)"), (X0(0, 2), "X.amin(dim=1, keepdim=True)")],
                      "amax/amin of an empty tensor over dims of size > 0 raise 'max(): Expected reduction dim "
                      "to be specified'; torch gives the empty result"),
    # --- movement --------------------------------------------------------------------------------
    "flatten_0d_dims": Bug(torch_raises, [(X(1.5), "X.flatten(0, 1)")],
                           "flatten of a 0-d tensor ignores out-of-range dims; torch raises"),
    "flatten_empty": Bug(torch_ok, [(X0(0, 2, 3), "X.flatten(1)")],
                         "flatten of a tensor whose kept dims include a 0 raises 'cannot reshape'; "
                         "torch gives (0, 6)"),
    "transpose_0d": Bug(always, [(X(1.5), "X.transpose(0, -1)")],
                        "transpose(0, -1) of a 0-d tensor raises 'list index out of range'; torch returns it"),
    "split_chunk_empty": Bug(torch_ok, [(X0(3, 0), "X.split(2, 1)"), (X0(3, 0), "X.chunk(2, 1)")],
                             "split/chunk along a dim of size 0 return (); torch returns one (split) or "
                             "`chunks` (chunk) empty tensors"),
    "view_after_advanced_index": Bug(torch_ok, [(X0(2, 3), "X[:, [0, 2]].view(-1)"),
                                                (X0(2, 3), "X.index_select(1, M.tensor([0, 0])).view(-1)"),
                                                (X0(3, 2), "X.roll(1, 1).view(-1)")],
                                     "view of the result of an integer-array index (index_select and roll too) "
                                     "raises 'view size is not compatible': NumPy lays that result out "
                                     "non-contiguously, torch's is contiguous"),
    "split_roll_0d_message": Bug(torch_raises, [(X(1.5), "X.split(1, 0)"), (X(1.5), "X.chunk(2, -1)"),
                                                (X(1.5), "X.roll(1, 0)")],
                                 "split/chunk/roll(dims) of a 0-d tensor raise Python's 'tuple index out of "
                                 "range' (torch: 'split expects at least a 1-dimensional tensor', 'Dimension "
                                 "specified as 0 but tensor has no dimensions')"),
    # --- indexing --------------------------------------------------------------------------------
    "gather_smaller_index": Bug(torch_ok, [(X([[1.0, 2.0], [3.0, 4.0]]), "X.gather(0, M.tensor([[1]]))"),
                                           (X0(3, 2), "X.gather(1, M.tensor([[1], [0]]))")],
                                "gather with an index smaller than the input in a dim other than `dim` "
                                "(torch allows index.size(d) <= input.size(d)) broadcasts it: wrong values "
                                "and shape, or NumPy's 'shape mismatch' error"),
    "gather_0d": Bug(always, [(X(1.5), "X.gather(0, M.tensor(0))")],
                     "gather of a 0-d tensor raises 'tuple index out of range'; torch gives a 0-d tensor"),
    "negative_index_gather": Bug(torch_raises, [(X0(2, 3), "X.gather(1, M.tensor([[-1], [0]]))"),
                                                (X0(2, 3), "X.index_select(1, M.tensor([-1]))")],
                                 "gather and index_select accept negative indices (wrapping); torch raises"),
    "index_select_0d_input": Bug(always, [(X(1.5), "X.index_select(0, M.tensor([0]))"),
                                          (X(1.5), "X.index_select(0, M.tensor(0))")],
                                 "index_select of a 0-d tensor raises 'too many indices'; torch gives a "
                                 "0-d tensor"),
    "index_select_0d_index": Bug(torch_ok, [(X0(2, 3), "X.index_select(1, M.tensor(1))")],
                                 "index_select with a 0-d index drops the dim (shape (2,)); torch keeps it "
                                 "(2, 1)"),
    "empty_list_index": Bug(torch_ok, [(X0(2, 3), "X[[]]")],
                            "x[[]] raises 'not floats' (NumPy makes [] a float array); torch gives (0, 3)"),
    "mask_with_ellipsis": Bug(torch_ok, [(X0(2, 3), "X[..., M.tensor([True, False, True])]"),
                                         (X0(2, 3), "X[M.tensor([True, False]), ..., 0]")],
                              "a bool mask together with an Ellipsis and an index after it raises 'too many "
                              "indices' (the Ellipsis is counted as if the mask took no dims)"),
    "mask_0d_last": Bug(torch_ok, [(X0(2), "X[:, M.tensor(True)]"), (X(1.5), "X[M.tensor(False)]")],
                        "a 0-d bool index after every dim is indexed raises 'too many indices'; torch "
                        "(and NumPy) add a dim of size 1 (or 0)"),
    "int_with_advanced": Bug(torch_ok, [(X0(2, 3, 4), "X[0, :, [0, 1]]"),
                                        (X0(2, 3, 4), "X[0, ..., [0, 1]]")],
                             "an int next to an integer-array index, separated by a slice, puts the array's "
                             "dims first (NumPy's rule: the int counts as an advanced index); torch selects "
                             "the int first and keeps the array's dims in place: (2, 3) vs torch (3, 2)"),
    "oob_index_empty_result": Bug(torch_ok, [(X0(2, 2), "X[[0, 5], M.zeros((0, 2), dtype=M.int64)]")],
                                  "an out-of-range value in an integer index that broadcasts to an empty index "
                                  "raises; torch and NumPy give the empty result (shape (0, 2))"),
    # --- found after the fixes above ---------------------------------------------------------------
    "amax_nan": Bug(torch_ok, [(X([-1.0, 4.0]), "X.sqrt().amax(0)"),
                               (X([[1.0, -4.0], [2.0, 3.0]]), "X.sqrt().amin(dim=1)"),
                               (X([1.0, 4.0]), "(X.amax(0) - 5.0).sqrt()")],
                    "amax/amin gave the gradient to a NaN among the values, as max() does; torch's amax "
                    "gradient is g / count * (a == max), which spreads NaN over the reduced values (and "
                    "a NaN gradient too)", grad_only=True),
    "maximum_nan_input": Bug(torch_ok, [(X([1.0, 2.0]) + "\nY = M.tensor([-1.0, 4.0], dtype=M.float64, "
                                                          "requires_grad=True)", "M.maximum(X, Y.sqrt())")],
                             "maximum/minimum next to a NaN gave the other side 0; torch gives both sides the "
                             "gradient", grad_only=True),
    "rounding_nan_grad": Bug(torch_ok, [(X([-1.5, 2.5]), "X.floor().sqrt()")],
                             "floor/ceil/round/trunc/sign passed a NaN gradient on (g * 0); torch's is 0",
                             grad_only=True),
    "oob_index_empty_kept_dim": Bug(torch_ok, [(X0(1, 0), "X[M.tensor([2, 1, 0, -1, -1])]"),
                                               (X0(3, 0), "X[[5], :]"), (X0(0, 0), "X[[1]]")],
                                    "an out-of-range integer index raised where the result is empty for a "
                                    "dim of size 0 among the others; torch reads and checks nothing then "
                                    "(but raises for a non-empty index into a dim of size 0)"),
    "ellipsis_of_no_dims": Bug(torch_ok, [(X0(2, 3), "X[None, [0, 1], ..., [0, 2]]")],
                               "an Ellipsis that stands for no dims between integer arrays moved their dims "
                               "to the front (NumPy's rule): (2, 1); torch (1, 2)"),
    "index_layout": Bug(always, [(X0(2, 3, 4), "X.permute(2, 0, 1)[:, [0, 1]].view(-1)"),
                                 (X0(1, 3, 3, 2), "X.permute(2, 1, 0, 3)[1:, [0, 1], [0, 0], [1, 0]].view(-1)"),
                                 (X0(2, 3, 4), "X.permute(2, 1, 0).index_select(1, M.tensor([1, 0])).view(-1)"),
                                 (X0(2, 3, 4), "X.permute(2, 1, 0)[:, M.tensor(0)].view(-1)")],
                        "view of an integer-array index result worked (or refused) where torch's refuses "
                        "(works): torch lays the result out in the input's order of strides (index_select "
                        "C-contiguous), NumPy by its own rules"),
}


def raised_where(exc):
    """(file, line, whether that line is a `raise` in tinygrad_tf) of the innermost Python frame."""
    tb, where = exc.__traceback__, (None, 0)
    while tb is not None:
        where, tb = (tb.tb_frame.f_code.co_filename, tb.tb_lineno), tb.tb_next
    deliberate = where[0] is not None and os.path.abspath(where[0]).startswith(PACKAGE_DIR) and \
        linecache.getline(where[0], where[1]).lstrip().startswith("raise")
    return where[0], where[1], deliberate


def check_error(ours, theirs, program):
    """ours: the exception tinygrad_tf raised where torch raised `theirs`. Any type will do, but one
    not raised by tinygrad_tf itself (by NumPy or Python, under it) must name the problem."""
    file, line, deliberate = raised_where(ours)
    assert deliberate or (isinstance(ours, (IndexError, ValueError, RuntimeError, TypeError))
                          and SENSIBLE.search(str(ours)) and not OBSCURE.search(str(ours))), (
        f"torch raises {type(theirs).__name__}({theirs}); ours raises an obscure "
        f"{type(ours).__name__}({ours}) from {file}:{line}\n{program}")


def assert_same(ours, theirs, what, program):
    """Same shape, dtype and values (NaN where torch has NaN)."""
    assert isinstance(ours, tg.Tensor), f"{what}: ours gave {type(ours).__name__}, torch a tensor\n{program}"
    assert tuple(ours.shape) == tuple(theirs.shape), (
        f"{what}: shape {tuple(ours.shape)}, torch {tuple(theirs.shape)}\n{program}")
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", ""), (
        f"{what}: dtype {ours.dtype}, torch {theirs.dtype}\n{program}")
    np.testing.assert_allclose(np.asarray(ours.detach().numpy(), dtype=np.float64),
                               theirs.detach().double().numpy(), rtol=RTOL, atol=ATOL, equal_nan=True,
                               err_msg=f"{what}\n{program}")


def assert_same_results(ours, theirs, program):
    """A tensor, or a tuple of them (split, chunk, max(dim))."""
    if isinstance(theirs, (tuple, list)):
        assert isinstance(ours, (tuple, list)) and len(ours) == len(theirs), (
            f"torch gives {len(theirs)} results, ours {ours!r}\n{program}")
        for i, (o, t) in enumerate(zip(ours, theirs)):
            assert_same(o, t, f"result {i}", program)
    else:
        assert_same(ours, theirs, "value", program)
        assert ours.requires_grad == theirs.requires_grad, (
            f"requires_grad {ours.requires_grad}, torch {theirs.requires_grad}\n{program}")


@contextlib.contextmanager
def quiet():
    """NaN, inf and empty reductions are expected here: no warnings from NumPy or torch."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


def values(rng, shape):
    """Away from 0 (division) and without ties (max, argmax), unless an op makes copies."""
    return rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


def array_code(array):
    """Code that builds a small integer or bool array on either library."""
    if array.size == 0:
        return f"M.zeros({array.shape}, dtype=M.{'bool' if array.dtype == bool else 'int64'})"
    return f"M.tensor({array.tolist()!r})"


class Program:
    """A chain of ops run on both libraries at once. `x` is the current value; X, Y1, Y2... are
    float64 leaves (the same numbers on both sides) whose gradients are compared at the end."""

    def __init__(self, data, test, shape):
        self.data, self.test = data, test
        self.rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
        self.lines, self.leaves, self.n_leaves = [], {"tg": {}, "torch": {}}, 0
        self.tags, self.grad_skip, self.empty = {}, None, False
        self.new_leaf(shape, "X")
        self.x = {side: self.leaves[side]["X"] for side in ("tg", "torch")}
        self.lines.append("x = X")
        self.note_value(self.x["torch"])

    def note_value(self, t):
        self.empty |= t.numel() == 0 or t.dim() == 0

    @property
    def shape(self):
        return tuple(self.x["torch"].shape)

    @property
    def numel(self):
        return int(np.prod(self.shape))

    def tag(self, name, when=None):
        """The op being drawn may hit known bug `name` (when=None: the bug's own condition)."""
        self.tags[name] = when or KNOWN_BUGS[name].when

    def new_leaf(self, shape, name=None):
        self.n_leaves += 1
        name = name or f"Y{self.n_leaves - 1}"
        array = values(self.rng, shape)
        self.leaves["tg"][name] = tg.tensor(array, dtype=tg.float64, requires_grad=True)
        self.leaves["torch"][name] = torch.tensor(array, dtype=torch.float64, requires_grad=True)
        self.lines.append(f"{name} = M.tensor(<array of shape {tuple(shape)}>, dtype=M.float64, "
                          f"requires_grad=True)")
        return name

    def text(self):
        return "\n".join("    " + line for line in self.lines)

    def evaluate(self, side, code):
        scope = dict(self.leaves[side], x=self.x[side])
        try:
            with quiet():
                return eval(code, {"M": tg if side == "tg" else torch}, scope)  # noqa: S307 (our generated code)
        except Exception as e:  # noqa: BLE001
            return e

    def run(self, code):
        """x = code on both sides. Returns "next" to go on; "end" when the result is an integer or bool
        tensor (nothing more to differentiate) or the step was a known bug; "raised" when torch raised
        (and so did ours, sensibly)."""
        tags, self.tags = self.tags, {}
        theirs = self.evaluate("torch", code)
        for name, when in sorted(tags.items()):
            if when(theirs):
                if KNOWN_BUGS[name].grad_only:
                    self.grad_skip = self.grad_skip or name
                else:
                    COUNTS[self.test][f"known bug: {name}"] += 1
                    return "end"
        self.lines.append(f"x = {code}")
        ours = self.evaluate("tg", code)
        if isinstance(theirs, Exception):
            assert isinstance(ours, Exception), (
                f"torch raises {type(theirs).__name__}({theirs}) but ours returns {ours!r}\n{self.text()}")
            check_error(ours, theirs, self.text())
            COUNTS[self.test]["torch raises"] += 1
            return "raised"
        if isinstance(ours, Exception):
            raise AssertionError(f"ours raises {type(ours).__name__}({ours}); torch gives {theirs!r}\n"
                                 f"{self.text()}") from ours
        assert_same_results(ours, theirs, self.text())
        if isinstance(theirs, (tuple, list)):  # go on with one of them
            if not theirs:  # (torch never gives an empty tuple: split of an empty dim gives one tensor)
                return "end"
            k = self.data.draw(st.integers(0, len(theirs) - 1), label="which result")
            self.lines.append(f"x = x[{k}]")
            ours, theirs = ours[k], theirs[k]
            assert ours.requires_grad == theirs.requires_grad, (
                f"requires_grad {ours.requires_grad}, torch {theirs.requires_grad}\n{self.text()}")
        self.x = {"tg": ours, "torch": theirs}
        self.note_value(theirs)
        return "next" if theirs.dtype == torch.float64 else "end"

    def finish(self):
        """backward of sum(x * W) on both sides; the leaves' gradients must agree."""
        COUNTS[self.test]["compared"] += 1
        COUNTS[self.test]["0-size or 0-d"] += self.empty
        if not self.x["torch"].requires_grad:
            return
        weights = self.rng.standard_normal(self.shape)
        self.lines.append(f"(x * <weights of shape {self.shape}>).sum().backward()")
        with quiet():
            (self.x["torch"] * torch.tensor(weights)).sum().backward()
            if self.grad_skip:
                COUNTS[self.test][f"known bug (values compared, gradients not): {self.grad_skip}"] += 1
                return
            (self.x["tg"] * tg.tensor(weights, dtype=tg.float64)).sum().backward()
        for name, theirs in self.leaves["torch"].items():
            ours = self.leaves["tg"][name].grad
            theirs = theirs.grad if theirs.grad is not None else torch.zeros_like(theirs)
            ours = ours if ours is not None else tg.zeros(theirs.shape, dtype=tg.float64)
            assert_same(ours, theirs, f"{name}.grad", self.text())


# --- strategies ----------------------------------------------------------------------------------
SIZES = st.sampled_from([0, 1, 1, 2, 2, 3, 3, 4])  # 0 in one draw out of 8: 0-size dims, not only them
NDIMS = st.sampled_from([0, 1, 1, 2, 2, 3, 3, 4, 4])  # 0-d in one draw out of 9
SHAPES04 = NDIMS.flatmap(lambda n: st.tuples(*[SIZES] * n))
ODDS = {"rarely": 10}  # 1 in 10 for one op; run_program makes it rarer in chains, which end at an error


def rarely(data, label="rarely"):
    """True about one draw in ODDS: for the error cases, which should not crowd out the rest."""
    return data.draw(st.integers(1, ODDS["rarely"]), label=label) == 1


def draw_dim(data, ndim, label="dim", bad=True):
    """A dim torch accepts (negative too; a 0-d tensor has dims 0 and -1), rarely one out of range."""
    top = max(ndim, 1)
    if bad and rarely(data, "bad dim"):
        return data.draw(st.sampled_from([top, -top - 1]), label=label)
    return data.draw(st.integers(-top, top - 1), label=label)


def valid_dim(dim, ndim):
    return -max(ndim, 1) <= dim < max(ndim, 1)


def draw_dims(data, ndim, allow_none=True):
    """None, one dim, or a tuple of dims (possibly empty: every dim; rarely with one out of range or
    one repeated)."""
    kind = data.draw(st.sampled_from(["none", "int", "tuple"] if allow_none else ["int", "tuple"]),
                     label="dim kind")
    if kind == "none":
        return None
    if kind == "int":
        return draw_dim(data, ndim)
    dims = [draw_dim(data, ndim, bad=False) for _ in range(data.draw(st.integers(0, max(ndim, 1)), label="how many"))]
    if dims and rarely(data, "a bad dim in the tuple"):
        dims[-1] = data.draw(st.sampled_from([max(ndim, 1), -max(ndim, 1) - 1, dims[0]]), label="bad dim")
    return tuple(dims)


def broadcast_partner(data, shape):
    """A shape that broadcasts with `shape` (rarely one that does not)."""
    n = data.draw(st.integers(0, 4), label="partner ndim")
    out = []
    for i in range(n):
        j = len(shape) - n + i
        out.append(data.draw(SIZES, label="new dim") if j < 0 else
                   data.draw(st.sampled_from([shape[j], shape[j], 1]), label="partner size"))
    if out and rarely(data, "incompatible partner"):
        out[data.draw(st.integers(0, len(out) - 1))] = data.draw(st.integers(2, 4))
    return tuple(out)


def broadcast_op(data, prog):
    shape = prog.shape
    kind = data.draw(st.sampled_from(["arith", "rarith", "maxmin", "where", "masked_fill", "scalar", "unary"]),
                     label="broadcast op")
    if kind == "scalar":
        return data.draw(st.sampled_from(["x * 2.5", "x ** 2", "1.5 - x", "x / 4", "-x", "2 ** x"]))
    if kind == "unary":
        return data.draw(st.sampled_from(["x.tanh()", "x.sigmoid()", "x.exp()", "x.abs()", "x.sqrt()",
                                          "x.relu()", "x.clamp(-1.0, 1.0)"]))
    if kind in ("masked_fill", "where"):
        mask = array_code(prog.rng.random(broadcast_partner(data, shape)) < 0.5)
        if kind == "masked_fill":
            return f"x.masked_fill({mask}, 0.5)"
        y = prog.new_leaf(broadcast_partner(data, shape))
        return data.draw(st.sampled_from([f"M.where({mask}, x, {y})", f"M.where({mask}, {y}, x)"]))
    y = prog.new_leaf(broadcast_partner(data, shape))
    if kind == "maxmin":
        return f"M.{data.draw(st.sampled_from(['maximum', 'minimum']))}(x, {y})"
    op = data.draw(st.sampled_from("+-*/"), label="operator")
    return f"x {op} {y}" if kind == "arith" else f"{y} {op} x"


def reduce_op(data, prog):
    n = len(prog.shape)
    kind = data.draw(st.sampled_from(["sum", "mean", "var", "std", "amax", "amin", "max", "min", "max_dim",
                                      "min_dim", "argmax", "argmin", "cumsum", "softmax", "log_softmax", "any",
                                      "all"]), label="reduction")
    keepdim = data.draw(st.booleans(), label="keepdim")
    if kind in ("sum", "mean", "var", "std", "amax", "amin"):
        # torch refuses keepdim without dim (a TypeError; ours accepts it), and its var/std backward
        # of dim=() differs from its own forward (inf; the forward reduces every dim): left out.
        dims = draw_dims(data, n, allow_none=kind not in ("amax", "amin"))
        if kind in ("var", "std") and dims == ():
            dims = None
        args = [] if dims is None else [f"dim={dims!r}", f"keepdim={keepdim}"]
        if kind in ("var", "std"):
            args.insert(0 if dims is None else 1, f"unbiased={data.draw(st.booleans(), label='unbiased')}")
        return f"x.{kind}({', '.join(args)})"
    if kind in ("max", "min"):
        return f"x.{kind}()"
    if kind in ("argmax", "argmin") and data.draw(st.booleans(), label="without dim"):
        return f"x.{kind}()"
    dim = draw_dim(data, n)
    if kind in ("max_dim", "min_dim", "argmax", "argmin"):
        return f"x.{kind[:3] if kind.endswith('_dim') else kind}(dim={dim}, keepdim={keepdim})"
    if kind in ("any", "all"):
        return f"(x > 0).{kind}(dim={dim}, keepdim={keepdim})"
    return f"x.{kind}(dim={dim})"


def target_shape(data, shape):
    """A shape with the same number of elements (one size may be -1), rarely one without."""
    numel, sizes = int(np.prod(shape)), []
    left = numel
    for _ in range(data.draw(st.integers(0, 4), label="target ndim")):
        divisors = [d for d in range(5) if (d == 0 and left == 0) or (d > 0 and left % d == 0)]
        d = data.draw(st.sampled_from(divisors), label="target size")
        sizes.append(d)
        left = left // d if d else 0
    if left != 1 or not sizes:
        sizes.append(left)
    if rarely(data, "wrong numel"):
        sizes.append(data.draw(st.integers(2, 3)))
    if data.draw(st.booleans(), label="use -1"):
        sizes[data.draw(st.integers(0, len(sizes) - 1))] = -1
    return tuple(sizes) if len(sizes) != 1 or data.draw(st.booleans()) else sizes[0]


def movement_op(data, prog):
    shape, n = prog.shape, len(prog.shape)
    kind = data.draw(st.sampled_from(["reshape", "view", "flatten", "squeeze", "unsqueeze", "permute",
                                      "transpose", "t", "expand", "repeat", "flip", "roll", "split", "chunk"]),
                     label="movement op")
    if kind in ("reshape", "view"):
        return f"x.{kind}({target_shape(data, shape)!r})"
    if kind == "flatten":
        if data.draw(st.booleans()):
            return "x.flatten()"
        start, end = draw_dim(data, n), draw_dim(data, n)
        return f"x.flatten({start}, {end})"
    if kind == "squeeze":
        if data.draw(st.booleans()):
            return "x.squeeze()"
        return f"x.squeeze({draw_dims(data, n, allow_none=False)!r})"
    if kind == "unsqueeze":
        return f"x.unsqueeze({draw_dim(data, n + 1)})"
    if kind == "permute":
        perm = [p - n if data.draw(st.booleans()) else p for p in data.draw(st.permutations(range(n)))]
        if rarely(data, "bad perm"):
            perm = perm[:-1] if perm else [0]
        return f"x.permute({tuple(perm)!r})"
    if kind == "transpose":
        return f"x.transpose({draw_dim(data, n)}, {draw_dim(data, n)})"
    if kind == "t":
        return "x.t()"
    if kind == "expand":
        new = [data.draw(SIZES, label="new leading size") for _ in range(data.draw(st.integers(0, 2)))]
        new += [data.draw(st.sampled_from([s, -1] + ([0, 1, 2, 3] if s == 1 else [])), label="size") for s in shape]
        if new and rarely(data, "bad expand"):
            new[data.draw(st.integers(0, len(new) - 1))] = data.draw(st.sampled_from([-1, 5]))
        return f"x.expand({tuple(new)!r})"
    if kind == "repeat":
        reps = [data.draw(st.integers(0, 3), label="repeats") for _ in range(n + data.draw(st.integers(0, 2)))]
        if reps and rarely(data, "too few repeats"):
            reps = reps[:-1]
        return f"x.repeat({tuple(reps)!r})"
    if kind == "flip":
        return f"x.flip({[draw_dim(data, n) for _ in range(data.draw(st.integers(0, n)))]!r})"
    if kind == "roll":
        # torch does not check the dims of an empty tensor's roll (ours does): left out
        if data.draw(st.booleans(), label="roll without dims"):
            return f"x.roll({data.draw(st.integers(-5, 5))})"
        dims = [draw_dim(data, n, bad=prog.numel > 0) for _ in range(data.draw(st.integers(1, 2)))]
        shifts = [data.draw(st.integers(-5, 5), label="shift") for _ in dims]
        return f"x.roll({tuple(shifts)!r}, {tuple(dims)!r})" if len(dims) > 1 else f"x.roll({shifts[0]}, {dims[0]})"
    dim = draw_dim(data, n)
    size = shape[dim] if shape and valid_dim(dim, n) else 1
    if kind == "chunk":
        return f"x.chunk({data.draw(st.integers(1, 4), label='chunks')}, {dim})"
    if data.draw(st.booleans(), label="split into sections"):
        sections = []
        while sum(sections) < size or not sections:
            sections.append(data.draw(st.integers(0, size - sum(sections)), label="section"))
            if len(sections) > 5:
                sections.append(size - sum(sections))
        if rarely(data, "sections do not add up"):
            sections.append(1)
        return f"x.split({sections!r}, {dim})"
    return f"x.split({data.draw(st.integers(1, 4), label='split size')}, {dim})"


def index_expression(data, prog):
    """Code for an index of the current value: ints, slices, None, Ellipsis, bool masks, integer tensors
    and lists, alone or in a tuple (rarely out of range, too many, or not broadcasting together)."""
    shape, rng = prog.shape, prog.rng
    n = len(shape)
    kinds = []
    for _ in range(data.draw(st.integers(0, min(n + 1, 4)), label="index items")):
        kind = data.draw(st.sampled_from(["int", "slice", "slice", "none", "ellipsis", "mask", "array", "list"]),
                         label="index kind")
        kinds.append("slice" if kind == "ellipsis" and "ellipsis" in kinds else kind)
    # How many dims each item takes: a mask as many as its own dims.
    takes = [data.draw(st.integers(0, 2), label="mask dims") if k == "mask" else
             0 if k in ("none", "ellipsis") else 1 for k in kinds]
    # Where each item starts: from the left before an Ellipsis, from the right after it.
    start = [0] * len(kinds)
    cut = kinds.index("ellipsis") if "ellipsis" in kinds else len(kinds)
    at = 0
    for i in range(cut):
        start[i], at = at, at + takes[i]
    at = n
    for i in reversed(range(cut + 1, len(kinds))):
        at -= takes[i]
        start[i] = at
    size_of = (lambda d: shape[d] if 0 <= d < n else 3)  # beyond the tensor: torch says "too many indices"
    advanced = data.draw(st.sampled_from([0, 1, 1, 2]).flatmap(lambda k: st.tuples(*[SIZES] * k)),
                         label="integer index shape")
    items = []
    for kind, first, k in zip(kinds, start, takes):
        size = size_of(first)
        if kind == "int":
            lo, hi = (-size, size - 1) if size and not rarely(data, "int out of range") else (-size - 1, size)
            value = data.draw(st.sampled_from([lo, hi]) if hi < lo else st.integers(lo, hi))
            items.append(str(value))
        elif kind == "slice":
            bound = st.one_of(st.none(), st.integers(-5, 5))
            step = data.draw(st.sampled_from([None, 1, 2, 3]))  # (negative steps: a documented deviation)
            lo, hi = data.draw(bound), data.draw(bound)
            text = f"{'' if lo is None else lo}:{'' if hi is None else hi}"
            items.append(text if step is None else f"{text}:{step}")
        elif kind == "none":
            items.append("None")
        elif kind == "ellipsis":
            items.append("...")
        elif kind == "mask":
            mask_shape = [size_of(d) for d in range(first, first + k)]
            if mask_shape and rarely(data, "mask of the wrong shape"):
                mask_shape[-1] += 1
            mask = rng.random(mask_shape) < 0.5
            items.append(array_code(mask))
        else:
            index_shape = advanced if kind == "array" else advanced[-1:] or (1,)  # a list, not a number
            if index_shape and rarely(data, "integer index that does not broadcast"):
                index_shape = index_shape[:-1] + (index_shape[-1] + 5,)
            lo, hi = -size, size - 1
            if not size or rarely(data, "integer index out of range"):
                lo, hi = -size - 1, size + 1
            index = rng.integers(lo, hi + 1, index_shape)
            items.append(array_code(index) if kind == "array" else repr(index.tolist()))
    if not items:
        return "()"
    if len(items) == 1 and data.draw(st.booleans(), label="bare index"):
        return items[0]
    return ", ".join(items) + ("," if len(items) == 1 else "")


def index_op(data, prog):
    shape, n = prog.shape, len(prog.shape)
    kind = data.draw(st.sampled_from(["getitem", "getitem", "getitem", "gather", "index_select"]),
                     label="indexing op")
    if kind == "getitem":
        return f"x[{index_expression(data, prog)}]"
    dim = draw_dim(data, n)
    size = shape[dim] if shape and valid_dim(dim, n) else 1
    if kind == "index_select":
        index_shape = data.draw(st.sampled_from([(), (0,), (1,), (2,), (4,)]), label="index shape")
    else:  # torch: index.size(d) <= input.size(d) for d != dim
        index_shape = list(shape)
        if n:
            index_shape[dim % n] = data.draw(st.integers(0, 4), label="index size")
        others = [d for d in range(n) if d != dim % n and shape[d]]
        if others and data.draw(st.integers(0, 3), label="smaller index") == 0:
            d = data.draw(st.sampled_from(others))
            index_shape[d] = data.draw(st.integers(0, shape[d] - 1), label="smaller size")
    index = prog.rng.integers(0, max(size, 1), index_shape)
    if not size or rarely(data, "index out of range"):
        index = index + size
    elif index.size and rarely(data, "negative index"):
        index.flat[0] = -1
    return f"x.{kind}({dim}, {array_code(index)})"


OPS = {"broadcast": broadcast_op, "reduce": reduce_op, "movement": movement_op, "index": index_op}


def run_program(data, test, kinds, steps):
    ODDS["rarely"] = 10 if steps == 1 else 16 * steps
    prog = Program(data, test, data.draw(SHAPES04, label="shape"))
    try:
        for _ in range(steps):
            state = prog.run(OPS[data.draw(st.sampled_from(kinds), label="op kind")](data, prog))
            if state != "next":
                break
        if state != "raised":
            prog.finish()
    except Exception:
        note(prog.text())  # where it broke, when ours crashed rather than an assert failing
        raise
    # (not counted: examples that hypothesis stops half-drawn, which it calls invalid)
    COUNTS[test]["examples"] += 1


# Examples per test: about 15 s for the whole file on a 2-core CPU. derandomize: the same examples on
# every run, so CI is deterministic. No health check is suppressed.
EXAMPLES = {"broadcast": 250, "reduce": 300, "movement": 300, "index": 350, "programs": 250, "negative_steps": 80}
COMMON = dict(deadline=None, derandomize=True)


@needs_torch
@settings(max_examples=EXAMPLES["broadcast"], **COMMON)
@given(data=st.data())
def test_broadcasting_matches_torch(data):
    run_program(data, "broadcast", ["broadcast"], steps=data.draw(st.integers(1, 2), label="steps"))


@needs_torch
@settings(max_examples=EXAMPLES["reduce"], **COMMON)
@given(data=st.data())
def test_reductions_match_torch(data):
    run_program(data, "reduce", ["reduce"], steps=1)


@needs_torch
@settings(max_examples=EXAMPLES["movement"], **COMMON)
@given(data=st.data())
def test_movement_matches_torch(data):
    run_program(data, "movement", ["movement"], steps=1)


@needs_torch
@settings(max_examples=EXAMPLES["index"], **COMMON)
@given(data=st.data())
def test_indexing_matches_torch(data):
    run_program(data, "index", ["index"], steps=1)


@needs_torch
@settings(max_examples=EXAMPLES["programs"], **COMMON)
@given(data=st.data())
def test_random_programs_match_torch(data):
    run_program(data, "programs", list(OPS), steps=data.draw(st.integers(2, 4), label="steps"))


@needs_torch
@settings(max_examples=EXAMPLES["negative_steps"], **COMMON)
@given(data=st.data())
def test_negative_step_slices_match_numpy_and_torch(data):
    """Our documented deviation: slices with negative steps work (as NumPy's). Values against NumPy;
    values and gradients against the same selection in torch, made with index_select."""
    shape = data.draw(SHAPES04, label="shape")
    bound = st.one_of(st.none(), st.integers(-5, 5))
    step = st.sampled_from([None, 1, 2, -1, -1, -2, -3])
    index = tuple(slice(data.draw(bound), data.draw(bound), data.draw(step))
                  for _ in range(data.draw(st.integers(0, len(shape)), label="slices")))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    array = values(rng, shape)
    ours = tg.tensor(array, dtype=tg.float64, requires_grad=True)
    theirs = torch.tensor(array, dtype=torch.float64, requires_grad=True)
    out, ref = ours[index], theirs
    for d, s in enumerate(index):
        ref = ref.index_select(d, torch.tensor(list(range(shape[d]))[s], dtype=torch.int64))
    program = f"x = <array of shape {shape}>; x[{index}]"
    np.testing.assert_array_equal(out.detach().numpy(), array[index], err_msg=program)
    assert_same(out, ref, "value", program)
    weights = rng.standard_normal(ref.shape)
    (out * tg.tensor(weights, dtype=tg.float64)).sum().backward()
    (ref * torch.tensor(weights)).sum().backward()
    assert_same(ours.grad, theirs.grad, "grad", program)
    COUNTS["negative_steps"]["examples"] += 1
    COUNTS["negative_steps"]["compared"] += 1
    COUNTS["negative_steps"]["0-size or 0-d"] += out.numel() == 0 or out.dim() == 0


def run_snippet(setup, expr):
    """Run `setup` then `expr` on both libraries; the results must agree as in the programs above:
    the same error, or the same values and the same gradients of the leaves of backward(sum)."""
    runs = {}
    for side, M in (("torch", torch), ("tg", tg)):
        scope = {}
        exec(setup, {"M": M}, scope)  # noqa: S102 (our own reproducers)
        try:
            with quiet():
                runs[side] = (eval(expr, {"M": M}, scope), scope)  # noqa: S307
        except Exception as e:  # noqa: BLE001
            runs[side] = (e, scope)
    program = f"{setup}\nout = {expr}"
    (theirs, their_leaves), (ours, our_leaves) = runs["torch"], runs["tg"]
    if isinstance(theirs, Exception):
        assert isinstance(ours, Exception), f"torch raises {theirs!r}, ours returns {ours!r}\n{program}"
        check_error(ours, theirs, program)
        return
    if isinstance(ours, Exception):
        raise AssertionError(f"ours raises {ours!r}; torch gives {theirs!r}\n{program}") from ours
    assert_same_results(ours, theirs, program)
    pairs = [(o, t) for o, t in (zip(ours, theirs) if isinstance(theirs, tuple) else [(ours, theirs)])
             if t.requires_grad]
    if not pairs:
        return
    with quiet():
        sum(t.sum() for _, t in pairs).backward()
        sum(o.sum() for o, _ in pairs).backward()
    for name, t in their_leaves.items():
        if isinstance(t, torch.Tensor) and t.requires_grad:
            assert_same(our_leaves[name].grad, t.grad, f"{name}.grad", program)


@needs_torch
@pytest.mark.parametrize("setup, expr", [
    *[pytest.param(setup, expr, id=f"{name}-{i}", marks=pytest.mark.xfail(
        strict=True, reason=f"{setup}; out = {expr} (backward of out.sum()): {bug.ours}".replace("\n", "; ")))
      for name, bug in KNOWN_BUGS.items() for i, (setup, expr) in enumerate(bug.cases)],
    *[pytest.param(setup, expr, id=f"fixed-{name}-{i}")
      for name, bug in FIXED_BUGS.items() for i, (setup, expr) in enumerate(bug.cases)]])
def test_known_bugs(setup, expr):
    """Each known bug's reproducer: fails now; when it passes (XPASS fails the run), move the bug from
    KNOWN_BUGS to FIXED_BUGS, which also lets the strategies draw its case again. A fixed bug's
    reproducers must pass."""
    try:
        run_snippet(setup, expr)
    except AssertionError as e:  # no traceback: pytest would spend seconds rendering torch's frames
        pytest.fail(str(e), pytrace=False)


@needs_torch
def test_zz_strategies_reach_their_cases():
    """Runs after the property tests (the file's order): each ran its examples, most of them got to
    the comparison, and the edge cases came up: 0-size or 0-d values, and errors torch raises."""
    ran = {test: counts for test, counts in COUNTS.items() if counts["examples"] >= EXAMPLES[test]}
    if not ran:
        pytest.skip("run with the property tests (the whole file) to check what they reached")
    for test, counts in sorted(ran.items()):
        print(f"\n{test}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])))
    for test, counts in ran.items():
        skipped = sum(v for k, v in counts.items() if k.startswith("known bug:"))
        assert counts["compared"] >= 0.4 * counts["examples"], (test, counts)
        assert skipped <= 0.2 * counts["examples"], (test, counts)
        assert counts["0-size or 0-d"] >= 0.15 * counts["compared"], (test, counts)
        if test != "negative_steps":  # 11 to 16 of the 250 broadcasting examples, depending on the tests run before
            assert counts["torch raises"] >= 0.03 * counts["examples"], (test, counts)
