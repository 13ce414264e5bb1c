import numpy as np
import torch
import torch.nn.functional as F

# makemore's MLP written from scratch: an embedding table indexed as C[X], a hidden layer
# with a hand-written batch norm and running statistics, F.cross_entropy, and the manual
# update `p.data += -lr * p.grad`. Weights come from NumPy, full batch: deterministic.
words = """emma olivia ava isabella sophia mia amelia harper evelyn abigail emily elizabeth
sofia ella avery scarlett grace chloe victoria riley aria lily aubrey zoey penelope""".split()
chars = sorted(list(set(''.join(words))))
stoi = {s: i + 1 for i, s in enumerate(chars)}
stoi['.'] = 0
vocab_size = len(stoi)
block_size = 3

X, Y = [], []
for w in words:
    context = [0] * block_size
    for ch in w + '.':
        ix = stoi[ch]
        X.append(context)
        Y.append(ix)
        context = context[1:] + [ix]
X = torch.tensor(X)
Y = torch.tensor(Y)

n_embd, n_hidden = 5, 32
rng = np.random.default_rng(9)
C = torch.tensor(rng.standard_normal((vocab_size, n_embd)))
W1 = torch.tensor(rng.standard_normal((n_embd * block_size, n_hidden))) * (5 / 3) / (n_embd * block_size) ** 0.5
b1 = torch.tensor(rng.standard_normal(n_hidden)) * 0.01
W2 = torch.tensor(rng.standard_normal((n_hidden, vocab_size))) * 0.01
b2 = torch.zeros(vocab_size, dtype=torch.float64)
bngain = torch.ones((1, n_hidden), dtype=torch.float64)
bnbias = torch.zeros((1, n_hidden), dtype=torch.float64)
bnmean_running = torch.zeros((1, n_hidden), dtype=torch.float64)
bnstd_running = torch.ones((1, n_hidden), dtype=torch.float64)

parameters = [C, W1, b1, W2, b2, bngain, bnbias]
print(sum(p.nelement() for p in parameters))
for p in parameters:
    p.requires_grad = True

lossi = []
for i in range(20):
    emb = C[X]
    embcat = emb.view(emb.shape[0], -1)
    hpreact = embcat @ W1 + b1
    bnmeani = hpreact.mean(0, keepdim=True)
    bnstdi = hpreact.std(0, keepdim=True)
    hpreact = bngain * (hpreact - bnmeani) / bnstdi + bnbias
    with torch.no_grad():
        bnmean_running = 0.9 * bnmean_running + 0.1 * bnmeani
        bnstd_running = 0.9 * bnstd_running + 0.1 * bnstdi
    h = torch.tanh(hpreact)
    logits = h @ W2 + b2
    loss = F.cross_entropy(logits, Y)

    for p in parameters:
        p.grad = None
    loss.backward()

    lr = 0.5 if i < 10 else 0.05
    for p in parameters:
        p.data += -lr * p.grad
    lossi.append(loss.log10().item())

RESULTS = {
    "log10_losses": lossi,
    "C": C,
    "W2_grad": W2.grad,
    "bnmean_running": bnmean_running,
    "bnstd_running": bnstd_running,
}
