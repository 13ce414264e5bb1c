import numpy as np
import torch

# Shape plumbing: view/reshape/permute/transpose/contiguous, split into q, k, v, chunk,
# cat, stack, squeeze/unsqueeze, expand, repeat, flatten, flip, roll; gradients through all.
rng = np.random.default_rng(4)
B, T, C, nh = 2, 3, 8, 2
x = torch.tensor(rng.standard_normal((B, T, 3 * C)), requires_grad=True)

q, k, v = x.split(C, dim=2)
q = q.view(B, T, nh, C // nh).transpose(1, 2)
k = k.view(B, T, nh, C // nh).permute(0, 2, 1, 3)
v = v.reshape(B, T, nh, -1).transpose(1, 2).contiguous()
merged = (q + k * v).transpose(1, 2).contiguous().view(B, T, C)

a, b2, c = x.chunk(3, dim=-1)
parts = torch.split(x, [5, 11, 8], dim=2)
joined = torch.cat([c, a], dim=1)
stacked = torch.stack([a, b2], dim=0)
stacked_last = torch.stack((a.sum(-1), c.sum(-1)), dim=-1)
col = x[:, :, 0].unsqueeze(-1)
expanded = col.expand(-1, -1, 4)
repeated = col.repeat(1, 2, 3)
squeezed = col.squeeze(-1)
flat = x.flatten(1)
flat_all = torch.flatten(x)
flipped = x.flip(1)
rolled = x.roll(1, dims=2)
tee = x[0].T

loss = (merged ** 2).sum() + joined.sum() + (stacked * 2).sum() + stacked_last.pow(2).sum() + expanded.sum() \
    + repeated.pow(2).sum() + squeezed.sum() + flat[:, :5].sum() + flat_all[-3:].sum() \
    + (flipped * x).sum() + (rolled * x).sum() + tee.sum() + parts[1].pow(3).sum()
loss.backward()

RESULTS = {
    "q_shape": list(q.shape),
    "merged": merged,
    "chunk_shapes": [list(t.shape) for t in (a, b2, c)],
    "split_shapes": [list(t.shape) for t in parts],
    "joined_shape": list(joined.shape),
    "stacked_shape": list(stacked.shape),
    "stacked_last": stacked_last,
    "repeated_shape": list(repeated.shape),
    "squeezed_shape": list(squeezed.shape),
    "flat_shape": list(flat.shape),
    "rolled": rolled[0, 0],
    "tee_shape": list(tee.shape),
    "numel": x.numel(),
    "size": [x.size(), x.size(1), x.size(-1)],
    "dim": x.dim(),
    "loss": loss.item(),
    "grad": x.grad,
}
