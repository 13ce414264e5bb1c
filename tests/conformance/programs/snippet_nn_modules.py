import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# The nn.Module surface a model file leans on: containers, named parameters and buffers,
# state_dict round trips, freezing, train/eval, apply, and the layers' forward values and
# gradients (weights loaded from NumPy, float64).
rng = np.random.default_rng(12)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 6)
        self.norm = nn.LayerNorm(6)
        self.body = nn.Sequential(nn.Linear(6, 12), nn.GELU(), nn.Linear(12, 6), nn.GELU(approximate='tanh'))
        self.heads = nn.ModuleList([nn.Linear(6, 4, bias=False) for _ in range(2)])
        self.extra = nn.ModuleDict({'act': nn.SiLU(), 'gate': nn.Sigmoid()})
        self.drop = nn.Dropout(0.5)
        self.scale = nn.Parameter(torch.ones(1))
        self.register_buffer('offset', torch.arange(4).float())
        self.register_buffer('scratch', torch.zeros(2), persistent=False)

    def forward(self, idx):
        x = self.norm(self.embed(idx))
        x = self.drop(self.body(x))
        x = self.extra['act'](x) * self.extra['gate'](x)
        out = sum(head(x) for head in self.heads) * self.scale
        return out + self.offset


net = Net().double()
state = net.state_dict()
net.load_state_dict({k: torch.tensor(rng.standard_normal(tuple(v.shape))) for k, v in state.items()})
net.eval()

idx = torch.tensor([[1, 2, 3], [9, 0, 4]])
out = net(idx)
loss = F.softmax(out, dim=-1)[..., 0].sum() + out.pow(2).mean()
loss.backward()
grads = {n: p.grad.clone() for n, p in net.named_parameters()}

inits = []
net.apply(lambda m: inits.append(type(m).__name__))

net.train()
train_flags = [m.training for m in net.modules()]
net.heads.requires_grad_(False)
trainable = [n for n, p in net.named_parameters() if p.requires_grad]
net.zero_grad()

RESULTS = {
    "out": out,
    "loss": loss.item(),
    "grads": grads,
    "param_names": [n for n, _ in net.named_parameters()],
    "param_shapes": [list(p.shape) for p in net.parameters()],
    "buffer_names": [n for n, _ in net.named_buffers()],
    "state_keys": list(state.keys()),
    "child_names": [n for n, _ in net.named_children()],
    "module_names": [n for n, _ in net.named_modules()],
    "apply_order": inits,
    "train_flags": train_flags,
    "trainable": trainable,
    "grads_cleared": all(p.grad is None for p in net.parameters()),
    "num_params": sum(p.numel() for p in net.parameters()),
    "len_body": len(net.body),
    "body_slice": [type(m).__name__ for m in net.body[1:3]],
    "repr_first_line": repr(net).splitlines()[0],
    "linear_repr": repr(net.body[0]),
    "dict_keys": list(net.extra.keys()),
}
