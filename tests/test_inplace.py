"""In-place writes (setitem, add_, copy_, ...) and torch's version-counter rule: a backward that
needs a value overwritten since its forward raises instead of using the new value. Values are
compared with torch when it is installed."""
import numpy as np
import pytest

import tinygrad_tf as tg
from tinygrad_tf import optim

INPLACE_ERROR = "modified by an inplace operation"


def both(fn):
    """fn(lib) with tinygrad_tf and, when installed, torch: their results as NumPy arrays."""
    ours = fn(tg)
    torch = pytest.importorskip("torch")
    return np.asarray(ours.tolist()), np.asarray(fn(torch).tolist())


@pytest.mark.parametrize("write", [
    lambda lib, x: x.__setitem__(1, 5.0),
    lambda lib, x: x.__setitem__((slice(None), 0), lib.tensor([7.0, 8.0, 9.0])),
    lambda lib, x: x.__setitem__(x > 0.5, 0.0),
    lambda lib, x: x.__setitem__(lib.tensor([0, 2]), 1.5),
    lambda lib, x: x.__setitem__((lib.tensor(1), slice(lib.tensor(1), None)), -1.0),
    lambda lib, x: x.add_(lib.ones(2), alpha=3),
    lambda lib, x: x.mul_(2).sub_(1).div_(4),
    lambda lib, x: x.clamp_(0.2, 0.6),
    lambda lib, x: x.masked_fill_(x > 0.3, -2.0),
    lambda lib, x: x.fill_(3.0),
    lambda lib, x: x.zero_(),
    lambda lib, x: x.copy_(lib.arange(2)),
    lambda lib, x: x.scatter_(1, lib.tensor([[1], [0], [1]]), lib.tensor([[10.0], [20.0], [30.0]])),
    lambda lib, x: x.scatter_add_(0, lib.tensor([[0, 0], [0, 1]]), lib.ones(2, 2)),
], ids=["int", "slice-column", "bool-mask", "int-tensor-index", "0-d-tensor-index", "add_alpha", "chain",
        "clamp_", "masked_fill_", "fill_", "zero_", "copy_broadcast", "scatter_", "scatter_add_"])
def test_inplace_writes_match_torch(write):
    def run(lib):
        x = lib.tensor(np.random.default_rng(0).random((3, 2)), dtype=lib.float32)
        write(lib, x)
        return x
    ours, theirs = both(run)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_integer_tensors_keep_their_dtype_and_refuse_float_results():
    x = tg.tensor([1, 2, 3])
    x[0] = 2.7  # assignment casts, as torch
    assert x.tolist() == [2, 2, 3] and x.dtype == tg.int64
    with pytest.raises(RuntimeError, match="result type float32 can't be cast to the tensor's dtype int64"):
        x.add_(0.5)


def test_backward_refuses_a_value_written_after_the_forward():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    x = tg.tensor([3.0, 4.0])
    loss = (w * x).sum()
    x.copy_(tg.tensor([0.0, 0.0]))  # Mul saved x: its gradient for w would silently be 0
    with pytest.raises(RuntimeError, match=INPLACE_ERROR):
        loss.backward()


def test_an_optimizer_step_between_forward_and_backward_is_caught():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    loss = (w * w).sum()
    w.grad = tg.ones(2)
    opt.step()
    with pytest.raises(RuntimeError, match=INPLACE_ERROR):
        loss.backward()


def test_writes_through_a_view_count_for_its_base():
    w = tg.tensor([[1.0, 2.0]], requires_grad=True)
    x = tg.tensor([[3.0, 4.0]])
    loss = (w * x).sum()
    x.view(2)[0] = 9.0  # the view shares x's memory and its version counter
    assert x.tolist() == [[9.0, 4.0]]
    with pytest.raises(RuntimeError, match=INPLACE_ERROR):
        loss.backward()
    y = tg.tensor([5.0, 6.0])
    y.detach().zero_()
    assert y.tolist() == [0.0, 0.0] and y._version[0] == 1


def test_ops_that_do_not_read_their_inputs_allow_later_writes_as_torch():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    loss = (w + 1).sum()
    with tg.no_grad():
        w.mul_(3)  # Add saved nothing of w
    loss.backward()
    assert w.grad.tolist() == [1.0, 1.0]
    y = w.exp()
    total = y.sum()
    with tg.no_grad():
        y.add_(1)  # Exp's backward reads its output
    with pytest.raises(RuntimeError, match=INPLACE_ERROR):
        total.backward()


def test_inplace_writes_into_leaves_that_require_grad_need_no_grad_and_others_join_the_graph():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        w.add_(1)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        w[0] = 3.0
    with tg.no_grad():
        w[0] = 3.0
        w -= 1.0  # augmented assignment is in place: w stays the leaf it was
    assert w.tolist() == [2.0, 1.0] and w.is_leaf and w.requires_grad
    h = w * 2
    h[0] = 0.0  # recorded: h's grad_fn is now the write
    h.sum().backward()
    assert type(h.grad_fn).__name__ == "SetItem" and w.grad.tolist() == [0.0, 2.0]
    x = tg.zeros(2)
    x[1] = w[0] * 3  # a value that requires grad makes x part of the graph, as in torch
    x.sum().backward()
    assert x.requires_grad and w.grad.tolist() == [3.0, 2.0]


def test_grad_assignment_and_hooks_are_checked():
    w = tg.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"assigned grad has shape \(1,\)"):
        w.grad = tg.ones(1)
    with pytest.raises(RuntimeError, match="dtype float64"):
        w.grad = tg.ones(3, dtype=tg.float64)
    with pytest.raises(TypeError, match="Tensor or None"):
        w.grad = np.ones(3)
    w.grad = tg.ones(3)
    x = tg.ones(3, requires_grad=True)
    x.register_hook(lambda g: g.sum())
    with pytest.raises(RuntimeError, match=r"hook returned shape \(\)"):
        (x * 2).sum().backward()
    y = tg.ones(3, requires_grad=True)
    y.register_hook(lambda g: g.numpy())
    with pytest.raises(TypeError, match="must return None or a Tensor"):
        (y * 2).sum().backward()


def test_type_promotion_and_dtype_errors_as_torch():
    torch = pytest.importorskip("torch")
    cases = [lambda L: L.tensor([1, 2]) + 0.5, lambda L: L.tensor([1, 2]) / L.tensor([2, 4]),
             lambda L: L.tensor([1.0], dtype=L.float32) + L.tensor(2.0, dtype=L.float64),
             lambda L: L.tensor([1.0], dtype=L.float32) + L.tensor([2.0], dtype=L.float64),
             lambda L: L.tensor([1], dtype=L.int32) * L.tensor(3), lambda L: L.tensor([True]) + 2,
             lambda L: L.tensor([1, 2]) * 2, lambda L: 2 ** L.tensor([1, 2]),
             lambda L: L.where(L.tensor([True, False]), L.tensor([1, 2]), 0.5)]
    for case in cases:
        ours, theirs = case(tg), case(torch)
        assert str(ours.dtype) == str(theirs.dtype).replace("torch.", ""), case
        np.testing.assert_allclose(ours.tolist(), theirs.tolist())
    with pytest.raises(RuntimeError, match="same dtype"):
        tg.ones(2, 3) @ tg.ones(3, 2, dtype=tg.float64)
    with pytest.raises(RuntimeError, match="same dtype"):
        tg.nn.functional.linear(tg.ones(2, 3), tg.ones(4, 3, dtype=tg.float64))
    x = tg.tensor([1.5, 2.5], requires_grad=True)
    assert not x.long().requires_grad and not x.int().requires_grad  # integer casts cut the graph
    with pytest.raises(RuntimeError, match="use .reshape"):
        tg.ones(3, 4).t().view(12)


def test_a_product_reads_an_input_only_for_the_other_inputs_gradient():
    """x * 10 needs x's value only for 10's gradient: writing into x afterwards is fine, as in torch."""
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    h = w * 1
    scaled = h[0:1] * 10  # a view of h, read by nobody's backward
    h[1] = 0.0
    (scaled.sum() + h.sum()).backward()
    assert w.grad.tolist() == [11.0, 0.0]
    other = tg.tensor([3.0], requires_grad=True)
    product = h[0:1] * other  # here other's gradient reads the view
    h[0] = 5.0
    with pytest.raises(RuntimeError, match=INPLACE_ERROR):
        product.sum().backward()
