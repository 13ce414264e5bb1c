import os
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

# The classic supervised loop: TensorDataset + DataLoader, an MLP classifier, Adam with a
# LambdaLR schedule, accuracy counted per epoch, evaluation under no_grad, and the model
# saved with torch.save and loaded back. Data and weights come from NumPy (same numbers in
# both runs); the loader does not shuffle.
rng = np.random.default_rng(7)
n = 120
angles = rng.uniform(0, 2 * np.pi, n)
radius = np.where(np.arange(n) % 2 == 0, 1.0, 2.0)
X = np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1) + 0.1 * rng.standard_normal((n, 2))
y = (np.arange(n) % 2).astype(np.int64)

features = torch.tensor(X, dtype=torch.float32)
labels = torch.tensor(y)
train_ds = TensorDataset(features[:96], labels[:96])
test_ds = TensorDataset(features[96:], labels[96:])
train_loader = DataLoader(train_ds, batch_size=16)
test_loader = DataLoader(test_ds, batch_size=32, shuffle=False)


class Classifier(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.fc1 = nn.Linear(2, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, 2)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.out(x)


model = Classifier()
state = model.state_dict()
fresh = {}
for key, value in state.items():
    scale = 1.0 / np.sqrt(value.shape[-1]) if value.dim() == 2 else 0.0
    fresh[key] = torch.tensor(rng.standard_normal(tuple(value.shape)) * scale, dtype=torch.float32)
model.load_state_dict(fresh)

optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-4)
scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 0.9 ** epoch)


def evaluate(loader):
    model.eval()
    correct, total, loss_sum = 0, 0, 0.0
    with torch.no_grad():
        for xb, yb in loader:
            logits = model(xb)
            loss_sum += F.cross_entropy(logits, yb, reduction='sum').item()
            pred = logits.argmax(dim=1)
            correct += (pred == yb).sum().item()
            total += yb.size(0)
    model.train()
    return loss_sum / total, correct / total


history = []
for epoch in range(8):
    running = 0.0
    for xb, yb in train_loader:
        optimizer.zero_grad()
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        loss.backward()
        optimizer.step()
        running += loss.item() * xb.size(0)
    scheduler.step()
    test_loss, test_acc = evaluate(test_loader)
    history.append([running / len(train_ds), test_loss, test_acc, scheduler.get_last_lr()[0]])
    print(f"epoch {epoch}: train loss {running / len(train_ds):.4f} test acc {test_acc:.3f}")

train_acc = (model(features[:96]).argmax(1) == labels[:96]).float().mean().item()

with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'classifier.pt')
    torch.save(model.state_dict(), path)
    restored = Classifier()
    restored.load_state_dict(torch.load(path))
    with torch.no_grad():
        same = (restored(features) == model(features)).all().item()

RESULTS = {
    "history": history,
    "train_acc": train_acc,
    "restored_matches": same,
    "num_batches": [len(train_loader), len(test_loader)],
    "state_keys": list(model.state_dict().keys()),
    "fc1_weight": model.fc1.weight,
    "out_bias": model.out.bias,
    "probs": F.softmax(model(features[:4]), dim=1).detach(),
}
