import numpy as np
import torch
import torch.nn.functional as F

# Masks, where, clamp, masked_fill and setitem on plain tensors; gradients through the
# differentiable ones. float64 throughout, so values must agree to rounding.
rng = np.random.default_rng(1)
x = torch.tensor(rng.standard_normal((4, 5)), requires_grad=True)

leaky = torch.where(x > 0, x, 0.1 * x)
clipped = x.clamp(min=-0.5, max=0.5)
lower_only = torch.clamp(x, min=0.0)
masked = x.masked_fill(x.abs() < 0.3, 0.0)
masked_inf = x.masked_fill(torch.tril(torch.ones(4, 5)) == 0, float('-inf'))
rows = F.softmax(masked_inf, dim=-1)
scalar_where = torch.where(x < 0, torch.zeros_like(x), x)
mixed = x.where(x > -1.0, -1.0)

loss = (leaky ** 2).sum() + clipped.sum() + (lower_only * 3).sum() + (masked * x).mean() \
    + (rows * torch.arange(5, dtype=torch.float64)).sum() + scalar_where.sum() + mixed.pow(3).sum()
loss.backward()

# setitem on tensors outside the graph, as data preparation code does
t = torch.tensor(rng.standard_normal((3, 4)))
t[t < 0] = 0.0
t[:, 0] = -1.0
t[1] = torch.tensor([5.0, 6.0, 7.0, 8.0], dtype=torch.float64)
t[2, 1:3] = 9.0
counts = torch.zeros(6, dtype=torch.long)
counts[torch.tensor([1, 3, 5])] = 4
grid = torch.zeros(3, 3)
grid[torch.tensor([0, 2]), torch.tensor([1, 0])] = 1.0
flags = torch.zeros(5, dtype=torch.bool)
flags[2:] = True

RESULTS = {
    "leaky": leaky,
    "clipped": clipped,
    "lower_only": lower_only,
    "masked": masked,
    "rows": rows,
    "mixed": mixed,
    "loss": loss.item(),
    "x_grad": x.grad,
    "t": t,
    "counts": counts,
    "grid": grid,
    "flags": flags,
    "positive_count": (x > 0).sum().item(),
    "any_large": (x.abs() > 2).any().item(),
    "all_finite_rows": (rows == rows).all().item(),
}
