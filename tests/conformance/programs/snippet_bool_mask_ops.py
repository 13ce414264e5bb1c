import torch

# Combining boolean masks with &, | and ~, as data filtering and sampling code does.
x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0])
in_range = (x > -1) & (x < 1)
outside = ~in_range
either = (x < -1) | (x > 1)
x_clean = torch.where(outside, torch.zeros_like(x), x)

RESULTS = {
    "in_range": in_range,
    "outside": outside,
    "either": either,
    "x_clean": x_clean,
    "count": in_range.sum().item(),
}
