import torch

# The counting bigram model of makemore: a count matrix filled with N[ix1, ix2] += 1,
# smoothed and normalised with sum(1, keepdims=True), the data's negative log likelihood,
# and names sampled with torch.multinomial from a seeded generator.
words = """emma olivia ava isabella sophia mia amelia harper evelyn abigail emily elizabeth
sofia ella avery scarlett grace chloe victoria riley aria lily aubrey zoey penelope""".split()
chars = sorted(list(set(''.join(words))))
stoi = {s: i + 1 for i, s in enumerate(chars)}
stoi['.'] = 0
itos = {i: s for s, i in stoi.items()}
V = len(stoi)

N = torch.zeros((V, V), dtype=torch.int32)
for w in words:
    chs = ['.'] + list(w) + ['.']
    for ch1, ch2 in zip(chs, chs[1:]):
        ix1 = stoi[ch1]
        ix2 = stoi[ch2]
        N[ix1, ix2] += 1

P = (N + 1).float()
P /= P.sum(1, keepdims=True)

log_likelihood = 0.0
n = 0
for w in words:
    chs = ['.'] + list(w) + ['.']
    for ch1, ch2 in zip(chs, chs[1:]):
        prob = P[stoi[ch1], stoi[ch2]]
        log_likelihood += torch.log(prob)
        n += 1
nll = -log_likelihood / n
print(f'{nll=}')

g = torch.Generator().manual_seed(2147483647)
names = []
for i in range(5):
    out = []
    ix = 0
    while True:
        p = P[ix]
        ix = torch.multinomial(p, num_samples=1, replacement=True, generator=g).item()
        out.append(itos[ix])
        if ix == 0:
            break
    names.append(''.join(out))

RESULTS = {
    "N": N,
    "N_dtype_int32": N.dtype == torch.int32,
    "total_bigrams": N.sum().item(),
    "rows_sum_to_one": (P.sum(1) - 1).abs().max().item() < 1e-6,
    "P_first_row": P[0],
    "nll": nll.item(),
    "names_end_with_dot": all(name.endswith('.') for name in names),
    "n_names": len(names),
}
