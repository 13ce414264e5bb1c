import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# Random numbers as scripts use them, compared on their laws rather than their values:
# seeding, generators, randn/rand/randint/randperm/multinomial, dropout, default inits.
torch.manual_seed(0)
a = torch.randn(5)
torch.manual_seed(0)
b = torch.randn(5)
g1 = torch.Generator().manual_seed(3)
g2 = torch.Generator().manual_seed(3)

normal = torch.randn(20000)
uniform = torch.rand(20000)
ints = torch.randint(3, 9, (20000,))
perm = torch.randperm(50)
probs = torch.tensor([0.1, 0.2, 0.7])
draws = torch.multinomial(probs, num_samples=20000, replacement=True)
without = torch.multinomial(torch.ones(10), num_samples=10)

x = torch.ones(20000)
dropped = F.dropout(x, p=0.25, training=True)
layer = nn.Dropout(0.25)
layer.eval()
kept = layer(x)

linear = nn.Linear(400, 300)
bound = 1 / math.sqrt(400)
emb = nn.Embedding(1000, 20)
w = torch.empty(200, 300)
nn.init.xavier_uniform_(w)
xavier_bound = math.sqrt(6 / (200 + 300))

RESULTS = {
    "reseeding_repeats": (a == b).all().item(),
    "generators_repeat": torch.randn(4, generator=g1).tolist() == torch.randn(4, generator=g2).tolist(),
    "randn_shape_dtype": [list(normal.shape), normal.dtype == torch.float32],
    "randn_mean_near_0": abs(normal.mean().item()) < 0.05,
    "randn_std_near_1": abs(normal.std().item() - 1) < 0.05,
    "rand_in_unit_interval": (uniform.min().item() >= 0.0, uniform.max().item() < 1.0),
    "rand_mean_near_half": abs(uniform.mean().item() - 0.5) < 0.02,
    "randint_range": [ints.min().item(), ints.max().item()],
    "randint_long": ints.dtype == torch.long,
    "randperm_is_permutation": sorted(perm.tolist()) == list(range(50)),
    "multinomial_frequencies": [abs((draws == i).float().mean().item() - p) < 0.02
                                for i, p in enumerate([0.1, 0.2, 0.7])],
    "multinomial_without_replacement": sorted(without.tolist()) == list(range(10)),
    "dropout_values": sorted(set(dropped.tolist())),
    "dropout_rate": abs((dropped == 0).float().mean().item() - 0.25) < 0.02,
    "dropout_eval_identity": (kept == x).all().item(),
    "linear_init_bounds": [linear.weight.abs().max().item() <= bound, linear.bias.abs().max().item() <= bound],
    "linear_init_spread": abs(linear.weight.std().item() - bound / math.sqrt(3)) < 0.002,
    "embedding_init_std": abs(emb.weight.std().item() - 1) < 0.05,
    "xavier_bounds": w.abs().max().item() <= xavier_bound,
    "requires_grad": [linear.weight.requires_grad, w.requires_grad],
}
