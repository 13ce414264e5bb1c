"""Embedding backward on the GPU: target[index[i]] += rows[i], with the same bits every run.

cupy.add.at scatters with atomic adds, so the rows of a repeated token are summed in
whatever order the threads arrive: 200 identical calls gave 28 different results on an
H100, and a seeded GPU training test failed 3 times in 15. Here, as in PyTorch's
embedding backward, the rows are sorted by index and summed in that order, in two passes:
each chunk of CHUNK sorted rows sums its part of every run of equal indices, then the
thread at the first row of a run adds the run's partials (one per chunk it spans) and
writes the total. No atomics, and no thread walks more than CHUNK rows plus those partials.
"""
import numpy as np

from ...backend import cupy, is_cuda_array
from ...function import Function
from ...ops import embedding
from ._cuda import on_gpu, raw_kernel

CHUNK = 32
_THREADS = 128
_SOURCE = r"""
// Pass 1, chunk blockIdx.x of the sorted rows: the sum of each run of equal indices in this
// chunk, written at the run's first row in the chunk.
extern "C" __global__ void emb_partial(const T* ROWS, const long long* ORDER, const long long* SORTED,
                                       T* PART, long long n, int c, int chunk) {
    int col = blockIdx.y * blockDim.x + threadIdx.x;
    if (col >= c) return;
    long long r0 = (long long)blockIdx.x * chunk;
    long long r1 = r0 + chunk < n ? r0 + chunk : n;
    long long start = r0;
    T acc = 0;
    for (long long r = r0; r < r1; ++r) {
        acc += ROWS[ORDER[r] * c + col];
        if (r + 1 == r1 || SORTED[r + 1] != SORTED[r]) {
            PART[start * c + col] = acc;
            acc = 0;
            start = r + 1;
        }
    }
}

// Pass 2: at the first row of each run, the run's partials in order: this chunk's, then the
// one at the start of every following chunk the run reaches into.
extern "C" __global__ void emb_total(const T* PART, const long long* SORTED, T* TARGET,
                                     long long n, int c, int chunk, long long vocab) {
    int col = blockIdx.y * blockDim.x + threadIdx.x;
    if (col >= c) return;
    long long r0 = (long long)blockIdx.x * chunk;
    long long r1 = r0 + chunk < n ? r0 + chunk : n;
    for (long long r = r0; r < r1; ++r) {
        long long id = SORTED[r];
        if (r > 0 && SORTED[r - 1] == id) continue;  // not the first row of its run
        if (id < 0 || id >= vocab) continue;  // out of range: bounds.py reports it, nothing is written
        T total = PART[r * c + col];
        for (long long q = r0 + chunk; q < n && SORTED[q] == id; q += chunk) total += PART[q * c + col];
        TARGET[id * c + col] += total;
    }
}
"""


def add_rows(target, index, rows):
    """target[index[i]] += rows[i]: target (V, c) C-contiguous, index (n,) integers, rows (n, c).

    Rows whose index is out of range are skipped (bounds.py reports those indices)."""
    n, c = rows.shape
    if n == 0 or c == 0:
        return
    order = cupy.argsort(index).astype(np.int64, copy=False)  # CuPy's sort is stable: runs keep row order
    sorted_index = index[order].astype(np.int64, copy=False)
    rows = cupy.ascontiguousarray(rows)
    part = cupy.empty_like(rows)
    grid = (-(-n // CHUNK), -(-c // _THREADS))
    args = (np.int64(n), np.int32(c), np.int32(CHUNK))
    raw_kernel(_SOURCE, "emb_partial", rows.dtype)(grid, (_THREADS,), (rows, order, sorted_index, part) + args)
    raw_kernel(_SOURCE, "emb_total", rows.dtype)(grid, (_THREADS,),
                                                 (part, sorted_index, target) + args + (np.int64(target.shape[0]),))


class Embedding(Function):
    """The textbook forward; the backward sums repeated ids in sorted order (add_rows)."""
    name, replaces = "embedding", embedding.Embedding

    @staticmethod
    def supports(idx, weight):
        return on_gpu(weight) and is_cuda_array(idx) and weight.ndim == 2

    def forward(self, idx, weight):
        self.idx, self.weight_shape, self.dtype = idx, weight.shape, weight.dtype
        return weight[idx]

    def backward(self, g):
        grad = cupy.zeros(self.weight_shape, self.dtype)
        add_rows(grad, self.idx.reshape(-1), g.reshape(-1, self.weight_shape[-1]).astype(self.dtype, copy=False))
        return None, grad
