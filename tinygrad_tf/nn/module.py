"""Module and Parameter: PyTorch's containers for learnable state.

A Module keeps its Parameters, buffers and sub-Modules in three ordered dicts,
filled by `__setattr__`, so `self.fc = Linear(2, 3)` is all it takes to register a
layer, and names come out dotted and in definition order, as torch's do. That is
what makes a torch state_dict load here key for key.
"""
from collections import OrderedDict, namedtuple

import numpy as np

from .. import backend
from ..backend import parse_device, parse_dtype
from ..tensor import Tensor


class Parameter(Tensor):
    """A leaf Tensor that a Module registers as learnable (requires grad by default).

    Built from a Tensor it shares that tensor's array, as torch's does."""
    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        super().__init__(np.empty(0, backend.float32) if data is None else data,
                         requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of every layer and model: subclass it, assign layers in __init__, write forward."""

    def __init__(self):
        # object.__setattr__: our own __setattr__ needs these dicts to exist first.
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # --- registration ------------------------------------------------------------
    def _registry(self, what):
        registry = self.__dict__.get("_parameters")
        if registry is None:
            raise AttributeError(f"cannot assign {what} before Module.__init__() call "
                                 f"(call super().__init__() first in {type(self).__name__}.__init__)")
        return registry

    def _check_name(self, name, kind, registry):
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
        if name == "" or "." in name:
            raise KeyError(f"{kind} name can't be empty or contain '.', got {name!r}")
        if hasattr(self, name) and name not in registry:
            raise KeyError(f"attribute '{name}' already exists")

    def _forget(self, name):
        """Drop `name` from every place an attribute can live (before re-registering it)."""
        for d in (self.__dict__, self._parameters, self._buffers, self._modules):
            d.pop(name, None)
        self._non_persistent_buffers.discard(name)

    def register_parameter(self, name, param):
        """Add a Parameter (or None: a declared but absent one, like Linear's bias=False)."""
        self._registry("parameters")
        self._check_name(name, "parameter", self._parameters)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                            f"(Parameter or None required)")
        self._forget(name)
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Add state that is not learnable (e.g. a causal mask); persistent ones go in state_dict."""
        self._registry("buffers")
        self._check_name(name, "buffer", self._buffers)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            f"(Tensor or None required)")
        self._forget(name)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent_buffers.add(name)

    def add_module(self, name, module):
        self._registry("submodules")
        self._check_name(name, "module", self._modules)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._forget(name)
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            self._registry("parameters")
            self._forget(name)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._registry("submodules")
            self._forget(name)
            self._modules[name] = value
        elif name in self.__dict__.get("_parameters", ()):
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                f"(Parameter or None expected)")
            self._parameters[name] = None
        elif name in self.__dict__.get("_modules", ()):
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' "
                                f"(Module or None expected)")
            self._modules[name] = None
        elif name in self.__dict__.get("_buffers", ()):
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                                f"(Tensor or None expected)")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Only called when normal lookup fails: registered things live in the dicts.
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if name in d.get(registry, ()):
                return d[registry][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    # --- traversal -----------------------------------------------------------------
    def named_modules(self, prefix=""):
        """(name, module) for self and every descendant, each module once (pre-order)."""
        seen, stack = set(), [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{n}" if name else n, m) for n, m in module._modules.items()
                        if m is not None]
            stack.extend(reversed(children))

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def _named_members(self, registry, prefix, recurse):
        """Named entries of one registry over the module tree; a shared entry (tied weights) once."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{module_name}.{name}" if module_name else name), value

    def named_parameters(self, prefix="", recurse=True):
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True):
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def num_parameters(self):
        """Total number of learnable scalars (a tied weight counted once)."""
        return sum(p.numel() for p in self.parameters())

    def apply(self, fn):
        """Call fn on every submodule and then self, e.g. a custom weight init."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # --- state ---------------------------------------------------------------------
    def state_dict(self, prefix="", keep_vars=False):
        """OrderedDict name -> Tensor: per module its parameters, then persistent buffers, then
        its children's, as torch orders them. Values are detached and share the parameters'
        arrays (copy them to snapshot); a tied weight appears under each of its names."""
        out = OrderedDict()
        for name, p in self._parameters.items():
            if p is not None:
                out[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers:
                out[prefix + name] = b if keep_vars else b.detach()
        for name, m in self._modules.items():
            if m is not None:
                out.update(m.state_dict(prefix=f"{prefix}{name}.", keep_vars=keep_vars))
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copy values into the existing parameters and buffers (same objects, same arrays, so
        an optimizer holding them keeps working). Every key and shape is checked before anything
        is written: on error the module is unchanged. Values may be Tensors or numpy/cupy arrays;
        each is moved to its target's device and cast to its dtype."""
        targets = self.state_dict(keep_vars=True)
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        errors, arrays = [], {}
        if strict:
            if missing:
                errors.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
            if unexpected:
                errors.append("Unexpected key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in unexpected) + ".")
        for key, target in targets.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            array = value.data if isinstance(value, Tensor) else value
            if isinstance(array, np.generic):  # numpy arithmetic on a 0-d array gives a scalar
                array = np.asarray(array)
            if not (isinstance(array, np.ndarray) or backend.is_cuda_array(array)):
                raise TypeError(f"state_dict['{key}'] must be a Tensor or an array, got {type(value).__name__}")
            if array.shape != target.shape:
                errors.append(f"size mismatch for {key}: copying a param with shape {array.shape} from "
                              f"checkpoint, the shape in current model is {target.shape}.")
            arrays[key] = array
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                               + "\n\t".join(errors))
        for key, array in arrays.items():
            target = targets[key]
            # In place, as torch's copy_: anything holding the array (views, an optimizer) sees it.
            target.data[...] = backend.to_device(array, target.device).astype(target.dtype, copy=False)
        return IncompatibleKeys(missing, unexpected)

    # --- modes ---------------------------------------------------------------------
    def train(self, mode=True):
        """Set training mode (dropout active) on self and every submodule."""
        if not isinstance(mode, bool):
            raise ValueError(f"training mode is expected to be a bool, got {mode!r}")
        for m in self.modules():
            m.training = mode
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        """Freeze (False) or unfreeze every parameter."""
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none=True):
        """Forget gradients; with set_to_none=False give fresh zero arrays (never zeroed in place,
        since backward may share one gradient array between tensors)."""
        for p in self.parameters():
            if p.grad is not None:
                p.grad = None if set_to_none else Tensor._wrap(backend.array_module(p.data).zeros_like(p.grad.data))

    # --- device and dtype ------------------------------------------------------------
    def to(self, *args, device=None, dtype=None):
        """to(device), to(dtype) or to(device, dtype): moves and casts IN PLACE, returns self.

        Parameters keep their identity (their .data and .grad are replaced); buffers are
        replaced in the module, as torch does. Only floating-point tensors are cast."""
        for a in args:
            if isinstance(a, str) and a not in backend.DTYPES:
                device = a
            else:
                dtype = a
        device = None if device is None else parse_device(device)
        dtype = parse_dtype(dtype)
        if dtype is not None and not backend.is_floating(dtype):
            raise TypeError(f"Module.to only accepts floating-point dtypes, got {dtype}")

        def convert(array):
            if device is not None:
                array = backend.to_device(array, device)
            if dtype is not None and backend.is_floating(array.dtype):
                array = array.astype(dtype, copy=False)
            return array

        for p in self.parameters():
            p.data = convert(p.data)
            if p.grad is not None:
                p.grad = Tensor._wrap(convert(p.grad.data))
        converted = {}  # id -> (old, new): a buffer shared by two modules stays shared
        for m in self.modules():
            for name, b in m._buffers.items():
                if b is None:
                    continue
                if id(b) not in converted:
                    array = convert(b.data)
                    converted[id(b)] = b, (b if array is b.data else Tensor(array, requires_grad=b.requires_grad))
                m._buffers[name] = converted[id(b)][1]
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to("cuda" if device is None else (f"cuda:{device}" if isinstance(device, int) else device))

    def float(self):
        return self.to(backend.float32)

    def double(self):
        return self.to(backend.float64)

    def half(self):
        return self.to(backend.float16)

    # --- printing ------------------------------------------------------------------
    def extra_repr(self):
        """One line of this module's settings, shown inside its repr (override it)."""
        return ""

    def __repr__(self):
        extra_repr = self.extra_repr()
        extra = extra_repr.split("\n") if extra_repr else []
        children = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        lines = extra + children
        if not lines:
            return f"{type(self).__name__}()"
        if len(extra) == 1 and not children:
            return f"{type(self).__name__}({extra[0]})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"
