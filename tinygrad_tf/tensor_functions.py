"""torch.exp(x), torch.sum(x, 1), torch.sort(x), ...: the module-level functions that torch has
beside its Tensor methods. Each is the method of its first argument, so there is one
implementation of each op, in tensor.py."""
from .tensor import Tensor


def _method(name):
    def function(input, *args, **kwargs):
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}() expects a Tensor as its first argument, got {type(input).__name__}")
        return getattr(input, name)(*args, **kwargs)
    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"torch.{name}(input, ...): the same as input.{name}(...)."
    return function


NAMES = ("abs", "acos", "all", "allclose", "amax", "amin", "any", "argmax", "argmin", "argsort", "asin", "atan",
         "ceil", "chunk", "clamp", "clone", "cos", "cosh", "cumsum", "equal", "erf", "exp", "exp2", "expm1",
         "flatten", "flip", "floor", "gather", "gelu", "index_select", "isclose", "log", "log10", "log1p", "log2",
         "log_softmax", "logsumexp", "masked_fill", "matmul", "max", "maximum", "mean", "min", "minimum", "neg",
         "numel", "permute", "pow", "prod", "reciprocal", "relu", "repeat", "reshape", "roll", "round", "rsqrt",
         "sigmoid", "sign", "sin", "sinh", "softmax", "sort", "split", "sqrt", "square", "squeeze", "std", "sum",
         "t", "tan", "tanh", "topk", "transpose", "trunc", "unsqueeze", "var")
globals().update({name: _method(name) for name in NAMES})
__all__ = list(NAMES)
