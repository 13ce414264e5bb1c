"""tinygrad_tf: a small reverse-mode autograd engine on NumPy/CuPy, and a GPT to train with it."""
from . import backend, cuda, kernels
from .backend import bool_ as bool, float16, float32, float64, int32, int64  # noqa: A001
from .backend import Generator, manual_seed
from .creation import (arange, cat, empty, full, ones, ones_like, rand, randint, randn, stack,
                       tensor, tril, where, zeros, zeros_like)
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .gradcheck import GradcheckError, gradcheck
from .graphcheck import GraphReport, gradcheck_graph
from .serialize import load, save
from .tensor import Tensor
from . import nn, optim, utils, viz  # noqa: E402  (they build on Tensor)

__version__ = "0.1.0"
