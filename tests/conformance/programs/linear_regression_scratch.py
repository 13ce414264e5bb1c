import numpy as np
import torch

# Linear regression with tensors and autograd only, as the first tutorials teach it: the
# update written in place under no_grad, then the gradients zeroed in place.
rng = np.random.default_rng(10)
x = torch.tensor(rng.standard_normal((50, 2)))
y = x @ torch.tensor([[2.0], [-3.0]], dtype=torch.float64) + 0.5

w = torch.zeros((2, 1), dtype=torch.float64, requires_grad=True)
b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
learning_rate = 0.1
losses = []
for t in range(30):
    y_pred = x @ w + b
    loss = (y_pred - y).pow(2).mean()
    losses.append(loss.item())
    loss.backward()
    with torch.no_grad():
        w -= learning_rate * w.grad
        b -= learning_rate * b.grad
        w.grad.zero_()
        b.grad.zero_()

RESULTS = {
    "losses": losses,
    "w": w,
    "b": b,
    "still_leaves": [w.is_leaf, b.is_leaf, w.requires_grad],
}
