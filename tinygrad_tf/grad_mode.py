"""Grad mode: whether ops record a graph (torch.no_grad, enable_grad, set_grad_enabled).

Per thread, as in PyTorch: a no_grad block in one thread leaves others recording."""
import contextlib
import threading

_mode = threading.local()


def is_grad_enabled():
    return getattr(_mode, "enabled", True)


def set_grad_enabled(mode):
    _mode.enabled = bool(mode)


class no_grad(contextlib.ContextDecorator):
    """Context manager and decorator: ops inside record no graph (inference, updates)."""

    def __enter__(self):
        self.prev = is_grad_enabled()
        set_grad_enabled(False)

    def __exit__(self, *exc):
        set_grad_enabled(self.prev)
        return False


class enable_grad(no_grad):
    """The opposite of no_grad, e.g. inside gradcheck called under no_grad."""

    def __enter__(self):
        self.prev = is_grad_enabled()
        set_grad_enabled(True)
