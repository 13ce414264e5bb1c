"""The named results of ops that return values and their indices, as torch.return_types:
`values, indices = x.max(1)` and `x.max(1).values` both work."""
from collections import namedtuple

max = namedtuple("max", ["values", "indices"])  # noqa: A001 (torch's names)
min = namedtuple("min", ["values", "indices"])  # noqa: A001
sort = namedtuple("sort", ["values", "indices"])
topk = namedtuple("topk", ["values", "indices"])
