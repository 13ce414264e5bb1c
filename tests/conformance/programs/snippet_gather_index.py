import numpy as np
import torch
import torch.nn.functional as F

# Lookups: fancy indexing as in makemore (C[X], probs[range, targets]), gather,
# index_select, repeated indices (their gradients add up), one_hot. float64 with gradients.
rng = np.random.default_rng(2)
C = torch.tensor(rng.standard_normal((7, 3)), requires_grad=True)
X = torch.tensor([[0, 0, 3], [0, 3, 5], [3, 5, 5], [5, 5, 1]])
emb = C[X]
h = emb.view(emb.shape[0], -1)

logits = torch.tensor(rng.standard_normal((4, 7)), requires_grad=True)
ys = torch.tensor([3, 5, 1, 0])
probs = logits.softmax(dim=1)
nll = -probs[torch.arange(4), ys].log().mean()
picked = logits.gather(1, ys.unsqueeze(1)).squeeze(1)
cols = logits.index_select(1, torch.tensor([6, 0, 6]))
rows = torch.index_select(logits, 0, torch.tensor([2, 2]))
last = logits[:, -1]
every_other = logits[::2, 1::3]
with_none = logits[None, 1, :, None]
ell = logits[..., [0, 2]]

xenc = F.one_hot(ys, num_classes=7).double()
W = torch.tensor(rng.standard_normal((7, 7)), requires_grad=True)
bigram = (xenc @ W).exp()
bigram_probs = bigram / bigram.sum(1, keepdim=True)

loss = (h ** 2).sum() + nll + picked.sum() + cols.pow(2).sum() + rows.mean() + last.sum() \
    + every_other.sum() + with_none.sum() + ell.sum() + bigram_probs[torch.arange(4), ys].sum()
loss.backward()

RESULTS = {
    "h": h,
    "nll": nll.item(),
    "picked": picked,
    "cols": cols,
    "rows": rows,
    "every_other": every_other,
    "with_none_shape": list(with_none.shape),
    "ell": ell,
    "xenc_dtype_float64": xenc.dtype == torch.float64,
    "one_hot_default_long": F.one_hot(ys).dtype == torch.long,
    "one_hot_default_width": F.one_hot(ys).shape[1],
    "bigram_probs": bigram_probs,
    "C_grad": C.grad,
    "logits_grad": logits.grad,
    "W_grad": W.grad,
}
