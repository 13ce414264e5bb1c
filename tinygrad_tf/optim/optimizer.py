"""Optimizer: the bookkeeping every update rule shares (param groups, state, checkpoints).

A subclass only writes `_update(param, grad, state, group)` on raw backend arrays (or
`_step_group`, to update a group's params together); this class loops over the groups,
skips params without a gradient, and saves and
restores the per-param state the way PyTorch does, so checkpoints read the same.
"""
import numpy as np

from .. import backend
from ..grad_mode import enable_grad, no_grad
from ..tensor import FLOAT_DTYPES, Tensor


class Optimizer:
    def __init__(self, params, defaults):
        if isinstance(params, Tensor):
            raise TypeError("params should be an iterable of Tensors or of param-group dicts, "
                            "but got a single Tensor; wrap it in a list")
        self._validate(defaults)
        self.defaults = defaults
        self.state = {}  # param Tensor (hashed by identity) -> {name: array or number}
        self.param_groups = []
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        for group in (groups if isinstance(groups[0], dict) else [{"params": groups}]):
            self.add_param_group(group)

    def _validate(self, hyperparams):
        """Raise on bad hyperparameters; subclasses check their own (run for defaults and each group)."""

    def add_param_group(self, param_group):
        """Add a dict {"params": [...], "lr": ...}; keys it leaves out take the optimizer's defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"a param group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"a param group needs a 'params' key, got keys {sorted(param_group)}")
        params = param_group["params"]
        if isinstance(params, (set, frozenset)):
            raise TypeError("params must be an ordered collection (a list), not a set: "
                            "the order is what a state dict's indices refer to")
        params = [params] if isinstance(params, Tensor) else list(params)
        gi = len(self.param_groups)
        if not params:
            raise ValueError(f"optimizer got an empty parameter list (param group {gi})")
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        for i, p in enumerate(params):
            where = f"param {i} of param group {gi}"
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but {where} is a {type(p).__name__}")
            if p.dtype not in FLOAT_DTYPES:
                raise TypeError(f"optimizer can only optimize floating-point Tensors, but {where} "
                                f"has dtype {p.dtype}")
            if not p.requires_grad:
                raise ValueError(f"{where} does not require grad; set requires_grad=True or leave it out")
            if not p.is_leaf:
                raise ValueError(f"can't optimize a non-leaf Tensor ({where}); pass a leaf instead")
            if id(p) in seen:
                raise ValueError(f"{where} appears more than once in the optimizer's parameters")
            seen.add(id(p))
        group = {**self.defaults, **param_group, "params": params}
        self._validate(group)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        """Forget the gradients: drop them (default) or replace them by fresh zeros.

        Never zeroes in place: backward may hand one array to several params."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None or set_to_none:
                    p.grad = None
                else:
                    p.grad = Tensor._wrap(backend.array_module(p.grad.data).zeros_like(p.grad.data))

    def step(self, closure=None):
        """Update every param that has a gradient; closure() recomputes the loss first, as in PyTorch."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                params = [p for p in group["params"] if p.grad is not None]
                self._step_group(group, params)
                for p in params:  # written in place: a graph that saved a param's old value must not backward
                    p._version[0] += 1
        return loss

    def _step_group(self, group, params):
        """Update one group's params that have a gradient; by default one _update each."""
        for p in params:
            self._update(p.data, p.grad.data, self.state.setdefault(p, {}), group)

    def _update(self, param, grad, state, group):
        """Update the raw array `param` (in place) from `grad` (read only) and this param's `state`."""
        raise NotImplementedError

    # --- checkpoints ----------------------------------------------------------------
    def state_dict(self):
        """{"state": {index: {name: Tensor or number}}, "param_groups": [{..., "params": [indices]}]}.

        Params are numbered across groups in order, as in PyTorch. The Tensors share memory
        with the live state (no copy, like PyTorch): save them before the next step()."""
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: {k: Tensor._wrap(v) if _is_array(v) else v for k, v in s.items()}
                 for p, s in self.state.items() if s}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore state and hyperparameters from state_dict(); the state is copied onto each
        param's device and dtype. Nothing changes if the state dict does not fit."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter group(s), "
                             f"but the optimizer has {len(self.param_groups)}")
        by_index = {}
        for gi, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"parameter group {gi} of the loaded state dict has {len(saved['params'])} "
                                 f"param(s), but the optimizer's group {gi} has {len(group['params'])}")
            by_index.update(zip((int(i) for i in saved["params"]), group["params"]))
        state = {}
        for key, saved_state in state_dict["state"].items():
            if int(key) not in by_index:  # keys may come back as strings from a file
                raise ValueError(f"loaded state dict has state for param index {key}, but its "
                                 f"param groups list only {sorted(by_index)}")
            p = by_index[int(key)]
            state[p] = {name: _load_value(value, p, f"state {name!r} of param {key}")
                        for name, value in saved_state.items()}
        for group, saved in zip(self.param_groups, saved_groups):
            for k, v in saved.items():
                if k != "params":  # a file gives lists back where we had tuples (betas)
                    group[k] = tuple(v) if isinstance(group.get(k), tuple) and isinstance(v, list) else v
        self.state = state

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines + [")"])


def _is_array(v):
    return isinstance(v, (Tensor, np.ndarray)) or backend.is_cuda_array(v)


def _load_value(value, param, what):
    """Numbers stay as they are; arrays become a fresh copy with the param's device, dtype and shape."""
    if not _is_array(value):
        return value
    arr = value.data if isinstance(value, Tensor) else value
    if tuple(arr.shape) != param.shape:
        raise ValueError(f"{what} has shape {tuple(arr.shape)}, but the param has shape {param.shape}")
    return backend.to_device(arr, param.device).astype(param.dtype, copy=True)
