import torch

# Writing into a tensor that is part of the graph, then backpropagating through it.
x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
h = x * 2
h[:, 0] = 0.0
h[1, 2] = h[1, 2] * 10
loss = (h ** 2).sum()
loss.backward()

RESULTS = {
    "h": h.detach(),
    "grad": x.grad,
}
