import numpy as np
import torch
import torch.nn.functional as F

# The loss functions of small scripts, with their options, in float64, and their gradients.
rng = np.random.default_rng(6)
logits = torch.tensor(rng.standard_normal((6, 5)), requires_grad=True)
targets = torch.tensor([0, 4, 2, 2, -1, 1])
seq_logits = torch.tensor(rng.standard_normal((2, 5, 3)), requires_grad=True)
seq_targets = torch.tensor([[0, 1, 4], [3, 3, 2]])
pred = torch.tensor(rng.standard_normal((4, 2)), requires_grad=True)
target = torch.tensor(rng.standard_normal((4, 2)))

ce = F.cross_entropy(logits, targets, ignore_index=-1)
ce_sum = F.cross_entropy(logits[:4], targets[:4], reduction='sum')
ce_none = F.cross_entropy(logits[:4], targets[:4], reduction='none')
ce_smooth = F.cross_entropy(logits[:4], targets[:4], label_smoothing=0.1)
ce_seq = F.cross_entropy(seq_logits, seq_targets)
nll = F.nll_loss(F.log_softmax(logits[:4], dim=-1), targets[:4])
mse = F.mse_loss(pred, target)
mse_sum = F.mse_loss(pred, target, reduction='sum')
l1 = F.l1_loss(pred, target)
labels = (target > 0).double()
p = pred.sigmoid()
manual_bce = -(labels * p.log() + (1 - labels) * (1 - p).log()).mean()

total = ce + ce_sum + (ce_none * torch.arange(4)).sum() + ce_smooth + ce_seq + nll + mse + mse_sum + l1 + manual_bce
total.backward()

RESULTS = {
    "ce": ce.item(),
    "ce_sum": ce_sum.item(),
    "ce_none": ce_none,
    "ce_smooth": ce_smooth.item(),
    "ce_seq": ce_seq.item(),
    "nll_equals_ce": abs(nll.item() - F.cross_entropy(logits[:4], targets[:4]).item()) < 1e-12,
    "mse": mse.item(),
    "mse_sum": mse_sum.item(),
    "l1": l1.item(),
    "bce": manual_bce.item(),
    "logits_grad": logits.grad,
    "seq_logits_grad": seq_logits.grad,
    "pred_grad": pred.grad,
    "loss_is_0d": [ce.dim(), list(ce.shape)],
}
