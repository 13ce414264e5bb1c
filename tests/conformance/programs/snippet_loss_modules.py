import torch
import torch.nn as nn

# Loss functions as modules, the way most tutorials write a training loop.
criterion = nn.CrossEntropyLoss()
regression = nn.MSELoss()
logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], requires_grad=True)
labels = torch.tensor([0, 2])
loss = criterion(logits, labels) + regression(logits, torch.zeros(2, 3))
loss.backward()

RESULTS = {
    "loss": loss.item(),
    "grad": logits.grad,
    "ignore": nn.CrossEntropyLoss(ignore_index=-1, reduction='sum')(logits, torch.tensor([-1, 2])).item(),
}
