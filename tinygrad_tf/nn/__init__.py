"""tinygrad_tf.nn: Module, Parameter and layers with torch.nn's names; functional, init, utils."""
from . import functional, init, utils
from .layers import (GELU, Dropout, Embedding, LayerNorm, Linear, ModuleDict, ModuleList, ReLU, Sequential,
                     Softmax)
from .module import Module, Parameter

__all__ = ["Module", "Parameter", "Linear", "Embedding", "LayerNorm", "Dropout", "ReLU", "GELU", "Softmax",
           "Sequential", "ModuleList", "ModuleDict", "functional", "init", "utils"]
