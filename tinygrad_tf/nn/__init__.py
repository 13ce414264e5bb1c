"""tinygrad_tf.nn: Module, Parameter and layers with torch.nn's names; functional, init, utils."""
from . import functional, init, parallel, utils
from .layers import (GELU, Dropout, Embedding, Flatten, Identity, LayerNorm, Linear, ModuleDict, ModuleList, ReLU,
                     Sequential, Sigmoid, SiLU, Softmax, Tanh)
from .loss import CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from .module import Module, Parameter

__all__ = ["Module", "Parameter", "Linear", "Embedding", "LayerNorm", "Dropout", "ReLU", "GELU", "Softmax", "Tanh",
           "Sigmoid", "SiLU", "Identity", "Flatten", "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "Sequential", "ModuleList", "ModuleDict", "functional", "init",
           "parallel", "utils"]
