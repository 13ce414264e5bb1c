import torch

# Merging attention heads back, as minGPT and nanoGPT write it: transpose, contiguous, view.
B, nh, T, hs = 2, 3, 4, 5
y = torch.arange(B * nh * T * hs, dtype=torch.float32).view(B, nh, T, hs)
y = y @ torch.eye(hs)
merged = y.transpose(1, 2).contiguous().view(B, T, nh * hs)

RESULTS = {
    "merged": merged,
    "is_contiguous": y.transpose(1, 2).contiguous().is_contiguous(),
}
