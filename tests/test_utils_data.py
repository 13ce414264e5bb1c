"""tinygrad_tf.utils.data: datasets, samplers, collation and the DataLoader, and the same
programs run with torch.utils.data (when torch is installed) giving the same batches."""
import collections
import itertools
import warnings

import numpy as np
import pytest

import tinygrad_tf as tg
import tinygrad_tf.utils.data as data
from tinygrad_tf.utils.data import (BatchSampler, ConcatDataset, DataLoader, Dataset, IterableDataset,
                                    RandomSampler, SequentialSampler, Subset, TensorDataset,
                                    default_collate, default_convert, random_split)


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def seeded(seed=0):
    return tg.Generator().manual_seed(seed)


def ids(loader, field=None):
    """The sample ids of one pass, in order (batches are (ids, ...) or dicts with field)."""
    out = []
    for batch in loader:
        first = batch[field] if field is not None else batch[0]
        out.extend(first.tolist())
    return out


class Squares(Dataset):
    """A makemore-style dataset: a class with __len__ and __getitem__."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return tg.tensor([i, i * i]), i % 3


class Counter(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        return self.n


# --- datasets -------------------------------------------------------------------------
def test_import_forms():
    import tinygrad_tf.utils
    from tinygrad_tf.utils.data import DataLoader as Loader
    assert tinygrad_tf.utils.data.DataLoader is Loader is DataLoader


def test_tensor_dataset_indexes_every_tensor():
    x, y = tg.arange(12).reshape(4, 3), tg.tensor([0.5, 1.5, 2.5, 3.5])
    ds = TensorDataset(x, y)
    assert len(ds) == 4
    xi, yi = ds[1]
    assert xi.tolist() == [3, 4, 5] and yi.item() == 1.5
    assert ds[-1][0].tolist() == [9, 10, 11]
    assert [s[1].item() for s in ds] == [0.5, 1.5, 2.5, 3.5]  # iteration stops at the IndexError


def test_tensor_dataset_errors_name_sizes_and_index():
    with pytest.raises(ValueError, match=r"same size in dim 0.*\[3, 4\]"):
        TensorDataset(tg.zeros(3, 2), tg.zeros(4))
    with pytest.raises(TypeError, match="got ndarray at position 1"):
        TensorDataset(tg.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="0-d"):
        TensorDataset(tg.tensor(1.0))
    with pytest.raises(ValueError, match="at least one tensor"):
        TensorDataset()
    ds = TensorDataset(tg.zeros(5, 2))
    with pytest.raises(IndexError, match="index 5 is out of range for a TensorDataset of 5 samples"):
        ds[5]
    with pytest.raises(IndexError, match="index -6"):
        ds[-6]


def test_dataset_base_and_concat_with_plus():
    with pytest.raises(NotImplementedError, match="__getitem__"):
        Dataset()[0]
    a, b = TensorDataset(tg.arange(3)), TensorDataset(tg.arange(10, 15))
    both = a + b
    assert isinstance(both, ConcatDataset) and len(both) == 8
    assert [both[i][0].item() for i in range(8)] == [0, 1, 2, 10, 11, 12, 13, 14]
    assert both[-1][0].item() == 14 and both[-8][0].item() == 0
    with pytest.raises(IndexError, match="index 8 is out of range for a ConcatDataset of 8"):
        both[8]
    with pytest.raises(IndexError, match="-9"):
        both[-9]
    with pytest.raises(TypeError, match="ChainDataset"):
        ConcatDataset([a, Counter(3)])
    with pytest.raises(ValueError, match="at least one"):
        ConcatDataset([])


def test_subset_and_chain():
    ds = TensorDataset(tg.arange(10))
    sub = Subset(ds, [7, 2, 5])
    assert len(sub) == 3 and [sub[i][0].item() for i in range(3)] == [7, 2, 5]
    assert sub[[0, 2]][0].tolist() == [7, 5]
    chained = Counter(2) + Counter(3)
    assert list(chained) == [0, 1, 0, 1, 2] and len(chained) == 5


# --- random_split ---------------------------------------------------------------------
def test_random_split_counts_cover_the_dataset_once():
    parts = random_split(range(10), [3, 7], generator=seeded(0))
    assert [len(p) for p in parts] == [3, 7]
    assert sorted(parts[0].indices + parts[1].indices) == list(range(10))
    again = random_split(range(10), [3, 7], generator=seeded(0))
    assert [p.indices for p in again] == [p.indices for p in parts]


@pytest.mark.parametrize("n, fractions, expected", [
    (10, [0.5, 0.3, 0.2], [5, 3, 2]),
    (7, [0.5, 0.5], [4, 3]),
    (10, [0.33, 0.33, 0.34], [4, 3, 3]),
    (5, [0.1, 0.1, 0.8], [1, 0, 4]),  # floors 0, 0, 4; the one left over goes to the first split
])
@pytest.mark.filterwarnings("ignore:random_split")
def test_random_split_fractions_round_as_torch(n, fractions, expected):
    assert [len(p) for p in random_split(range(n), fractions, generator=seeded(1))] == expected


def test_random_split_fractions_match_torch(torch):
    for n in [1, 2, 5, 7, 10, 33, 100]:
        for fractions in [[0.5, 0.5], [0.8, 0.1, 0.1], [1 / 3] * 3, [0.7, 0.2, 0.1], [0.25] * 4, [1.0]]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                theirs = torch.utils.data.random_split(range(n), fractions)
                ours = random_split(range(n), fractions)
            assert [len(p) for p in ours] == [len(p) for p in theirs], (n, fractions)


def test_random_split_errors_and_empty_warning():
    with pytest.raises(ValueError, match=r"lengths \[3, 3\] sum to 6, but the dataset has 10 samples"):
        random_split(range(10), [3, 3])
    with pytest.raises(ValueError, match="between 0 and 1"):
        random_split(range(10), [1.5, -0.5])
    with pytest.raises(ValueError, match="non-negative integers or fractions"):
        random_split(range(10), [2.5, 7.5])
    with pytest.raises(TypeError, match="tinygrad_tf.Generator"):
        random_split(range(10), [5, 5], generator=np.random.default_rng(0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parts = random_split(range(2), [0.9, 0.05, 0.05])
    assert [len(p) for p in parts] == [2, 0, 0]
    assert [str(w.message) for w in caught] == ["random_split: the split at index 1 is empty (0.05 of 2 samples)",
                                                "random_split: the split at index 2 is empty (0.05 of 2 samples)"]


def test_random_split_without_generator_follows_manual_seed():
    tg.manual_seed(5)
    first = [p.indices for p in random_split(range(20), [10, 10])]
    tg.manual_seed(5)
    assert [p.indices for p in random_split(range(20), [10, 10])] == first


# --- samplers -------------------------------------------------------------------------
def test_samplers():
    assert list(SequentialSampler(range(4))) == [0, 1, 2, 3]
    rs = RandomSampler(range(6), generator=seeded(3))
    assert sorted(rs) == list(range(6)) and len(rs) == 6
    longer = list(RandomSampler(range(4), num_samples=10, generator=seeded(3)))
    assert len(longer) == 10 and sorted(longer[:4]) == sorted(longer[4:8]) == [0, 1, 2, 3]
    endless = RandomSampler(range(5), replacement=True, num_samples=10**10, generator=seeded(3))
    assert len(endless) == 10**10
    draws = list(itertools.islice(endless, 100))  # drawn lazily, 32 at a time
    assert len(draws) == 100 and set(draws) <= set(range(5)) and all(type(i) is int for i in draws)
    assert list(BatchSampler(range(5), 2, False)) == [[0, 1], [2, 3], [4]]
    assert list(BatchSampler(range(5), 2, True)) == [[0, 1], [2, 3]]
    assert len(BatchSampler(range(5), 2, False)) == 3 and len(BatchSampler(range(5), 2, True)) == 2


def test_sampler_errors():
    with pytest.raises(ValueError, match="num_samples=0 \\(the dataset is empty\\)"):
        RandomSampler([])
    with pytest.raises(ValueError, match="num_samples=-1"):
        RandomSampler(range(3), num_samples=-1)
    with pytest.raises(TypeError, match="replacement"):
        RandomSampler(range(3), replacement=1)
    with pytest.raises(ValueError, match="drop_last"):
        BatchSampler(range(3), 2, drop_last=None)
    with pytest.raises(TypeError, match="tinygrad_tf.Generator"):
        RandomSampler(range(3), generator="seed")


# --- collation ------------------------------------------------------------------------
def test_default_collate_types():
    stacked = default_collate([tg.tensor([1.0, 2.0]), tg.tensor([3.0, 4.0])])
    assert stacked.shape == (2, 2) and stacked.dtype == tg.float32
    mixed = default_collate([tg.tensor([1, 2]), tg.tensor([0.5, 1.5])])
    assert mixed.dtype == tg.float32 and mixed.tolist() == [[1.0, 2.0], [0.5, 1.5]]  # torch's promotion
    assert default_collate([1, 2]).dtype == tg.int64
    assert default_collate([1.5, 2]).dtype == tg.float64
    assert default_collate([True, False]).dtype == tg.bool
    assert default_collate([np.float32(1), np.float32(2)]).dtype == tg.float32
    assert default_collate([np.array([1, 2], np.int32)] * 3).shape == (3, 2)
    assert default_collate(["a", "b"]) == ["a", "b"]
    pairs = default_collate([(tg.tensor([1]), 0), (tg.tensor([2]), 1)])
    assert type(pairs) is list and pairs[0].tolist() == [[1], [2]] and pairs[1].tolist() == [0, 1]
    lists = default_collate([[1, 2.0], [3, 4.0]])
    assert type(lists) is list and lists[0].tolist() == [1, 3] and lists[1].tolist() == [2.0, 4.0]
    d = default_collate([collections.OrderedDict(x=1, s="a"), collections.OrderedDict(x=2, s="b")])
    assert type(d) is collections.OrderedDict and d["x"].tolist() == [1, 2] and d["s"] == ["a", "b"]
    Point = collections.namedtuple("Point", "x y")
    p = default_collate([Point(1, 2.0), Point(3, 4.0)])
    assert type(p) is Point and p.x.tolist() == [1, 3]


def test_default_collate_keeps_the_graph():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    batch = default_collate([w * 2, w * 3, tg.tensor([1, 1])])
    assert batch.dtype == tg.float32 and batch.requires_grad
    batch.sum().backward()
    assert w.grad.tolist() == [5.0, 5.0]


def test_default_collate_errors():
    with pytest.raises(RuntimeError, match=r"equal size, but got \(2,\) at entry 0 and \(3,\) at entry 1"):
        default_collate([tg.zeros(2), tg.zeros(3)])
    with pytest.raises(RuntimeError, match="sample 0 has 2 and sample 1 has 1"):
        default_collate([(1, 2), (3,)])
    with pytest.raises(TypeError, match="found <class 'object'>"):
        default_collate([object()])
    with pytest.raises(TypeError, match="dtype <U1"):
        default_collate([np.array(["a"])])


def test_default_convert():
    assert default_convert(3) == 3
    out = default_convert((np.array([1.0, 2.0]), np.float64(3.0), "s"))
    assert type(out) is list and out[0].dtype == tg.float64 and out[1].dtype == tg.float64 and out[2] == "s"
    assert default_convert({"a": np.arange(3)})["a"].tolist() == [0, 1, 2]


# --- DataLoader -----------------------------------------------------------------------
def test_loader_batches_a_dataset_class():
    loader = DataLoader(Squares(7), batch_size=3)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    x, y = batches[0]
    assert x.tolist() == [[0, 0], [1, 1], [2, 4]] and y.tolist() == [0, 1, 2] and y.dtype == tg.int64
    assert batches[-1][0].shape == (1, 2)
    assert len(DataLoader(Squares(7), batch_size=3, drop_last=True)) == 2
    assert [b[0].shape[0] for b in DataLoader(Squares(7), batch_size=3, drop_last=True)] == [3, 3]
    assert len(DataLoader(Squares(6), batch_size=3)) == 2


def test_loader_shuffles_every_pass_and_reseeding_repeats():
    ds = TensorDataset(tg.arange(20), tg.zeros(20, 2))
    g = seeded(7)
    loader = DataLoader(ds, batch_size=4, shuffle=True, generator=g)
    first, second = ids(loader), ids(loader)
    assert sorted(first) == sorted(second) == list(range(20))
    assert first != second
    g.manual_seed(7)
    assert ids(loader) == first
    assert ids(DataLoader(ds, batch_size=4, shuffle=True, generator=seeded(7))) == first
    tg.manual_seed(3)
    unseeded = ids(DataLoader(ds, batch_size=4, shuffle=True))
    tg.manual_seed(3)
    assert ids(DataLoader(ds, batch_size=4, shuffle=True)) == unseeded


def test_loader_without_batching_and_custom_collate():
    ds = TensorDataset(tg.arange(3), tg.arange(3) * 10)
    samples = list(DataLoader(ds, batch_size=None))
    assert len(DataLoader(ds, batch_size=None)) == 3
    assert type(samples[0]) is list and samples[2][1].item() == 20  # a tuple comes out as a list
    assert list(DataLoader([1, 2], batch_size=None)) == [1, 2]
    sizes = list(DataLoader(ds, batch_size=2, collate_fn=len))
    assert sizes == [2, 1]


def test_loader_with_sampler_and_batch_sampler():
    ds = TensorDataset(tg.arange(6))
    assert ids(DataLoader(ds, batch_size=2, sampler=[5, 4, 3])) == [5, 4, 3]
    loader = DataLoader(ds, batch_sampler=[[0, 1, 2], [5]])
    assert ids(loader) == [0, 1, 2, 5] and len(loader) == 2 and loader.batch_size is None
    endless = DataLoader(ds, batch_size=4, sampler=RandomSampler(ds, True, 10**10, seeded(0)))
    batch = next(iter(endless))
    assert batch[0].shape == (4,) and len(endless) == 10**10 // 4


def test_loader_with_mingpt_trainer_arguments():
    """minGPT's trainer: an endless sampler with replacement, shuffle=False, pin_memory=True."""
    ds = TensorDataset(tg.arange(50).reshape(10, 5), tg.arange(50).reshape(10, 5) + 1)
    loader = DataLoader(ds, sampler=RandomSampler(ds, replacement=True, num_samples=int(1e10)),
                        shuffle=False, pin_memory=True, batch_size=4, num_workers=0)
    batches = iter(loader)
    for _ in range(3):
        x, y = next(batches)
        assert x.shape == y.shape == (4, 5) and (y - x).tolist() == [[1] * 5] * 4


def test_loader_iterable_dataset():
    assert [b.tolist() for b in DataLoader(Counter(5), batch_size=2)] == [[0, 1], [2, 3], [4]]
    assert [b.tolist() for b in DataLoader(Counter(5), batch_size=2, drop_last=True)] == [[0, 1], [2, 3]]
    assert len(DataLoader(Counter(5), batch_size=2)) == 3 and len(DataLoader(Counter(5), 2, drop_last=True)) == 2
    assert list(DataLoader(Counter(3), batch_size=None)) == [0, 1, 2]
    with pytest.raises(ValueError, match="IterableDataset.*shuffle"):
        DataLoader(Counter(5), shuffle=True)


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=0), "positive integer.*got batch_size=0"),
    (dict(batch_size=-2), "got batch_size=-2"),
    (dict(batch_size=2.0), "got batch_size=2.0"),
    (dict(batch_size=True), "got batch_size=True"),
    (dict(batch_size=None, drop_last=True), "drop_last must be False"),
    (dict(num_workers=2), "num_workers=2.*main process.*num_workers=0"),
    (dict(num_workers=-1), "non-negative.*num_workers=-1"),
    (dict(sampler=[0, 1], shuffle=True), "mutually exclusive with shuffle"),
    (dict(batch_sampler=[[0]], batch_size=4), "mutually exclusive"),
    (dict(drop_last="yes"), "drop_last"),
])
def test_loader_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DataLoader(TensorDataset(tg.arange(4)), **kwargs)


def test_loader_generator_errors():
    ds = TensorDataset(tg.arange(4))
    with pytest.raises(TypeError, match="tinygrad_tf.Generator"):
        DataLoader(ds, shuffle=True, generator=np.random.default_rng(0))


def test_loader_pin_memory_is_accepted_and_changes_nothing():
    ds = TensorDataset(tg.arange(5))
    assert ids(DataLoader(ds, batch_size=2, pin_memory=True)) == ids(DataLoader(ds, batch_size=2))


# --- the same programs with torch.utils.data ------------------------------------------
def assert_same(ours, theirs, torch, where="batch"):
    """Same structure, container types, dtypes, shapes and values."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, tg.Tensor), f"{where}: {type(ours).__name__}, torch gives a tensor"
        assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch."), where
        assert tuple(ours.shape) == tuple(theirs.shape), where
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=where)
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs) and list(ours) == list(theirs), where
        for key in theirs:
            assert_same(ours[key], theirs[key], torch, f"{where}[{key!r}]")
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs), f"{where}: {type(ours)} vs {type(theirs)}"
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_same(a, b, torch, f"{where}[{i}]")
    else:
        assert type(ours) is type(theirs) and ours == theirs, where


def make_program(lib, data_mod):
    """A small training-script input pipeline, written once for either library."""

    class Records(data_mod.Dataset):
        def __init__(self, n):
            self.x = lib.arange(n * 3).reshape(n, 3)
            self.feats = lib.arange(n * 2).reshape(n, 2).float() / 4

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return {"id": i, "x": self.x[i], "w": i / 4, "flag": i % 2 == 0, "name": f"s{i}",
                    "pair": (self.feats[i], np.float32(i)), "np": np.arange(i, i + 2)}

    n = 11
    tensors = data_mod.TensorDataset(lib.arange(n), lib.arange(n * 4).reshape(n, 2, 2).float())
    return Records(n), tensors, Records(4) + Records(3)


@pytest.mark.parametrize("batch_size, drop_last", [(1, False), (3, False), (3, True), (4, False), (None, False)])
def test_same_batches_as_torch(torch, batch_size, drop_last):
    ours_sets = make_program(tg, data)
    theirs_sets = make_program(torch, torch.utils.data)
    for k, (ours_ds, theirs_ds) in enumerate(zip(ours_sets, theirs_sets)):
        ours = DataLoader(ours_ds, batch_size=batch_size, drop_last=drop_last)
        theirs = torch.utils.data.DataLoader(theirs_ds, batch_size=batch_size, drop_last=drop_last)
        assert len(ours) == len(theirs)
        ours_batches, theirs_batches = list(ours), list(theirs)
        assert len(ours_batches) == len(theirs_batches)
        for i, (a, b) in enumerate(zip(ours_batches, theirs_batches)):
            assert_same(a, b, torch, f"dataset {k} batch {i}")


def test_shuffled_epochs_hold_the_same_samples_as_torch(torch):
    n, batch_size = 23, 5
    ours_ds = TensorDataset(tg.arange(n), tg.arange(n * 2).reshape(n, 2).float())
    theirs_ds = torch.utils.data.TensorDataset(torch.arange(n), torch.arange(n * 2).reshape(n, 2).float())
    for drop_last in (False, True):
        ours = DataLoader(ours_ds, batch_size=batch_size, shuffle=True, drop_last=drop_last, generator=seeded(0))
        theirs = torch.utils.data.DataLoader(theirs_ds, batch_size=batch_size, shuffle=True, drop_last=drop_last,
                                             generator=torch.Generator().manual_seed(0))
        assert len(ours) == len(theirs)
        for _ in range(3):
            ours_batches, theirs_batches = list(ours), list(theirs)
            assert [[tuple(t.shape) for t in b] for b in ours_batches] == \
                   [[tuple(t.shape) for t in b] for b in theirs_batches]
            assert [type(b) for b in ours_batches] == [type(b) for b in theirs_batches]
            ours_rows = sorted(map(tuple, np.concatenate([b[1].numpy() for b in ours_batches]).tolist()))
            theirs_rows = sorted(map(tuple, np.concatenate([b[1].numpy() for b in theirs_batches]).tolist()))
            if drop_last:  # a random 3 of the 23 samples are left out of each epoch
                assert len(ours_rows) == len(theirs_rows) == 20
                assert set(ours_rows) <= set(map(tuple, ours_ds.tensors[1].tolist()))
            else:
                assert ours_rows == theirs_rows


def test_same_errors_as_torch(torch):
    ours_ds, theirs_ds = TensorDataset(tg.arange(4)), torch.utils.data.TensorDataset(torch.arange(4))
    for kwargs in [dict(batch_size=0), dict(batch_size=None, drop_last=True), dict(sampler=[0], shuffle=True),
                   dict(batch_sampler=[[0]], batch_size=2)]:
        with pytest.raises(ValueError):
            torch.utils.data.DataLoader(theirs_ds, **kwargs)
        with pytest.raises(ValueError):
            DataLoader(ours_ds, **kwargs)
    with pytest.raises(ValueError):
        torch.utils.data.random_split(range(10), [3, 3])
    with pytest.raises(ValueError):
        random_split(range(10), [3, 3])


def collate_cases(lib):
    """Batches of samples for default_collate, built the same way for either library."""
    return [
        [lib.tensor([1, 2]), lib.tensor([0.5, 1.5])],
        [lib.tensor([1.0, 2.0]), lib.tensor([3.0, 4.0]).double()],
        [lib.arange(6).reshape(2, 3)] * 2,
        [1, 2, 3], [1.5, 2], [True, False], [np.float32(1), np.float32(2)], [np.int32(1)], [np.float64(1)],
        [np.array([1, 2], np.int32), np.array([3, 4], np.int32)], [np.arange(3.0)] * 2,
        [(lib.tensor([1]), 0, "a"), (lib.tensor([2]), 1, "b")],
        [[1, 2.0], [3, 4.0]],
        [{"x": lib.tensor([1.0]), "y": {"z": 1}}, {"x": lib.tensor([2.0]), "y": {"z": 2}}],
    ]


def test_default_collate_matches_torch(torch):
    for i, (ours, theirs) in enumerate(zip(collate_cases(tg), collate_cases(torch))):
        assert_same(default_collate(ours), torch.utils.data.default_collate(theirs), torch, f"case {i}")
        assert_same(default_convert(ours[0]), torch.utils.data.default_convert(theirs[0]), torch, f"case {i}")
