"""Bad input raises a clear error naming what was expected and what was given."""
import numpy as np
import pytest

import tinygrad_tf as tg
import tinygrad_tf.nn.functional as F


def test_matmul_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        tg.randn(2, 3) @ tg.randn(4, 5)


def test_broadcast_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        tg.randn(2, 3) + tg.randn(4)


def test_reshape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 2\)"):
        tg.randn(2, 3).reshape(4, 2)


def test_embedding_index_out_of_range():
    w = tg.randn(5, 3)
    with pytest.raises(IndexError, match="index 5 is out of range for 5 embeddings"):
        F.embedding(tg.tensor([0, 5]), w)
    with pytest.raises(IndexError, match="-1"):
        F.embedding(tg.tensor([-1]), w)


def test_cross_entropy_target_out_of_range():
    with pytest.raises(IndexError, match="target 3 is out of range for 3 classes"):
        F.cross_entropy(tg.randn(2, 3), tg.tensor([0, 3]))
    with pytest.raises(IndexError, match="-2"):
        F.cross_entropy(tg.randn(2, 3), tg.tensor([0, -2]))


def test_float_indices_raise():
    with pytest.raises(IndexError, match="not floats"):
        tg.randn(3)[1.0]
    with pytest.raises(IndexError, match="not floats"):
        tg.randn(3)[tg.tensor([0.0, 1.0])]
    with pytest.raises(TypeError, match="integer"):
        F.embedding(tg.tensor([0.0]), tg.randn(2, 2))
    with pytest.raises(TypeError, match="integer"):
        F.cross_entropy(tg.randn(2, 3), tg.tensor([0.0, 1.0]))


def test_integer_array_index_out_of_range():
    with pytest.raises(IndexError, match="out of bounds"):
        tg.randn(3, 2)[tg.tensor([0, 3])]


def test_backward_of_non_scalar_needs_gradient():
    x = tg.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar outputs"):
        (x * 2).backward()


def test_backward_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.randn(3).sum().backward()


def test_ragged_nested_lists_raise():
    with pytest.raises(ValueError, match="ragged"):
        tg.tensor([[1.0, 2.0], [3.0]])


def test_requires_grad_on_integer_tensor_raises():
    with pytest.raises(TypeError, match="floating-point"):
        tg.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="floating-point"):
        tg.arange(3).requires_grad = True


def test_unknown_device_and_dtype():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        tg.zeros(2, device="tpu")
    with pytest.raises(TypeError, match="dtype"):
        tg.zeros(2, dtype="complex64")


@pytest.mark.skipif(tg.cuda.is_available(), reason="checks the message on machines without a GPU")
def test_cuda_without_gpu_says_why():
    with pytest.raises(RuntimeError, match="cuda"):
        tg.zeros(2, device="cuda")


def test_dim_out_of_range():
    with pytest.raises(IndexError, match="dim 2 is out of range"):
        tg.randn(2, 3).sum(2)


def test_masked_fill_needs_bool_mask():
    with pytest.raises(TypeError, match="bool mask"):
        tg.randn(2).masked_fill(tg.tensor([1, 0]), 0.0)


def test_cat_and_stack_shape_errors():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        tg.stack([tg.randn(2, 3), tg.randn(2, 4)])
    with pytest.raises(ValueError, match="outside dim"):
        tg.cat([tg.randn(2, 3), tg.randn(3, 4)], dim=1)


def test_functional_argument_errors():
    with pytest.raises(ValueError, match="dropout probability"):
        F.dropout(tg.randn(2), 1.5)
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(tg.randn(2, 3), tg.tensor([0, 1]), reduction="avg")
    with pytest.raises(ValueError, match="normalized_shape"):
        F.layer_norm(tg.randn(2, 3), (4,))
    with pytest.raises(ValueError, match="4 features"):
        F.linear(tg.randn(2, 4), tg.randn(3, 5))
    with pytest.raises(ValueError, match="activation must be None or 'relu', got 'gelu'"):
        F.linear(tg.randn(2, 4), tg.randn(3, 4), activation="gelu")


def test_gradcheck_reports_the_worst_element():
    from tinygrad_tf.function import Function
    from tinygrad_tf.tensor import apply

    class DoubleWithWrongGrad(Function):
        def forward(self, a):
            return 2 * a

        def backward(self, g):
            return 3 * g

    x = tg.tensor(np.arange(3.0), dtype=tg.float64, requires_grad=True)
    with pytest.raises(tg.GradcheckError, match=r"input 0 .*analytic.*numeric"):
        tg.gradcheck(lambda a: apply(DoubleWithWrongGrad, a), (x,))


def test_gradcheck_insists_on_float64():
    with pytest.raises(TypeError, match="float64"):
        tg.gradcheck(lambda a: a * 2, (tg.randn(3, requires_grad=True),))


@pytest.mark.skipif(tg.cuda.is_available(), reason="checks the message on machines without a GPU")
def test_cuda_graph_without_gpu_says_why():
    g = tg.cuda.CUDAGraph()
    with pytest.raises(RuntimeError, match="CUDA graphs need a GPU"):
        with tg.cuda.graph(g):
            pass
    with pytest.raises(RuntimeError, match="needs a captured graph"):
        g.replay()
    with pytest.raises(RuntimeError, match=r"capture_end\(\) without capture_begin\(\)"):
        g.capture_end()


def test_copy_writes_in_place_casts_and_broadcasts():
    t = tg.zeros(2, 3)
    data = t.data
    assert t.copy_(np.arange(3)) is t and t.data is data  # the same memory: what a CUDA graph reads
    np.testing.assert_array_equal(t.numpy(), [[0, 1, 2], [0, 1, 2]])
    assert t.dtype == np.float32
    t.copy_(tg.tensor([[5.0], [6.0]], dtype=tg.float64))
    np.testing.assert_array_equal(t.numpy(), [[5, 5, 5], [6, 6, 6]])


def test_copy_names_bad_shapes_and_refuses_grad_leaves():
    with pytest.raises(ValueError, match=r"source's shape \(3, 2\) does not broadcast to this tensor's shape \(2, 3\)"):
        tg.zeros(2, 3).copy_(np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"\(2, 3\) does not broadcast to this tensor's shape \(3,\)"):
        tg.zeros(3).copy_(np.ones((2, 3)))  # broadcastable together, but not to the destination's shape
    w = tg.zeros(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="requires grad; do it under tg.no_grad"):
        w.copy_([1.0, 2.0])
    with tg.no_grad():
        w.copy_([1.0, 2.0])
    np.testing.assert_array_equal(w.detach().numpy(), [1, 2])
