"""How torch lays out the result of an integer-array or mask index in memory, so that `view` of that
result works (or refuses) as in torch.

NumPy and torch agree on the values; their memory layouts differ. torch builds the result with a
TensorIterator over the indexed tensor (its indexed dims given stride 0, the result's shape) and the
index arrays (stride 0 in the other dims), which orders the result's dims by those strides:
contiguous for a contiguous input, following the input's order for a permuted one
(x.permute(2, 0, 1)[:, [0, 1]] has strides (1, 4, 8)). `torch_order` replays that, `lay_out` copies
NumPy's result into it. The steps (index_select, roll and gather make a C-contiguous result):

1. the basic part first: the strides of the view the ints, slices and None make (torch applies
   them before the arrays), with torch's stride for a new dim of size 1 (unsqueeze's);
2. the arrays' dims: in place where they are side by side in that view, else moved to the front;
3. the strides of each operand over the result's dims, as TensorIterator sees them (an index array
   is broadcast, then viewed with size-1 dims around it);
4. TensorIterator's insertion sort of the dims, fastest first (reorder_dimensions).
"""
from ..backend import array_module


def is_mask(item):
    return getattr(item, "dtype", None) is not None and item.dtype.kind == "b"


def lay_out(out, order):
    """A C-contiguous copy of `out` in the dim order `order` (slowest first), seen in out's dim order
    (no copy where out is laid out so already)."""
    inverse = tuple(order.index(d) for d in range(out.ndim))
    return array_module(out).ascontiguousarray(out.transpose(tuple(order))).transpose(inverse)


def torch_order(a, index, out):
    """The dims of out = a[index] (torch's rules: see split_ints; an index with integer arrays or masks)
    from slowest to fastest in torch's memory layout."""
    items = list(index) if isinstance(index, tuple) else [index]
    takes = sum(0 if i is None or i is Ellipsis else i.ndim if is_mask(i) else 1 for i in items)
    if any(i is Ellipsis for i in items):
        at = next(k for k, i in enumerate(items) if i is Ellipsis)
        items[at:at + 1] = [slice(None)] * (a.ndim - takes)
    # 1. the strides of the view the ints, slices and None make, item by item as torch applies them;
    # each array's dim in that view, with the array's shape and strides
    strides, arrays, d = [], [], 0  # d: a's next dim
    for i in items:
        if i is None or (is_mask(i) and i.ndim == 0):  # (a 0-d mask indexes a new dim of size 1, as torch)
            if i is not None:
                arrays.append((len(strides), None, None))
            strides.append(a.shape[d] * a.strides[d] // a.itemsize if d < a.ndim else 1)  # unsqueeze's stride
            continue
        for _ in range(i.ndim if is_mask(i) else 1):
            if is_mask(i):  # a column of nonzero(mask)
                arrays.append((len(strides), None, None))
            elif hasattr(i, "dtype"):
                arrays.append((len(strides), i.shape, [s // i.itemsize for s in i.strides]))
            if isinstance(i, slice):
                strides.append(a.strides[d] // a.itemsize * (i.step or 1))
            elif not isinstance(i, int):  # an array's dim (an int selects: its dim goes)
                strides.append(a.strides[d] // a.itemsize)
            d += 1
    strides += [s // a.itemsize for s in a.strides[d:]]
    ndim = len(strides)
    # 2. the arrays' dims, and the view's dims before and after them in the result
    dims = [d for d, _, _ in arrays]
    if dims != list(range(dims[0], dims[0] + len(dims))):  # not side by side: to the front
        before, after = [], [d for d in range(ndim) if d not in dims]
    else:
        before, after = list(range(dims[0])), list(range(dims[-1] + 1, ndim))
    shape = out.shape
    n_index = len(shape) - len(before) - len(after)
    index_shape = shape[len(before):len(before) + n_index]
    # 3. each operand's strides over the result's dims (0: broadcast, and in the other operand's dims)
    operands = [[strides[d] for d in before] + [0] * n_index + [strides[d] for d in after]]
    for _, ishape, istrides in arrays:
        if ishape is None:
            ishape, istrides = index_shape[-1:], [1]
        lead = n_index - len(ishape)  # broadcast to index_shape: stride 0 where it is expanded
        istrides = [0] * lead + [0 if n == 1 and m != 1 else s for n, m, s in zip(ishape, index_shape[lead:], istrides)]
        viewed = view_strides(index_shape, istrides, (1,) * len(before) + index_shape + (1,) * len(after))
        operands.append([0 if shape[d] != 1 and not len(before) <= d < len(before) + n_index else s
                         for d, s in enumerate(viewed)])
    # 4. TensorIterator's order
    return iterator_order(shape, operands)


def view_strides(shape, strides, new_shape):
    """The strides torch gives a view of (shape, strides) as new_shape (computeStride), for a
    new_shape that only adds dims of size 1."""
    new = [0] * len(new_shape)
    view_d = len(new_shape) - 1
    base = strides[-1] if strides else 1
    numel = view_numel = 1
    for d in range(len(shape) - 1, -1, -1):
        numel *= shape[d]
        if d == 0 or (shape[d - 1] != 1 and strides[d - 1] != numel * base):  # the end of a chunk
            while view_d >= 0 and (view_numel < numel or new_shape[view_d] == 1):
                new[view_d] = view_numel * base
                view_numel *= new_shape[view_d]
                view_d -= 1
            if d > 0:
                base, numel, view_numel = strides[d - 1], 1, 1
    return new


def iterator_order(shape, operands):
    """TensorIterator's reorder_dimensions: an insertion sort of the dims, fastest first, by each
    operand's strides in turn (a stride of 0 leaves the comparison to the next operand; equal
    strides put the smaller size first); the output is laid out in that order."""
    def should_swap(d0, d1):
        for strides in operands:
            s0, s1 = strides[d0], strides[d1]
            if s0 == 0 or s1 == 0:
                continue
            if s0 != s1:
                return 1 if s0 > s1 else -1
            if shape[d0] > shape[d1]:
                return 1
        return 0

    perm = list(range(len(shape)))[::-1]
    for i in range(1, len(shape)):
        d1 = i
        for d0 in range(i - 1, -1, -1):
            swap = should_swap(perm[d0], perm[d1])
            if swap > 0:
                perm[d0], perm[d1] = perm[d1], perm[d0]
                d1 = d0
            elif swap < 0:
                break
    return perm[::-1]
