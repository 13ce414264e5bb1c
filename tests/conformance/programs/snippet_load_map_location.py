import os
import tempfile

import torch
import torch.nn as nn

# Loading a checkpoint onto a chosen device, as nanoGPT resumes: torch.load(..., map_location=device).
device = 'cpu'
model = nn.Linear(3, 2)
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'ckpt.pt')
    torch.save({'model': model.state_dict(), 'iter_num': 7}, path)
    checkpoint = torch.load(path, map_location=device)
    weights_only = torch.load(path, map_location=device, weights_only=True)

restored = nn.Linear(3, 2)
restored.load_state_dict(checkpoint['model'])

RESULTS = {
    "iter_num": checkpoint['iter_num'],
    "keys": sorted(weights_only['model'].keys()),
    "same": (restored.weight == model.weight).all().item(),
}
