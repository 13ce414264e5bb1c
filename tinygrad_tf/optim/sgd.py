"""Stochastic gradient descent with momentum, Nesterov, weight decay: PyTorch's exact rules."""
from .optimizer import Optimizer


class SGD(Optimizer):
    """p -= lr * d, where d is the gradient (+ weight_decay * p), or a momentum buffer of it.

    As in PyTorch the first step seeds the buffer with the gradient itself (no dampening),
    and Nesterov steps along gradient + momentum * buffer."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                 maximize=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    def _validate(self, hp):
        if not hp["lr"] >= 0.0:
            raise ValueError(f"Invalid learning rate: {hp['lr']} (expected lr >= 0)")
        if not hp["momentum"] >= 0.0:
            raise ValueError(f"Invalid momentum value: {hp['momentum']} (expected momentum >= 0)")
        if not hp["weight_decay"] >= 0.0:
            raise ValueError(f"Invalid weight_decay value: {hp['weight_decay']} (expected weight_decay >= 0)")
        if hp["nesterov"] and (hp["momentum"] <= 0 or hp["dampening"] != 0):
            raise ValueError(f"Nesterov momentum requires a momentum and zero dampening, got "
                             f"momentum={hp['momentum']}, dampening={hp['dampening']}")

    def _update(self, param, grad, state, group):
        # float() so that NumPy scalars in a group cannot promote float32 arithmetic to float64
        lr, momentum, dampening = float(group["lr"]), float(group["momentum"]), float(group["dampening"])
        weight_decay = float(group["weight_decay"])
        d = -grad if group["maximize"] else grad  # new arrays only: grad is never written to
        if weight_decay != 0:
            d = d + weight_decay * param
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = d.copy()
            else:  # in place: the buffer is ours, and this saves an allocation per step
                buf *= momentum
                buf += (1 - dampening) * d
            d = d + momentum * buf if group["nesterov"] else buf
        param -= lr * d  # in place on p.data: views of the param stay valid, no reallocation
