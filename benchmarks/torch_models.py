"""The PyTorch reference models of bench_train.py, and our GPT's weights renamed for them.

LectureGPT is the lecture's model, one module per head (Head, MultiHeadAttention, FeedForward,
LectureBlock); SdpaGPT is ours in torch, batched heads and F.scaled_dot_product_attention
(CausalSelfAttention, MLP, Block), with our GPT's parameter names, so it loads our state dict
as it is. Both take the benchmark's config dict and the vocabulary size; lecture_state renames
our GPT's state dict for LectureGPT.
"""
import torch
from torch import nn
from torch.nn import functional as F


class Head(nn.Module):  # the lecture's: one module per head, a tril buffer as the mask
    def __init__(self, n_embd, head_size, block_size, dropout):
        super().__init__()
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)
        self.register_buffer("tril", torch.tril(torch.ones(block_size, block_size)))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        B, T, C = x.shape
        k, q = self.key(x), self.query(x)
        wei = q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5
        wei = wei.masked_fill(self.tril[:T, :T] == 0, float("-inf"))
        wei = self.dropout(F.softmax(wei, dim=-1))
        return wei @ self.value(x)


class MultiHeadAttention(nn.Module):
    def __init__(self, n_head, n_embd, block_size, dropout):
        super().__init__()
        hs = n_embd // n_head
        self.heads = nn.ModuleList([Head(n_embd, hs, block_size, dropout) for _ in range(n_head)])
        self.proj = nn.Linear(n_embd, n_embd)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.proj(torch.cat([h(x) for h in self.heads], dim=-1)))


class FeedForward(nn.Module):
    def __init__(self, n_embd, dropout):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.ReLU(),
                                 nn.Linear(4 * n_embd, n_embd), nn.Dropout(dropout))

    def forward(self, x):
        return self.net(x)


class LectureBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.sa = MultiHeadAttention(cfg["n_head"], cfg["n_embd"], cfg["block_size"], cfg["dropout"])
        self.ffwd = FeedForward(cfg["n_embd"], cfg["dropout"])
        self.ln1, self.ln2 = nn.LayerNorm(cfg["n_embd"]), nn.LayerNorm(cfg["n_embd"])

    def forward(self, x):
        x = x + self.sa(self.ln1(x))
        return x + self.ffwd(self.ln2(x))


class LectureGPT(nn.Module):
    def __init__(self, cfg, vocab):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab, cfg["n_embd"])
        self.position_embedding_table = nn.Embedding(cfg["block_size"], cfg["n_embd"])
        self.blocks = nn.Sequential(*[LectureBlock(cfg) for _ in range(cfg["n_layer"])])
        self.ln_f = nn.LayerNorm(cfg["n_embd"])
        self.lm_head = nn.Linear(cfg["n_embd"], vocab)

    def forward(self, idx, targets):
        B, T = idx.shape
        x = self.token_embedding_table(idx) + self.position_embedding_table(torch.arange(T, device=idx.device))
        logits = self.lm_head(self.ln_f(self.blocks(x)))
        return logits, F.cross_entropy(logits.view(B * T, -1), targets.view(B * T))


class CausalSelfAttention(nn.Module):  # ours, in torch: batched heads and SDPA
    def __init__(self, cfg):
        super().__init__()
        self.n_head, self.dropout = cfg["n_head"], cfg["dropout"]
        self.query, self.key, self.value = (nn.Linear(cfg["n_embd"], cfg["n_embd"], bias=False)
                                            for _ in range(3))
        self.c_proj = nn.Linear(cfg["n_embd"], cfg["n_embd"])
        self.resid_dropout = nn.Dropout(cfg["dropout"])

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (p(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for p in (self.query, self.key, self.value))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(B, T, C)))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_fc = nn.Linear(cfg["n_embd"], 4 * cfg["n_embd"])
        self.relu = nn.ReLU()
        self.c_proj = nn.Linear(4 * cfg["n_embd"], cfg["n_embd"])
        self.dropout = nn.Dropout(cfg["dropout"])

    def forward(self, x):
        return self.dropout(self.c_proj(self.relu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(cfg["n_embd"]), CausalSelfAttention(cfg)
        self.ln_2, self.mlp = nn.LayerNorm(cfg["n_embd"]), MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class SdpaGPT(nn.Module):
    def __init__(self, cfg, vocab):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, cfg["n_embd"])
        self.position_embedding = nn.Embedding(cfg["block_size"], cfg["n_embd"])
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg["n_layer"])])
        self.ln_f = nn.LayerNorm(cfg["n_embd"])
        self.lm_head = nn.Linear(cfg["n_embd"], vocab)

    def forward(self, idx, targets):
        B, T = idx.shape
        x = self.token_embedding(idx) + self.position_embedding(torch.arange(T, device=idx.device))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return logits, F.cross_entropy(logits.view(B * T, -1), targets.view(B * T))


def lecture_state(weights, cfg):
    """Our GPT's state dict renamed for LectureGPT (query/key/value split per head)."""
    C, H = cfg["n_embd"], cfg["n_head"]
    hs = C // H
    out = {"token_embedding_table.weight": weights["token_embedding.weight"],
           "position_embedding_table.weight": weights["position_embedding.weight"],
           "ln_f.weight": weights["ln_f.weight"], "ln_f.bias": weights["ln_f.bias"],
           "lm_head.weight": weights["lm_head.weight"], "lm_head.bias": weights["lm_head.bias"]}
    for i in range(cfg["n_layer"]):
        p = f"blocks.{i}."
        for name in ("query", "key", "value"):
            w = weights[f"{p}attn.{name}.weight"]
            for h in range(H):
                out[f"{p}sa.heads.{h}.{name}.weight"] = w[h * hs:(h + 1) * hs]
        pairs = {"sa.proj": "attn.c_proj", "ffwd.net.0": "mlp.c_fc", "ffwd.net.2": "mlp.c_proj",
                 "ln1": "ln_1", "ln2": "ln_2"}
        for theirs, ours in pairs.items():
            out[f"{p}{theirs}.weight"] = weights[f"{p}{ours}.weight"]
            out[f"{p}{theirs}.bias"] = weights[f"{p}{ours}.bias"]
    return out
