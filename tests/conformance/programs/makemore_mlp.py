import math

import torch
import torch.nn as nn
from torch.nn import functional as F
from torch.utils.data import Dataset, DataLoader, random_split

# A makemore-style character model: (block_size characters of context) -> next character,
# served by a Dataset subclass, split with random_split, shuffled by a seeded DataLoader.
torch.manual_seed(42)

words = """anna bella carlo dario elena fabio gianni ivana lorenzo marta nadia olga paolo rita
sergio tina ugo vera walter zoe alba bruno chiara davide emma franco giulia ilaria luca
mario nina oscar piero rosa silvia teresa umberto valeria aldo bianca cesare diana enzo
flavia gino irene lea mauro nora orsola pia remo sara tullio viola""".split()

chars = sorted(list(set(''.join(words))))
stoi = {s: i + 1 for i, s in enumerate(chars)}
stoi['.'] = 0
itos = {i: s for s, i in stoi.items()}
vocab_size = len(itos)
block_size = 3


class CharDataset(Dataset):
    def __init__(self, words, block_size):
        xs, ys = [], []
        for w in words:
            context = [0] * block_size
            for ch in w + '.':
                ix = stoi[ch]
                xs.append(context)
                ys.append(ix)
                context = context[1:] + [ix]
        self.X = torch.tensor(xs)
        self.Y = torch.tensor(ys)

    def __len__(self):
        return len(self.Y)

    def __getitem__(self, idx):
        return self.X[idx], self.Y[idx]


dataset = CharDataset(words, block_size)
n_train = int(0.8 * len(dataset))
train_set, val_set = random_split(dataset, [n_train, len(dataset) - n_train],
                                  generator=torch.Generator().manual_seed(0))

loader = DataLoader(train_set, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(1))
same_seed = DataLoader(train_set, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(1))
first_epoch_order = [y.tolist() for _, y in loader]
same_order = first_epoch_order == [y.tolist() for _, y in same_seed]

n_embd, n_hidden = 10, 64
model = nn.Sequential(
    nn.Embedding(vocab_size, n_embd),
    nn.Flatten(),
    nn.Linear(block_size * n_embd, n_hidden),
    nn.Tanh(),
    nn.Linear(n_hidden, vocab_size),
)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)


@torch.no_grad()
def split_loss(subset):
    xs = torch.stack([subset[i][0] for i in range(len(subset))])
    ys = torch.stack([subset[i][1] for i in range(len(subset))])
    return F.cross_entropy(model(xs), ys).item()


history = [split_loss(train_set)]
batch_shapes = set()
for epoch in range(6):
    for xb, yb in loader:
        batch_shapes.add((tuple(xb.shape), tuple(yb.shape)))
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    history.append(split_loss(train_set))
    print(f"epoch {epoch}: train {history[-1]:.4f}")
val_loss = split_loss(val_set)


@torch.no_grad()
def sample(top_k=None, top_p=None, max_len=12):
    out = []
    context = [0] * block_size
    while len(out) < max_len:
        logits = model(torch.tensor([context]))
        probs = F.softmax(logits, dim=-1)
        if top_k is not None:
            values, indices = torch.topk(probs, top_k, dim=-1)
            ix = indices[0, torch.multinomial(values[0], num_samples=1)].item()
        else:
            sorted_probs, sorted_indices = torch.sort(probs, dim=-1, descending=True)
            cumulative = torch.cumsum(sorted_probs, dim=-1)
            sorted_probs[cumulative - sorted_probs > top_p] = 0.0
            choice = torch.multinomial(sorted_probs, num_samples=1)
            ix = sorted_indices.gather(-1, choice).item()
        context = context[1:] + [ix]
        if ix == 0:
            break
        out.append(itos[ix])
    return ''.join(out)


samples = [sample(top_k=3) for _ in range(5)] + [sample(top_p=0.8) for _ in range(5)]
print(samples)

RESULTS = {
    "dataset_len": len(dataset),
    "split_lens": [len(train_set), len(val_set)],
    "split_is_partition": sorted(list(train_set.indices) + list(val_set.indices)) == list(range(len(dataset))),
    "item_shapes": [list(dataset[0][0].shape), list(dataset[0][1].shape)],
    "item_dtypes_long": [dataset[0][0].dtype == torch.long, dataset[0][1].dtype == torch.long],
    "batches_per_epoch": len(loader),
    "batch_shapes": sorted([list(a) + list(b) for a, b in batch_shapes]),
    "targets_per_epoch": sorted(sum(first_epoch_order, [])) == sorted(dataset.Y[train_set.indices].tolist()),
    "epoch_is_shuffled": sum(first_epoch_order, []) != dataset.Y[train_set.indices].tolist(),
    "seeded_loaders_agree": same_order,
    "starts_near_uniform": abs(history[0] - math.log(vocab_size)) < 0.3,
    "loss_fell": history[-1] < history[0] - 0.5,
    "val_loss_finite": val_loss == val_loss and val_loss < 10,
    "samples_in_vocab": all(set(s) <= set(chars) for s in samples),
    "n_samples": len(samples),
}
