import torch

# What a script prints when it reports shapes and dtypes, and torch.Size comparisons.
x = torch.zeros(4, 3)
idx = torch.tensor([1, 2])
print(x.shape)
print(x.size())
print(x.dtype, idx.dtype)
print(f"batch of {x.shape[0]}: {tuple(x.shape)}")

RESULTS = {
    "shape_str": str(x.shape),
    "dtype_str": str(x.dtype),
    "size_equals": x.size() == torch.Size([4, 3]),
}
