"""The seed's character-level GPT (the lecture's model), with the heads batched.

Same parameters as the lecture's per-head modules, laid out as one query, key and
value matrix for all heads, so the heads run in one matmul each and one attention call. With vocab 65 and the
default config it has 10,788,929 parameters.
"""
from dataclasses import asdict, dataclass

from .. import backend, nn
from ..grad_mode import no_grad
from ..nn import functional as F
from ..tensor import Tensor


@dataclass
class GPTConfig:
    vocab_size: int = 65
    block_size: int = 256
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.2
    bias: bool = True  # biases of the projections, the MLP, the head and LayerNorms (q/k/v have none, as in the lecture)

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"GPTConfig.{name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self):
        return asdict(self)


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.n_head, self.dropout = config.n_head, config.dropout
        # The lecture's key/query/value projections, all heads in one (C, C) matrix each.
        self.query = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.key = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.value = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        B, T, C = x.shape
        H = self.n_head
        q, k, v = (proj(x).reshape(B, T, H, C // H).transpose(1, 2)  # (B, H, T, head_size)
                   for proj in (self.query, self.key, self.value))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, T, C)  # heads side by side again
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)  # then ReLU
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        # relu(c_fc(x)) as one op: on the GPU the ReLU is applied as the GEMM writes its result.
        h = F.linear(x, self.c_fc.weight, self.c_fc.bias, activation="relu")
        return self.dropout(self.c_proj(h))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.n_embd)
        self.position_embedding = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=config.bias)
        for m in self.modules():  # the lecture's init: N(0, 0.02) weights, zero biases
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, idx, targets=None):
        """idx (B, T) token ids -> logits (B, T, vocab), and the mean loss if targets are given."""
        idx = idx if isinstance(idx, Tensor) else Tensor(idx, device=self.lm_head.weight.device)
        if idx.ndim != 2:
            raise ValueError(f"GPT expects token ids of shape (B, T), got {idx.shape}")
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {self.config.block_size}")
        # Positions 0..T-1 are the first T rows of the table: a slice, no index lookup.
        x = self.token_embedding(idx) + self.position_embedding.weight[:T]
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T))
        return logits, loss

    @no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        """Append max_new_tokens sampled tokens to idx (B, T); eval mode while sampling."""
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if top_k is not None and not 1 <= top_k:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        was_training = self.training
        self.eval()
        try:
            idx = idx if isinstance(idx, Tensor) else Tensor(idx, device=self.lm_head.weight.device)
            xp = backend.array_module(idx.data)
            generator = backend.rng(idx.device)
            out = idx.data
            for _ in range(max_new_tokens):
                logits, _ = self(Tensor._wrap(out[:, -self.config.block_size:]))
                logits = logits.data[:, -1, :] / temperature
                if top_k is not None:
                    kth = xp.sort(logits, axis=-1)[:, -min(top_k, logits.shape[-1])][:, None]
                    logits = xp.where(logits < kth, -xp.inf, logits)
                probs = Tensor._wrap(logits).softmax(-1).data
                # Inverse-CDF sampling: vectorized over the batch, same code on CPU and GPU.
                u = generator.random((probs.shape[0], 1), dtype=probs.dtype)
                nxt = (xp.cumsum(probs, axis=-1) < u).sum(axis=-1, keepdims=True)
                out = xp.concatenate([out, xp.minimum(nxt, probs.shape[-1] - 1).astype(out.dtype)], axis=1)
            return Tensor._wrap(out)
        finally:
            self.train(was_training)
