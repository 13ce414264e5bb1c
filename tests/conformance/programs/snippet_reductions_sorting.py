import numpy as np
import torch

# Reductions and orderings a training script reaches for: sum/mean/var/std over dims,
# max/min with indices (named tuples), argmax, cumsum, sort, topk, argsort; gradients.
rng = np.random.default_rng(3)
x = torch.tensor(rng.standard_normal((3, 5)), requires_grad=True)

row_max = x.max(dim=1)
values, indices = torch.max(x, 0)
col_min = x.min(dim=0, keepdim=True)
srt = torch.sort(x, dim=1, descending=True)
top = x.topk(2, dim=1)
top_small = torch.topk(x, 2, dim=0, largest=False)
cums = torch.cumsum(x, dim=1)
order = x.argsort(dim=1)

loss = row_max.values.sum() + values.pow(2).sum() + col_min.values.sum() + (srt.values[:, 0] * 2).sum() \
    + top.values.sum() + top_small.values.mean() + cums.pow(2).sum() + x.mean(dim=0).sum() \
    + x.var(dim=1).sum() + x.std() + x.sum(dim=(0, 1)) + x.amax(dim=1).sum() + x.max()
loss.backward()

RESULTS = {
    "row_max_values": row_max.values,
    "row_max_indices": row_max.indices,
    "max0_values": values,
    "max0_indices": indices,
    "col_min": [col_min[0], col_min[1]],
    "sort_values": srt.values,
    "sort_indices": srt.indices,
    "topk": [top.values, top.indices],
    "topk_smallest": [top_small[0], top_small[1]],
    "cumsum": cums,
    "argsort": order,
    "argmax_all": x.argmax().item(),
    "argmax_dim1": x.argmax(dim=1),
    "argmax_keepdim_shape": list(x.argmax(dim=0, keepdim=True).shape),
    "argmin_dim0": torch.argmin(x, dim=0),
    "mean_keepdim": x.mean(dim=1, keepdim=True),
    "var_unbiased": x.var(),
    "var_biased": x.var(unbiased=False),
    "std_dim": x.std(dim=0),
    "int_cumsum": torch.cumsum(torch.tensor([1, 2, 3]), dim=0),
    "int_sum_is_long": torch.tensor([1, 2, 3], dtype=torch.int32).sum().dtype == torch.long,
    "bool_sum": (x > 0).sum(dim=1),
    "loss": loss.item(),
    "grad": x.grad,
}
