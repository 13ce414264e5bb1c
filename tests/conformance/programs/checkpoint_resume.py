import os
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# Save a checkpoint mid-training (model, optimizer, step, config), load it into fresh
# objects and continue: the resumed run must end where the uninterrupted one does.
rng = np.random.default_rng(8)
X = torch.tensor(rng.standard_normal((32, 4)), dtype=torch.float32)
Y = torch.tensor(rng.integers(0, 3, size=32))
init = {name: rng.standard_normal(shape) * 0.3 for name, shape in
        [("0.weight", (8, 4)), ("0.bias", (8,)), ("2.weight", (3, 8)), ("2.bias", (3,))]}


def make_model():
    model = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 3))
    model.load_state_dict({k: torch.tensor(v, dtype=torch.float32) for k, v in init.items()})
    return model


def train(model, optimizer, steps):
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(X), Y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


model = make_model()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)
straight = train(model, optimizer, 10)

model = make_model()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)
first_half = train(model, optimizer, 5)
with tempfile.TemporaryDirectory() as tmp:
    ckpt_path = os.path.join(tmp, 'ckpt.pt')
    checkpoint = {
        'model': model.state_dict(),
        'optimizer': optimizer.state_dict(),
        'model_args': dict(n_in=4, n_hidden=8, n_out=3),
        'iter_num': 5,
        'best_val_loss': first_half[-1],
    }
    torch.save(checkpoint, ckpt_path)
    del model, optimizer
    checkpoint = torch.load(ckpt_path)

model = make_model()
with torch.no_grad():
    for p in model.parameters():
        p.zero_()
model.load_state_dict(checkpoint['model'])
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
optimizer.load_state_dict(checkpoint['optimizer'])
second_half = train(model, optimizer, 5)

opt_state = optimizer.state_dict()
RESULTS = {
    "straight": straight,
    "resumed": first_half + second_half,
    "resume_is_exact": straight == first_half + second_half,
    "iter_num": checkpoint['iter_num'],
    "model_args": checkpoint['model_args'],
    "best_val_loss_is_float": isinstance(checkpoint['best_val_loss'], float),
    "restored_lr": optimizer.param_groups[0]['lr'],
    "restored_betas": list(optimizer.param_groups[0]['betas']),
    "state_keys": sorted(opt_state['state'][0].keys()),
    "group_params": opt_state['param_groups'][0]['params'],
    "final_weight": model[2].weight,
}
