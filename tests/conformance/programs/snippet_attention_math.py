import math
import numpy as np
import torch
import torch.nn.functional as F

# Causal self-attention written out (scores, mask, softmax, weighted sum), next to
# F.scaled_dot_product_attention; float64 values and gradients of q, k and v.
rng = np.random.default_rng(5)
B, nh, T, hs = 2, 2, 5, 4
q = torch.tensor(rng.standard_normal((B, nh, T, hs)), requires_grad=True)
k = torch.tensor(rng.standard_normal((B, nh, T, hs)), requires_grad=True)
v = torch.tensor(rng.standard_normal((B, nh, T, hs)), requires_grad=True)
bias = torch.tril(torch.ones(T, T)).view(1, 1, T, T)

att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
att = att.masked_fill(bias[:, :, :T, :T] == 0, float('-inf'))
att = F.softmax(att, dim=-1)
y = att @ v
y_merged = y.transpose(1, 2).reshape(B, T, nh * hs)

y_sdpa = F.scaled_dot_product_attention(q, k, v, is_causal=True)
mask = torch.ones(T, T, dtype=torch.bool).tril(diagonal=0)
y_masked = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

weights = torch.tensor(rng.standard_normal((B, T, nh * hs)))
loss = (y_merged * weights).sum() + (y_sdpa ** 2).sum() + y_masked.mean()
loss.backward()

RESULTS = {
    "att_row_sums": att.sum(-1),
    "att_upper_is_zero": (att.triu(diagonal=1) == 0).all().item(),
    "y": y_merged,
    "sdpa_matches_manual": (y_sdpa - y).abs().max().item() < 1e-12,
    "y_sdpa": y_sdpa,
    "y_masked": y_masked,
    "loss": loss.item(),
    "q_grad": q.grad,
    "k_grad": k.grad,
    "v_grad": v.grad,
}
