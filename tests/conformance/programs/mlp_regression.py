import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# Deterministic regression: data and initial weights come from NumPy, everything in float64,
# full-batch and mini-batch SGD with momentum and weight decay on an MSE loss.
rng = np.random.default_rng(0)
X = rng.standard_normal((64, 3))
w_true = np.array([1.0, -2.0, 0.5])
y = np.sin(X @ w_true)[:, None] + 0.1 * rng.standard_normal((64, 1))

inputs = torch.tensor(X)
targets = torch.tensor(y)

model = nn.Sequential(
    nn.Linear(3, 16),
    nn.Tanh(),
    nn.Linear(16, 16),
    nn.Tanh(),
    nn.Linear(16, 1),
).double()

with torch.no_grad():
    for layer in model:
        if isinstance(layer, nn.Linear):
            layer.weight.copy_(torch.tensor(rng.standard_normal(layer.weight.shape) / np.sqrt(layer.in_features)))
            layer.bias.fill_(0.01)

optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)

losses = []
for epoch in range(40):
    optimizer.zero_grad()
    prediction = model(inputs)
    loss = F.mse_loss(prediction, targets)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())

# a few epochs of mini-batches, then Nesterov momentum on a fresh optimizer
batch_size = 16
for epoch in range(3):
    for start in range(0, len(inputs), batch_size):
        xb = inputs[start:start + batch_size]
        yb = targets[start:start + batch_size]
        loss = ((model(xb) - yb) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

optimizer = torch.optim.SGD(model.parameters(), lr=0.0005, momentum=0.5, nesterov=True)
for step in range(5):
    optimizer.zero_grad()
    loss = F.mse_loss(model(inputs), targets, reduction='sum')
    loss.backward()
    optimizer.step()
    losses.append(loss.item())

first_layer_grad = model[0].weight.grad.clone()

model.eval()
with torch.no_grad():
    test_x = torch.linspace(-1, 1, 5, dtype=torch.float64).unsqueeze(1).repeat(1, 3)
    test_prediction = model(test_x).squeeze(1)

RESULTS = {
    "losses": losses,
    "state_dict": {name: value for name, value in model.state_dict().items()},
    "first_layer_grad": first_layer_grad,
    "test_prediction": test_prediction,
    "dtype_is_float64": model[0].weight.dtype == torch.float64,
    "momentum_buffers": len(optimizer.state),
}
