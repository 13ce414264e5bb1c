import numpy as np
import torch

# Autograd as scripts use it: leaves and non-leaves, retain_grad, gradient accumulation over
# two backward calls, retain_graph, backward(gradient=...), detach, no_grad and
# set_grad_enabled, requires_grad_, hooks. float64 values and gradients.
rng = np.random.default_rng(11)
a = torch.tensor(rng.standard_normal(4), requires_grad=True)
b = torch.tensor(rng.standard_normal(4), requires_grad=True)

c = a * b + a.exp()
c.retain_grad()
d = (c ** 2).sum()
d.backward(retain_graph=True)
first_a_grad = a.grad.clone()
d.backward()
accumulated = a.grad.clone()

a.grad = None
b.grad.zero_()
e = torch.tanh(a) * b.detach()
e.backward(gradient=torch.ones_like(e) * 0.5)

with torch.no_grad():
    f = a * 2
torch.set_grad_enabled(False)
g = a * 3
torch.set_grad_enabled(True)

h = torch.tensor(rng.standard_normal(3))
h.requires_grad_()
seen = []
handle = h.register_hook(lambda grad: seen.append(grad.clone()))
(h.sigmoid() * torch.arange(3)).sum().backward()
handle.remove()

RESULTS = {
    "c_grad": c.grad,
    "first_a_grad": first_a_grad,
    "accumulated_is_double": torch.abs(accumulated - 2 * first_a_grad).max().item() < 1e-12,
    "a_grad_after_gradient_arg": a.grad,
    "b_grad_zeroed": b.grad,
    "flags": {
        "a_leaf": a.is_leaf, "c_leaf": c.is_leaf, "c_requires": c.requires_grad,
        "f_requires": f.requires_grad, "g_requires": g.requires_grad,
        "detached_requires": a.detach().requires_grad, "grad_fn_none_on_leaf": a.grad_fn is None,
        "grad_fn_on_result": c.grad_fn is not None, "enabled": torch.is_grad_enabled(),
    },
    "hook_grad": seen[0],
    "h_grad": h.grad,
}
