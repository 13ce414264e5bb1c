"""Learning-rate schedules: set each param group's lr from the number of steps taken.

As in PyTorch, a scheduler sets the lr for step 0 when it is made, and `step()` is
called once after each `optimizer.step()`; `last_epoch` counts those calls.
"""
import math

from .optimizer import Optimizer


class LRScheduler:
    _not_saved = ("optimizer",)  # the optimizer saves itself

    def __init__(self, optimizer, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__} needs an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:  # resuming: the schedule is relative to the lr the groups started with
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param_groups[{i}] has no 'initial_lr' to resume a schedule from "
                                   f"(last_epoch={last_epoch}); load the optimizer's state dict first")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def get_lr(self):
        """The lr of each group at step `self.last_epoch`."""
        raise NotImplementedError

    def step(self):
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        """The lrs the last step() set, one per param group."""
        return list(self._last_lr)

    def state_dict(self):
        """The scheduler's attributes (numbers and lists), ready for the serializer."""
        return {k: v for k, v in vars(self).items() if k not in self._not_saved}

    def load_state_dict(self, state_dict):
        expected = set(self.state_dict())
        if set(state_dict) != expected:
            raise KeyError(f"{type(self).__name__} state dict needs keys {sorted(expected)}, "
                           f"got {sorted(state_dict)}")
        self.__dict__.update(state_dict)


class LambdaLR(LRScheduler):
    """lr = base_lr * lr_lambda(step); one function, or a list of one per param group."""
    _not_saved = ("optimizer", "lr_lambdas")  # functions can't be saved: pass them again

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        n = len(optimizer.param_groups) if isinstance(optimizer, Optimizer) else 0
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != n:
                raise ValueError(f"expected {n} lr_lambdas (one per param group), got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * n
        for i, fn in enumerate(self.lr_lambdas):
            if not callable(fn):
                raise TypeError(f"lr_lambda {i} must be callable, got {type(fn).__name__}")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base_lr * fn(self.last_epoch) for base_lr, fn in zip(self.base_lrs, self.lr_lambdas)]


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (step // step_size): decay by gamma every step_size steps."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        if isinstance(step_size, bool) or not isinstance(step_size, int) or step_size <= 0:
            raise ValueError(f"StepLR: step_size must be a positive int, got {step_size!r}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size) for base_lr in self.base_lrs]


class ExponentialLR(LRScheduler):
    """lr = base_lr * gamma ** step."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base_lr * self.gamma ** self.last_epoch for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * step / T_max)) / 2: half a cosine from
    base_lr down to eta_min over T_max steps, then back up (torch's closed form)."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        if not T_max > 0:
            raise ValueError(f"CosineAnnealingLR: T_max must be positive, got {T_max!r}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base_lr in self.base_lrs]


def _check_cosine_args(warmup_steps, max_steps, min_lr):
    for name, value in (("warmup_steps", warmup_steps), ("max_steps", max_steps)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    if max_steps < 1 or warmup_steps > max_steps:
        raise ValueError(f"expected 0 <= warmup_steps <= max_steps and max_steps >= 1, "
                         f"got warmup_steps={warmup_steps}, max_steps={max_steps}")
    if not min_lr >= 0.0:
        raise ValueError(f"min_lr must be >= 0, got {min_lr}")


def cosine_with_warmup(step, base_lr, warmup_steps, max_steps, min_lr=0.0):
    """Linear warmup from 0 to base_lr over warmup_steps, then cosine decay to min_lr at
    max_steps, then min_lr. Step 0 has lr 0 when there is a warmup (as HF transformers),
    and base_lr at step warmup_steps."""
    _check_cosine_args(warmup_steps, max_steps, min_lr)
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    if step >= max_steps:
        return min_lr
    progress = (step - warmup_steps) / (max_steps - warmup_steps)
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


class CosineWithWarmup(LRScheduler):
    """`cosine_with_warmup` for each param group, from the group's initial lr."""

    def __init__(self, optimizer, warmup_steps, max_steps, min_lr=0.0, last_epoch=-1):
        _check_cosine_args(warmup_steps, max_steps, min_lr)
        self.warmup_steps, self.max_steps, self.min_lr = warmup_steps, max_steps, min_lr
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [cosine_with_warmup(self.last_epoch, base_lr, self.warmup_steps, self.max_steps, self.min_lr)
                for base_lr in self.base_lrs]
