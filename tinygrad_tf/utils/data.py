"""Datasets, samplers and the DataLoader, with torch.utils.data's names and semantics.

A Dataset says what sample i is; a Sampler says in which order the indices are visited;
a BatchSampler groups them; the DataLoader fetches each group's samples and collates them
into tensors (default_collate). Everything runs in the main process, between training
steps: there are no worker processes (num_workers must be 0).

Shuffling draws from a tg.Generator when one is given, else from the CPU generator that
tg.manual_seed seeds, so a seeded program visits the same order on every run.
"""
import bisect
import collections.abc
import itertools
import math
import types
import warnings

import numpy as np

from ..backend import Generator, array_module, draw_from, float64, result_type
from ..creation import stack
from ..tensor import Tensor

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "ConcatDataset", "ChainDataset", "Subset",
           "random_split", "Sampler", "SequentialSampler", "RandomSampler", "BatchSampler",
           "DataLoader", "default_collate", "default_convert"]


# --- datasets -------------------------------------------------------------------------
class Dataset:
    """A map-style dataset: dataset[i] is sample i, len(dataset) how many there are.

    Subclass it and define __getitem__ and __len__; `a + b` is ConcatDataset([a, b])."""

    __class_getitem__ = classmethod(types.GenericAlias)  # Dataset[T] in type hints, as torch's

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index) to return a sample")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A stream of samples (a generator, a file read line by line): define __iter__.

    The DataLoader batches it in the order it comes and cannot shuffle it; `a + b` chains."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__ to yield samples")

    def __add__(self, other):
        return ChainDataset([self, other])


class TensorDataset(Dataset):
    """Sample i is (t[i] for t in tensors): inputs and targets that share their first dim."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        for k, t in enumerate(tensors):
            if not isinstance(t, Tensor):
                raise TypeError(f"TensorDataset expects tinygrad_tf tensors, got {type(t).__name__} "
                                f"at position {k}; wrap it with tg.tensor(...)")
            if t.ndim == 0:
                raise ValueError(f"TensorDataset needs tensors with a first dim to index, got a 0-d "
                                 f"tensor at position {k}")
        sizes = [t.shape[0] for t in tensors]
        if len(set(sizes)) > 1:
            raise ValueError(f"TensorDataset needs tensors with the same size in dim 0 (one sample per "
                             f"row), got sizes {sizes} (shapes {[t.shape for t in tensors]})")
        self.tensors = tensors

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            n = len(self)
            if not -n <= index < n:  # IndexError also ends `for sample in dataset`
                raise IndexError(f"index {index} is out of range for a TensorDataset of {n} samples")
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


class ConcatDataset(Dataset):
    """Datasets one after another: index i goes to the first dataset whose running total exceeds i."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset needs at least one dataset")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset cannot index an IterableDataset; chain streams with ChainDataset")
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, index):
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for a ConcatDataset of {n} samples")
        index = index + n if index < 0 else index
        which = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][index - start]


class ChainDataset(IterableDataset):
    """Streams one after another (IterableDataset's `+`)."""

    def __init__(self, datasets):
        self.datasets = list(datasets)

    def __iter__(self):
        for d in self.datasets:
            yield from d

    def __len__(self):
        return sum(len(d) for d in self.datasets)


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order: random_split's pieces, a held-out set."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, indices

    def __getitem__(self, index):
        if isinstance(index, list):
            return self.dataset[[self.indices[i] for i in index]]
        return self.dataset[self.indices[index]]

    def __len__(self):
        return len(self.indices)


def random_split(dataset, lengths, generator=None):
    """Non-overlapping Subsets of the given lengths, cut from one random order of the dataset.

    lengths are counts summing to len(dataset), or fractions summing to 1: as in torch, each
    split then gets floor(n * fraction) and the samples left over go one each to the splits
    in order (10 samples, [0.5, 0.3, 0.2] -> [5, 3, 2]; 7 samples, [0.5, 0.5] -> [4, 3])."""
    n, lengths = len(dataset), list(lengths)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        counts = []
        for i, fraction in enumerate(lengths):
            if not 0 <= fraction <= 1:
                raise ValueError(f"random_split: fraction {fraction} at index {i} is not between 0 and 1")
            counts.append(math.floor(n * fraction))
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        for i, count in enumerate(counts):
            if count == 0:
                warnings.warn(f"random_split: the split at index {i} is empty ({lengths[i]} of {n} samples)")
        lengths = counts
    for i, length in enumerate(lengths):
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
            raise ValueError(f"random_split: lengths must be non-negative integers or fractions summing "
                             f"to 1, got {lengths[i]!r} at index {i} of {lengths}")
    if sum(lengths) != n:
        raise ValueError(f"random_split: lengths {lengths} sum to {sum(lengths)}, but the dataset has {n} "
                         f"samples; pass counts that sum to {n}, or fractions that sum to 1")
    order = _randperm(n, generator)
    return [Subset(dataset, order[end - length:end])
            for end, length in zip(itertools.accumulate(lengths), lengths)]


# --- samplers -------------------------------------------------------------------------
class Sampler:
    """An iterable of dataset indices: the order in which a DataLoader visits the samples."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__ to yield indices")


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1: the order without shuffle."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """A new random order on every pass (shuffle=True). With replacement, num_samples independent
    draws, made 32 at a time so that an endless sampler (num_samples=10**10) costs nothing up front;
    without, num_samples longer than the dataset repeats whole permutations."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement should be a bool, got replacement={replacement!r}")
        self.data_source, self.replacement, self._num_samples = data_source, replacement, num_samples
        self.generator = _check_generator(generator)
        count = self.num_samples
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count <= 0:
            raise ValueError(f"num_samples should be a positive integer, got num_samples={count!r}"
                             + (" (the dataset is empty)" if num_samples is None else ""))

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n, count, rng = len(self.data_source), self.num_samples, _cpu_rng(self.generator)
        if self.replacement:
            for start in range(0, count, 32):
                yield from rng.integers(0, n, size=min(32, count - start)).tolist()
            return
        for _ in range(count // n):
            yield from rng.permutation(n).tolist()
        if count % n:
            yield from rng.permutation(n)[:count % n].tolist()

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Groups a sampler's indices into lists of batch_size; drop_last drops a shorter last list."""

    def __init__(self, sampler, batch_size, drop_last):
        _check_batch_size(batch_size)
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a bool, got drop_last={drop_last!r}")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __iter__(self):
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


# --- collation ------------------------------------------------------------------------
_COLLATE_ERROR = ("default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
                  "found {}; pass a collate_fn to the DataLoader for other samples")


def default_collate(batch):
    """A list of samples -> one batch, as torch's default_collate: tensors and NumPy arrays are
    stacked along a new first dim; ints become an int64 tensor, floats a float64 one, bools a
    bool one; strings stay as they come; dicts, namedtuples, lists and tuples are collated
    field by field (a tuple comes back as a list, as in torch; a field is collated as the
    tuple zip gives, so a field of strings stays a tuple, as in torch)."""
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack(batch)
    if isinstance(elem, np.ndarray):
        if elem.dtype.kind in "SaUO":
            raise TypeError(_COLLATE_ERROR.format(f"a NumPy array of dtype {elem.dtype}"))
        return _stack([Tensor(a) for a in batch])
    if isinstance(elem, (np.bool_, np.number)):
        return Tensor(np.array(batch))
    if isinstance(elem, float):
        return Tensor(batch, dtype=float64)
    if isinstance(elem, int):
        return Tensor(batch)
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        return _same_container(elem, {key: default_collate([d[key] for d in batch]) for key in elem})
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a namedtuple keeps its type
        return type(elem)(*(default_collate(field) for field in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        for i, sample in enumerate(batch):
            if len(sample) != len(elem):
                raise RuntimeError(f"default_collate: each sample in a batch needs the same number of "
                                   f"fields, but sample 0 has {len(elem)} and sample {i} has {len(sample)}")
        fields = [default_collate(field) for field in zip(*batch)]
        return fields if isinstance(elem, tuple) else _same_container(elem, fields)
    raise TypeError(_COLLATE_ERROR.format(type(elem)))


def default_convert(data):
    """One sample as the DataLoader hands it out unbatched (batch_size=None), as torch's
    default_convert: NumPy arrays and scalars become tensors, containers are walked (a tuple
    becomes a list), everything else (tensors, Python numbers, strings) passes through."""
    if isinstance(data, (np.ndarray, np.bool_, np.number)):
        return data if data.dtype.kind in "SaUO" else Tensor(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        return _same_container(data, {key: default_convert(value) for key, value in data.items()})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        return _same_container(data, [default_convert(d) for d in data])
    return data


def _stack(tensors):
    """torch.stack(batch): its message for unequal shapes, its dtype for mixed ones (int64 and
    float32 samples give float32). Samples that need no gradient, on one device, are stacked as
    arrays in one call; the rest go through tg.stack, which records the graph."""
    first = tensors[0]
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"default_collate: sample 0 is a Tensor but sample {i} is a {type(t).__name__}")
        if t.shape != first.shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {first.shape} at entry 0 "
                               f"and {t.shape} at entry {i}; pad the samples or pass a collate_fn")
    dtype = result_type(*(t.data for t in tensors))
    if any(t.requires_grad or t.device != first.device for t in tensors):
        return stack([t.to(dtype) for t in tensors])
    return Tensor(array_module(first.data).stack([t.data for t in tensors]).astype(dtype, copy=False))


def _same_container(like, collated):
    """collated in like's container type when that type can be rebuilt from it (an OrderedDict
    stays one, as in torch), else the plain dict or list."""
    try:
        return type(like)(collated)
    except TypeError:
        return collated


# --- the loader -----------------------------------------------------------------------
class DataLoader:
    """Batches of a dataset: visits its indices in order, or in a new random order on every pass
    (shuffle=True), fetches the samples of each batch and collates them (default_collate).

    batch_size=None turns batching off: each sample comes out on its own (default_convert).
    Batches are loaded in the main process: num_workers must be 0. pin_memory is accepted and
    ignored: pinned host memory only speeds a later copy to a GPU and never changes a value,
    and batches here are made where the dataset's tensors are (move them with .to(device))."""

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, *, generator=None):
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers should be a non-negative integer, got num_workers={num_workers!r}")
        if num_workers > 0:
            raise ValueError(f"num_workers={num_workers}: tinygrad_tf's DataLoader loads every batch in the "
                             f"main process and has no worker processes; pass num_workers=0")
        if isinstance(dataset, IterableDataset):
            if shuffle or sampler is not None or batch_sampler is not None:
                raise ValueError("DataLoader with an IterableDataset takes samples in the order the stream "
                                 "gives them: shuffle, sampler and batch_sampler must be left unset")
        elif batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, "
                                 "sampler and drop_last")
            batch_size = None
        else:
            if sampler is not None and shuffle:
                raise ValueError("sampler option is mutually exclusive with shuffle: the sampler sets the order")
            if sampler is None:
                sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_size is None and drop_last:
            raise ValueError("batch_size=None turns batching off, so there is no last batch to drop: "
                             "drop_last must be False")
        if batch_size is not None:
            _check_batch_size(batch_size)
            if sampler is not None:
                batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, drop_last
        self.sampler, self.batch_sampler, self.generator = sampler, batch_sampler, generator
        self.num_workers, self.pin_memory = num_workers, pin_memory
        batched = batch_size is not None or batch_sampler is not None
        self.collate_fn = collate_fn or (default_collate if batched else default_convert)

    def __iter__(self):
        if isinstance(self.dataset, IterableDataset):
            yield from self._stream_batches()
        elif self.batch_sampler is None:
            for index in self.sampler:
                yield self.collate_fn(self.dataset[index])
        else:
            for indices in self.batch_sampler:
                yield self.collate_fn([self.dataset[i] for i in indices])

    def _stream_batches(self):
        samples = iter(self.dataset)
        if self.batch_size is None:
            for sample in samples:
                yield self.collate_fn(sample)
            return
        while batch := list(itertools.islice(samples, self.batch_size)):
            if len(batch) < self.batch_size and self.drop_last:
                return
            yield self.collate_fn(batch)

    def __len__(self):
        """Batches per pass: ceil(n / batch_size), or floor with drop_last."""
        if isinstance(self.dataset, IterableDataset):
            n = len(self.dataset)
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self.batch_sampler if self.batch_sampler is not None else self.sampler)


# --- helpers --------------------------------------------------------------------------
def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batch_size should be a positive integer (or None, in a DataLoader, to turn "
                         f"batching off), got batch_size={batch_size!r}")


def _check_generator(generator):
    """None or a tg.Generator on the CPU, where the sampling happens; else a clear error now,
    not at the first batch."""
    if generator is None:
        return None
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a tinygrad_tf.Generator (tg.Generator().manual_seed(n)), "
                        f"got {type(generator).__module__}.{type(generator).__name__}")
    if generator.device != "cpu":
        raise ValueError(f"shuffling draws on the CPU: pass a tg.Generator() on 'cpu', got one on "
                         f"{generator.device}")
    return generator


def _cpu_rng(generator):
    """The NumPy generator to draw from: the given tg.Generator's, else the one tg.manual_seed seeds."""
    return draw_from(_check_generator(generator), "cpu")


def _randperm(n, generator):
    """A random order of range(n) as Python ints: torch.randperm(n, generator=...).tolist(),
    which the engine does not have (yet)."""
    return _cpu_rng(generator).permutation(n).tolist()
