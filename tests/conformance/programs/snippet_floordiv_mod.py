import torch

# Integer arithmetic on index tensors: a flat index split into row and column.
flat = torch.tensor([0, 5, 7, 11])
width = 4
row = flat // width
col = flat % width
half = torch.arange(6) // 2

RESULTS = {
    "row": row,
    "col": col,
    "half": half,
    "dtype_long": [row.dtype == torch.long, col.dtype == torch.long],
    "float_floordiv": torch.tensor([7.5, -7.5]) // 2,
}
