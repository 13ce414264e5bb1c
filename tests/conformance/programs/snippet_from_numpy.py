import numpy as np
import torch

# torch.from_numpy: nanoGPT's get_batch reads its tokens this way, and it shares memory with
# the array (and keeps its dtype).
data = np.arange(20, dtype=np.uint16)
block_size = 4
ix = torch.tensor([0, 3, 9])
x = torch.stack([torch.from_numpy((data[i:i + block_size]).astype(np.int64)) for i in ix])
y = torch.stack([torch.from_numpy((data[i + 1:i + 1 + block_size]).astype(np.int64)) for i in ix])

arr = np.zeros(3)
shared = torch.from_numpy(arr)
arr[1] = 5.0

RESULTS = {
    "x": x,
    "y": y,
    "x_dtype_long": x.dtype == torch.long,
    "shared": shared,
    "shared_dtype_float64": shared.dtype == torch.float64,
}
