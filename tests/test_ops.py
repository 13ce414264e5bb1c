"""Every differentiable op, gradchecked in float64 and (when torch is installed)
compared with PyTorch on values and gradients.

Each case is fn(lib, F, *inputs) written once for both libraries: `lib` is
tinygrad_tf or torch, `F` the matching functional module. The gradchecks run on the
textbook ops (tg.kernels.selected("none")) and again with the fused ops this machine
picks. A coverage test walks the graphs the cases build on textbook ops and fails if any
textbook op (a Function in tinygrad_tf/ops/) has no case.
"""
import numpy as np
import pytest

import tinygrad_tf as tg
import tinygrad_tf.nn.functional as TF
from tinygrad_tf import kernels
from tinygrad_tf.function import Function

rng = np.random.default_rng(0)


def r(*shape, lo=None):
    """Random float64 array; lo= keeps values away from kinks/poles (|x| >= lo)."""
    a = rng.standard_normal(shape)
    return a if lo is None else np.sign(a) * (np.abs(a) + lo)


def pos(*shape):
    return rng.uniform(0.5, 2.0, shape)


def distinct(*shape):
    """Values far apart, so max/argmax has no near-ties for finite differences."""
    return rng.permutation(np.arange(int(np.prod(shape)), dtype=np.float64)).reshape(shape) * 0.1


MASK = rng.random((3, 5)) > 0.4
MASK[:, 0] = False  # every row keeps at least one entry for softmax
CAUSAL_BOOL = np.tril(np.ones((4, 4), dtype=bool))
IDX_REPEAT = np.array([0, 2, 2, 1, 0])
TOKENS = np.array([[1, 3, 3], [0, 6, 1]])
TARGETS = np.array([2, 0, 4, 4])
TARGETS_IGNORE = np.array([2, -100, 4, 1])
TARGETS_3D = np.array([[1, 0, 2], [2, 2, 0]])


def seeded_dropout(lib, F, x, p):
    """Dropout with the same mask on every call, so finite differences make sense."""
    lib.manual_seed(0)
    return F.dropout(x, p, True)


def written_in_graph(lib, F, a, b):
    """Writes into a tensor of the graph (torch records them; so do we, as SetItem nodes)."""
    h = a * 2
    h[:, 0] = b
    h[1, 2] = h[1, 2] * 10
    h += a
    h *= b[:, None]
    return h


def written_int_then_array(lib, F, a, b):
    """An int and an integer array in one written index: torch's dims, (3, 2) here (NumPy's: (2, 3))."""
    h = a * 2
    h[0, :, [0, 2]] = b
    return h


def linear_relu(lib, F, x, w, b):
    """Ours applies the ReLU inside linear (one op); torch, the oracle, composes the two."""
    if getattr(lib, "__name__", "") == "torch":
        return F.relu(F.linear(x, w, b))
    return F.linear(x, w, b, activation="relu")


CASES = [
    # (id, fn(lib, F, *inputs), inputs, options)
    ("add_broadcast", lambda lib, F, a, b: a + b, [r(3, 1, 4), r(2, 4)], {}),
    ("add_scalar_reversed", lambda lib, F, a: 2.5 + a + 1, [r(2, 3)], {}),
    ("sub_broadcast", lambda lib, F, a, b: a - b, [r(2, 3), r(3)], {}),
    ("rsub_scalar", lambda lib, F, a: 1.0 - a, [r(4)], {}),
    ("mul_broadcast", lambda lib, F, a, b: a * b, [r(2, 1, 3), r(4, 1)], {}),
    ("mul_scalar", lambda lib, F, a: 3 * a * 0.5, [r(3, 2)], {}),
    ("div", lambda lib, F, a, b: a / b, [r(2, 3), pos(3)], {}),
    ("rdiv_scalar", lambda lib, F, a: 2.0 / a, [pos(5)], {}),
    ("pow_scalar", lambda lib, F, a: a ** 3, [r(2, 3)], {}),
    ("pow_tensor", lambda lib, F, a, b: a ** b, [pos(2, 3), r(2, 3)], {}),
    ("rpow_scalar", lambda lib, F, a: 2.0 ** a, [r(4)], {}),
    ("neg", lambda lib, F, a: -a, [r(3)], {}),
    ("exp", lambda lib, F, a: a.exp(), [r(2, 3)], {}),
    ("log", lambda lib, F, a: a.log(), [pos(2, 3)], {}),
    ("sqrt", lambda lib, F, a: a.sqrt(), [pos(2, 3)], {}),
    ("tanh", lambda lib, F, a: a.tanh(), [r(2, 3)], {}),
    ("sigmoid", lambda lib, F, a: a.sigmoid(), [r(2, 3) * 3], {}),
    ("relu", lambda lib, F, a: a.relu(), [r(3, 4, lo=0.01)], {}),
    ("gelu", lambda lib, F, a: F.gelu(a), [r(3, 4) * 2], {}),
    ("gelu_tanh", lambda lib, F, a: F.gelu(a, approximate="tanh"), [r(3, 4) * 2], {}),
    ("abs", lambda lib, F, a: a.abs(), [r(2, 3, lo=0.01)], {}),
    ("clamp", lambda lib, F, a: a.clamp(min=-0.5, max=0.7),
     [np.array([-1.3, -0.2, 0.1, 0.9, 2.0, -0.6])], {}),
    ("where", lambda lib, F, a, b: lib.where(lib.tensor(MASK), a, b), [r(3, 5), r(5)], {}),
    ("masked_fill", lambda lib, F, a: a.masked_fill(lib.tensor(MASK), -2.0), [r(3, 5)], {}),
    ("tril", lambda lib, F, a: lib.tril(a), [r(4, 4)], {}),
    ("sum_all", lambda lib, F, a: a.sum(), [r(2, 3, 4)], {}),
    ("sum_dim_keepdim", lambda lib, F, a: a.sum(1, keepdim=True), [r(2, 3, 4)], {}),
    ("sum_dims_tuple", lambda lib, F, a: a.sum(dim=(0, 2)), [r(2, 3, 4)], {}),
    ("mean_dim", lambda lib, F, a: a.mean(-1), [r(2, 3, 4)], {}),
    ("mean_all", lambda lib, F, a: a.mean(), [r(2, 3)], {}),
    ("var_unbiased", lambda lib, F, a: a.var(1), [r(3, 5)], {}),
    ("var_biased_keepdim", lambda lib, F, a: a.var(dim=(0, 1), keepdim=True, unbiased=False),
     [r(2, 3, 4)], {}),
    ("max_all", lambda lib, F, a: a.max(), [distinct(3, 4)], {}),
    ("max_dim", lambda lib, F, a: a.max(1)[0], [distinct(3, 4)], {}),
    ("max_dim_keepdim", lambda lib, F, a: a.max(0, keepdim=True)[0], [distinct(3, 4)], {}),
    ("min_dim", lambda lib, F, a: a.min(-1)[0], [distinct(2, 5)], {}),
    ("matmul_2d", lambda lib, F, a, b: a @ b, [r(3, 4), r(4, 5)], {}),
    ("matmul_batched_broadcast", lambda lib, F, a, b: a @ b, [r(2, 1, 3, 4), r(5, 4, 2)], {}),
    ("matmul_vec_mat", lambda lib, F, a, b: a @ b, [r(4), r(2, 4, 3)], {}),
    ("matmul_mat_vec", lambda lib, F, a, b: a.matmul(b), [r(2, 3, 4), r(4)], {}),
    ("matmul_dot", lambda lib, F, a, b: a @ b, [r(4), r(4)], {}),
    ("matmul_noncontiguous", lambda lib, F, a, b: a @ b, [r(4, 3).T, r(5, 4).T], {}),
    ("reshape_view", lambda lib, F, a: a.reshape(3, -1).view(6, 2), [r(2, 3, 2)], {}),
    ("permute", lambda lib, F, a: a.permute(2, 0, 1), [r(2, 3, 4)], {}),
    ("transpose_T", lambda lib, F, a: a.transpose(0, -1) + a.T, [r(3, 3)], {}),
    ("unsqueeze_squeeze", lambda lib, F, a: a.unsqueeze(1).squeeze(), [r(3, 1, 4)], {}),
    ("expand", lambda lib, F, a: a.expand(2, 3, 4), [r(3, 1)], {}),
    ("flatten", lambda lib, F, a: a.flatten(1), [r(2, 3, 4)], {}),
    ("split", lambda lib, F, a: a.split(2, dim=1)[1] * 2 + a.split([1, 4], 1)[1].sum(), [r(3, 5)], {}),
    ("chunk", lambda lib, F, a: a.chunk(3, 0)[2], [r(7, 2)], {}),
    ("getitem_basic", lambda lib, F, a: a[1, ::2, None, ...], [r(3, 5, 2)], {}),
    ("getitem_negative_step", lambda lib, F, a: a[::-2, 1:], [r(5, 3)], {"torch": False}),  # torch has no negative steps
    ("getitem_repeated_array", lambda lib, F, a: a[IDX_REPEAT], [r(3, 2)], {}),
    ("getitem_tensor_index", lambda lib, F, a: a[:, lib.tensor(IDX_REPEAT)], [r(2, 3)], {}),
    ("getitem_two_arrays", lambda lib, F, a: a[lib.tensor([0, 1, 1]), lib.tensor([2, 0, 2])], [r(2, 3)], {}),
    ("cat", lambda lib, F, a, b: lib.cat([a, b, a], 1), [r(2, 3), r(2, 1)], {}),
    ("stack", lambda lib, F, a, b: lib.stack([a, b], dim=-1), [r(2, 3), r(2, 3)], {}),
    ("softmax", lambda lib, F, a: a.softmax(-1), [r(3, 5)], {}),
    ("softmax_large_logits", lambda lib, F, a: F.softmax(a + 1000.0, 0), [r(4, 3)], {}),
    ("softmax_masked_rows", lambda lib, F, a: a.masked_fill(lib.tensor(MASK), float("-inf")).softmax(-1),
     [r(3, 5)], {}),
    ("log_softmax", lambda lib, F, a: F.log_softmax(a, dim=1), [r(3, 5) * 10], {}),
    ("log_softmax_masked", lambda lib, F, a: (a.masked_fill(lib.tensor(MASK), float("-inf"))
                                              .log_softmax(-1).masked_fill(lib.tensor(MASK), 0.0)),
     [r(3, 5)], {}),
    ("cross_entropy", lambda lib, F, a: F.cross_entropy(a, lib.tensor(TARGETS)), [r(4, 5)], {}),
    ("cross_entropy_sum_smoothing", lambda lib, F, a: F.cross_entropy(
        a, lib.tensor(TARGETS), reduction="sum", label_smoothing=0.1), [r(4, 5)], {}),
    ("cross_entropy_none_ignore", lambda lib, F, a: F.cross_entropy(
        a, lib.tensor(TARGETS_IGNORE), reduction="none"), [r(4, 5)], {}),
    ("cross_entropy_mean_ignore", lambda lib, F, a: F.cross_entropy(
        a, lib.tensor(TARGETS_IGNORE), label_smoothing=0.2), [r(4, 5) * 5], {}),
    ("cross_entropy_3d", lambda lib, F, a: F.cross_entropy(a, lib.tensor(TARGETS_3D)), [r(2, 3, 3)], {}),
    ("layer_norm", lambda lib, F, x, w, b: F.layer_norm(x, (4,), w, b), [r(2, 3, 4), r(4), r(4)], {}),
    ("layer_norm_2d_no_affine", lambda lib, F, x: F.layer_norm(x, (3, 4)), [r(2, 3, 4)], {}),
    ("embedding_repeated", lambda lib, F, w: F.embedding(lib.tensor(TOKENS), w), [r(7, 3)], {}),
    ("linear", lambda lib, F, x, w, b: F.linear(x, w, b), [r(2, 3, 4), r(5, 4), r(5)], {}),
    ("linear_relu", linear_relu, [r(2, 3, 4), r(5, 4), r(5)], {}),
    ("linear_no_bias_noncontiguous", lambda lib, F, x, w: F.linear(x, w), [r(4, 3).T, r(4, 2).T], {}),
    ("dropout", lambda lib, F, a: seeded_dropout(lib, F, a, 0.3), [r(4, 5)], {"torch": False}),
    ("to_dtype", lambda lib, F, a: a.to(lib.float32).to(lib.float64) * 2, [r(3)],
     {"eps": 1e-3, "atol": 1e-3}),
    ("sdpa_causal", lambda lib, F, q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
     [r(2, 4, 3), r(2, 4, 3), r(2, 4, 3)], {}),
    ("sdpa_bool_mask", lambda lib, F, q, k, v: F.scaled_dot_product_attention(
        q, k, v, attn_mask=lib.tensor(CAUSAL_BOOL)), [r(1, 2, 4, 3), r(1, 2, 4, 3), r(1, 2, 4, 2)], {}),
    ("sdpa_float_mask", lambda lib, F, q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
     [r(2, 4, 3), r(2, 5, 3), r(2, 5, 3), r(4, 5)], {}),
    ("sdpa_dropout", lambda lib, F, q, k, v: (lib.manual_seed(0), F.scaled_dot_product_attention(
        q, k, v, dropout_p=0.5, is_causal=True))[1], [r(2, 4, 3), r(2, 4, 3), r(2, 4, 3)],
     {"torch": False}),
    # more elementwise math (ops/unary.py, ops/minmax.py) and its compositions
    ("sin_cos_tan", lambda lib, F, a: a.sin() + a.cos() * 2 + (a * 0.3).tan(), [r(2, 3)], {}),
    ("asin_acos_atan", lambda lib, F, a: a.asin() + a.acos() * 2 + (a * 3).atan(), [rng.uniform(-0.9, 0.9, (2, 3))],
     {}),
    ("sinh_cosh", lambda lib, F, a: a.sinh() + a.cosh() * 2, [r(2, 3)], {}),
    ("log1p_expm1", lambda lib, F, a: a.log1p() + (a * 1e-3).expm1() * 1e3, [pos(2, 3)], {}),
    ("erf", lambda lib, F, a: lib.erf(a * 2), [r(3, 4)], {}),
    ("rounding", lambda lib, F, a: a * 2 + a.floor() + a.ceil() + a.round() + a.trunc() + a.sign(),
     [r(2, 3, lo=0.1) * 3 + 0.25], {}),
    ("square_rsqrt_reciprocal_log2", lambda lib, F, a: a.square() + a.rsqrt() + a.reciprocal() + a.log2()
     + a.log10() + lib.exp2(a), [pos(2, 3)], {}),
    ("silu_tanh_sigmoid_F", lambda lib, F, a: F.silu(a) + F.tanh(a) + F.sigmoid(a), [r(2, 3)], {}),
    ("maximum_minimum", lambda lib, F, a, b: lib.maximum(a, b) * 2 + lib.minimum(a, b), [r(3, 4), r(4)], {}),
    ("amax_amin", lambda lib, F, a: a.amax(dim=(0, 2)) + a.amin(1).sum(), [distinct(2, 3, 4)], {}),
    ("std", lambda lib, F, a: a.std(1), [r(3, 5)], {}),
    ("prod", lambda lib, F, a: a.prod(1) + a.prod(0, keepdim=True).sum() + a.prod(), [r(3, 4)], {}),
    ("prod_with_zero", lambda lib, F, a: a.prod(1), [np.array([[0.0, 2.0, 3.0], [1.5, 0.0, 0.0]])], {}),
    ("logsumexp", lambda lib, F, a: a.logsumexp(1) + lib.logsumexp(a, (0, 1), keepdim=True).sum(), [r(3, 4)], {}),
    ("cumsum", lambda lib, F, a: a.cumsum(1) * a.cumsum(0), [r(3, 4)], {}),
    ("clone", lambda lib, F, a: a.clone() * 2, [r(3)], {}),
    ("gather", lambda lib, F, a: a.gather(1, lib.tensor([[0, 0, 2], [1, 2, 1]])), [r(2, 3)], {}),
    ("index_select", lambda lib, F, a: a.index_select(1, lib.tensor([2, 0, 2])), [r(2, 3)], {}),
    ("index_select_0d_index_permuted", lambda lib, F, a: a.permute(2, 0, 1).index_select(1, lib.tensor(1))
     + a.index_select(-1, lib.tensor([3, 0])).sum(), [r(2, 3, 4)], {}),
    ("gather_smaller_index", lambda lib, F, a: a.gather(1, lib.tensor([[0, 2], [1, 1]])), [r(3, 3)], {}),
    ("getitem_int_then_array", lambda lib, F, a: a[0, :, [0, 2]] * 2 + a[1, ..., lib.tensor([3, 3])]
     + a.permute(2, 1, 0)[[1, 0], 1:].sum(), [r(2, 3, 4)], {}),
    ("getitem_mask_ellipsis", lambda lib, F, a: a[..., lib.tensor([True, False, True, True])].sum(-1)
     + a[lib.tensor([False, True]), ..., 1], [r(2, 3, 4)], {}),
    ("sort_topk", lambda lib, F, a: a.sort(1, descending=True).values * 2 + a.topk(3, dim=1).values,
     [distinct(2, 3)], {}),
    ("repeat_roll_flip", lambda lib, F, a: a.repeat(2, 1, 2).sum(0)[:, 1:4] + a.roll(1, 1) + a.flip(1)
     + a.roll(-1), [r(2, 3)], {}),
    ("triu_t", lambda lib, F, a: lib.triu(a, 1) + a.t().tril(), [r(3, 3)], {}),
    ("setitem_inplace_in_graph", written_in_graph, [r(2, 3), r(2)], {}),
    ("setitem_int_then_array", written_int_then_array, [r(2, 3, 4), r(3, 2)], {}),
    ("mse_l1_nll_losses", lambda lib, F, a, b: F.mse_loss(a, b) + F.l1_loss(a, b, reduction="sum")
     + F.nll_loss(a.log_softmax(1), lib.tensor([0, 2])), [r(2, 3), r(2, 3, lo=0.1)], {}),
]

GPU_ONLY_FUNCTIONS = {"ToDevice"}  # exercised by the GPU parity tests


def make_inputs(arrays):
    """Fresh float64 leaves; copy(order="K") keeps a transposed array non-contiguous."""
    return [tg.tensor(a.copy(order="K"), dtype=tg.float64, requires_grad=True) for a in arrays]


@pytest.mark.parametrize("ops", ["none", "all"], ids=["textbook", "fused"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_gradcheck(case, ops):
    _, fn, arrays, opts = case
    inputs = make_inputs(arrays)
    with kernels.selected(ops):
        assert tg.gradcheck(lambda *xs: fn(tg, TF, *xs), inputs, eps=opts.get("eps", 1e-6),
                            atol=opts.get("atol", 1e-5), rtol=opts.get("rtol", 1e-3))


def test_noncontiguous_inputs_really_are():
    x = make_inputs([r(4, 3).T])[0]
    assert not x.data.flags.c_contiguous


def _functions_in_graph(t):
    seen, stack, names = set(), [t._ctx], set()
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen or fn.is_leaf_node:
            continue
        seen.add(fn)
        names.add(type(fn).__name__)
        stack.extend(fn.parents)
    return names


def _textbook_ops():
    out, todo = set(), [Function]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("tinygrad_tf.ops."):
                out.add(sub.__name__)
            todo.append(sub)
    return out


@kernels.selected("none")
def test_every_textbook_op_has_a_gradcheck_case():
    covered = set()
    for _, fn, arrays, _ in CASES:
        out = fn(tg, TF, *make_inputs(arrays))
        covered |= _functions_in_graph(out)
    missing = _textbook_ops() - covered - GPU_ONLY_FUNCTIONS
    assert not missing, f"ops without a gradcheck case: {sorted(missing)}"
    assert len(_textbook_ops()) > 30


@pytest.mark.parametrize("ops", ["none", "all"], ids=["textbook", "fused"])
@pytest.mark.parametrize("case", [c for c in CASES if c[3].get("torch", True)],
                         ids=[c[0] for c in CASES if c[3].get("torch", True)])
def test_matches_torch(case, ops):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as TorchF
    _, fn, arrays, opts = case
    ours = make_inputs(arrays)
    theirs = [torch.tensor(np.ascontiguousarray(a), dtype=torch.float64, requires_grad=True) for a in arrays]
    with kernels.selected(ops):
        out = fn(tg, TF, *ours)
    ref = fn(torch, TorchF, *theirs)
    rtol = opts.get("torch_rtol", 1e-10)
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=rtol, atol=rtol)
    weight = np.random.default_rng(1).standard_normal(out.shape)
    with kernels.selected(ops):
        (out * tg.tensor(weight, dtype=tg.float64)).sum().backward()
    (ref * torch.tensor(weight)).sum().backward()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=rtol)
