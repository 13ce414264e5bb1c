import torch
import torch.nn as nn
from torch.optim.lr_scheduler import CosineAnnealingLR, StepLR

# The built-in schedules of small scripts: StepLR and CosineAnnealingLR.
model = nn.Linear(2, 1)
opt_a = torch.optim.SGD(model.parameters(), lr=0.1)
opt_b = torch.optim.Adam(model.parameters(), lr=1e-3)
step = StepLR(opt_a, step_size=3, gamma=0.5)
cosine = CosineAnnealingLR(opt_b, T_max=10, eta_min=1e-5)
lrs = []
for epoch in range(12):
    opt_a.step()
    opt_b.step()
    step.step()
    cosine.step()
    lrs.append([step.get_last_lr()[0], cosine.get_last_lr()[0]])

RESULTS = {"lrs": lrs}
