"""tinygrad_tf: a small reverse-mode autograd engine on NumPy/CuPy, and a GPT to train with it."""
from . import backend, cuda, kernels, return_types
from .backend import bool_ as bool, float16, float32, float64, int32, int64  # noqa: A001
from .backend import Generator, manual_seed
from .creation import (arange, cat, empty, empty_like, eye, from_numpy, full, full_like, linspace, multinomial, ones,
                       ones_like, rand, rand_like, randint, randn, randn_like, randperm, stack, tensor, tril, triu,
                       where, zeros, zeros_like)
from .autocast_mode import autocast, get_autocast_dtype, is_autocast_enabled
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .threads import get_num_threads, set_num_threads
from .grad_mode import no_grad as inference_mode  # tinygrad_tf has no lighter mode than no_grad
from .tensor_functions import *  # noqa: F401,F403  (torch.exp(x), torch.sum(x, 1), ...)
from .gradcheck import GradcheckError, gradcheck
from .graphcheck import GraphReport, gradcheck_graph
from .serialize import load, save
from .tensor import Size, Tensor
from . import nn, optim, utils, viz  # noqa: E402  (they build on Tensor)
from . import amp  # noqa: E402

long, int = int64, int32  # noqa: A001  (torch's other names for the dtypes)
float, double, half = float32, float64, float16  # noqa: A001

__version__ = "0.1.0"


def __getattr__(name):
    """tg.bfloat16 is ml_dtypes' bfloat16; where ml_dtypes is missing, using it says what to install."""
    if name == "bfloat16":
        return backend.bfloat16()
    raise AttributeError(f"module 'tinygrad_tf' has no attribute {name!r}")
