import contextlib
import io
import json
import math
import os
import secrets
import signal
import stat
import threading
import time
import zipfile

import numpy as np
import pytest

import tinygrad_tf as tg
from tinygrad_tf import backend, serialize
from tinygrad_tf.serialize import CheckpointError, load, save


def checkpoint():
    """Shaped like a real training checkpoint, with every kind of leaf we promise to keep."""
    exp_avg = tg.randn(3, 4)
    return {
        "model": {"w": tg.randn(3, 4), "b": tg.tensor([1.5, -2.0], dtype=tg.float64),
                  "mask": tg.tensor([[True, False]]), "idx": tg.tensor([1, 2**40], dtype=tg.int64),
                  "half": tg.tensor([0.1, 65504.0], dtype=tg.float16), "i32": tg.tensor([-7], dtype=tg.int32),
                  "scalar": tg.tensor(3.25), "empty": tg.zeros(0, 5)},
        "optimizer": {"state": {0: {"step": 3, "exp_avg": exp_avg}, 1: {"step": 3, "exp_avg": exp_avg}},
                      "param_groups": [{"lr": 3e-4, "betas": (0.9, 0.95), "params": [0, 1]}]},
        "iter": 10,
        "config": {"n_layer": 6, "bias": True, "dropout": 0.2, "name": "gpt ✓", "dims": ((1, 2), [3])},
        "rng": np.random.default_rng(1234).bit_generator.state,  # 128-bit ints inside
        "arrays": [np.arange(6, dtype=np.uint8).reshape(2, 3), np.asfortranarray(np.eye(3)), np.array("héllo")],
        "vocab": "abc\n\x00\ud800", "none": None, "nan": float("nan"), "inf": -math.inf, "neg0": -0.0,
        "tiny": 5e-324, "big": -(2**200),
    }


def assert_same(a, b, where="obj"):
    """Exact equality: same types (tuple is not list), same dict keys in order, dtypes, bits."""
    assert type(a) is type(b), f"{where}: {type(a)} vs {type(b)}"
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, (tg.Tensor, np.ndarray)):
        x, y = (a.numpy(), b.numpy()) if isinstance(a, tg.Tensor) else (a, b)
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), where
    elif isinstance(a, float):
        assert repr(a) == repr(b), where  # nan == nan, and -0.0 is not 0.0
    else:
        assert a == b, where


def test_roundtrip_checkpoint_exactly(tmp_path):
    ckpt = checkpoint()
    save(ckpt, tmp_path / "ckpt.tg")
    out = load(tmp_path / "ckpt.tg")
    assert_same(ckpt, out)
    for t in out["model"].values():
        assert t.device == "cpu" and t.is_leaf and not t.requires_grad
        assert t.data.flags.writeable  # the optimizer updates loaded state in place
    assert list(out["optimizer"]["state"]) == [0, 1]
    assert out["optimizer"]["state"][0]["exp_avg"] is out["optimizer"]["state"][1]["exp_avg"]  # stored once
    rng = np.random.default_rng()
    rng.bit_generator.state = out["rng"]
    assert rng.integers(0, 2**62, 5).tolist() == np.random.default_rng(1234).integers(0, 2**62, 5).tolist()


def test_numpy_scalars_become_python_numbers(tmp_path):
    save([np.float32(1.5), np.int64(7), np.bool_(True), np.float64(0.1), np.str_("s")], tmp_path / "s")
    assert_same(load(tmp_path / "s"), [1.5, 7, True, 0.1, "s"])


def test_plain_npz_can_inspect_it(tmp_path):
    save({"w": tg.ones(2)}, tmp_path / "c")
    with np.load(tmp_path / "c", allow_pickle=False) as z:
        assert [z[k].tolist() for k in z.files if k.startswith("arrays/")] == [[1.0, 1.0]]


def test_loads_onto_cpu_device(tmp_path):
    save({"t": tg.ones(2, dtype=tg.float64)}, tmp_path / "c")
    t = load(tmp_path / "c", device="cpu")["t"]
    assert isinstance(t, tg.Tensor) and t.device == "cpu" and t.dtype == tg.float64


@pytest.mark.skipif(not backend.cuda_available(), reason="needs CuPy and a GPU")
def test_cuda_roundtrip(tmp_path):
    ckpt = {"w": tg.randn(3, 4, device="cuda"), "i": tg.tensor([1, 2], device="cuda"), "a": np.ones(2)}
    save(ckpt, tmp_path / "c")
    on_cpu, on_gpu = load(tmp_path / "c"), load(tmp_path / "c", device="cuda")
    assert on_cpu["w"].device == "cpu" and on_gpu["w"].device == "cuda:0"
    assert isinstance(on_gpu["a"], np.ndarray)
    assert_same({k: v.cpu() if isinstance(v, tg.Tensor) else v for k, v in ckpt.items()}, on_cpu)
    assert_same(on_cpu, {k: v.cpu() if isinstance(v, tg.Tensor) else v for k, v in on_gpu.items()})


@pytest.mark.parametrize("obj, where, what", [
    ({"model": {"blocks": [{"w": tg.ones(1)}, {"act": print}]}}, "obj['model']['blocks'][1]['act']", "builtin"),
    ({"state": {3: {"exp_avg": object()}}}, "obj['state'][3]['exp_avg']", "object"),
    ({"x": [(1, {1.5: 2})]}, "obj['x'][0][1]", "key 1.5 has type float"),
    ({"s": {1, 2}}, "obj['s']", "set"),
    ({"a": np.array([None, 1])}, "obj['a']", "pickle"),
    ({"c": np.complex64(1j)}, "obj['c']", "complex"),
])
def test_unsupported_type_names_its_path(tmp_path, obj, where, what):
    with pytest.raises(TypeError) as e:
        save(obj, tmp_path / "c")
    assert where in str(e.value) and what in str(e.value)
    assert os.listdir(tmp_path) == []


def boom(*args, **kwargs):
    raise OSError("disk full")


def interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("failure", ["bad leaf", "write_array", "ctrl-c", "fsync", "replace"])
def test_failed_save_keeps_previous_file(tmp_path, monkeypatch, failure):
    path = tmp_path / "ckpt.tg"
    save(checkpoint(), path)
    before = path.read_bytes()
    ckpt = checkpoint()
    if failure == "bad leaf":
        ckpt["optimizer"]["state"][1]["fn"] = lambda: 0
    else:
        calls = []  # fail on the second array, once the temp file holds part of the checkpoint
        write_array = np.lib.format.write_array
        def second_fails(*a, **k):
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt if failure == "ctrl-c" else OSError("disk full")
            return write_array(*a, **k)
        if failure in ("write_array", "ctrl-c"):
            monkeypatch.setattr(np.lib.format, "write_array", second_fails)
        else:
            monkeypatch.setattr(serialize.os, failure, boom)
    expected = {"bad leaf": TypeError, "ctrl-c": KeyboardInterrupt}.get(failure, OSError)
    with pytest.raises(expected):
        save(ckpt, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.tg"]  # no temp file left behind


def test_save_needs_an_existing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        save({"a": 1}, tmp_path / "nope" / "c.tg")
    assert os.listdir(tmp_path) == []


def test_save_replaces_and_respects_umask(tmp_path):
    path = tmp_path / "c"
    save({"a": 1}, path)
    save({"a": 2}, str(path))
    assert load(path) == {"a": 2}
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_save_through_a_symlink_keeps_the_link(tmp_path):
    (tmp_path / "runs").mkdir()
    save({"a": 1}, tmp_path / "runs" / "ckpt.tg")
    os.symlink(os.path.join("runs", "ckpt.tg"), tmp_path / "latest.tg")  # relative, as `ln -s` makes it
    save({"a": 2}, tmp_path / "latest.tg")
    assert os.readlink(tmp_path / "latest.tg") == os.path.join("runs", "ckpt.tg")
    assert load(tmp_path / "runs" / "ckpt.tg") == {"a": 2} == load(tmp_path / "latest.tg")
    assert os.listdir(tmp_path / "runs") == ["ckpt.tg"]  # the temp file was beside the target


def test_save_through_a_dangling_symlink_creates_its_target(tmp_path):
    os.symlink("new.tg", tmp_path / "link.tg")
    save({"a": 1}, tmp_path / "link.tg")
    assert (tmp_path / "link.tg").is_symlink() and load(tmp_path / "new.tg") == {"a": 1}


def test_save_never_replaces_what_is_not_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    os.symlink("loop", tmp_path / "loop")
    for name, kind in [("fifo", "a FIFO"), ("dir", "a directory")]:
        with pytest.raises(FileExistsError, match=f"{name}': it is {kind}.*, expected a regular file or a new"):
            save({"a": 1}, tmp_path / name)
    with pytest.raises(OSError, match="symbolic links"):
        save({"a": 1}, tmp_path / "loop")
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo").st_mode) and (tmp_path / "loop").is_symlink()
    assert sorted(os.listdir(tmp_path)) == ["dir", "fifo", "loop"]


def test_nesting_limit_is_the_same_for_save_and_load(tmp_path):
    deep = tg.ones(1)
    for _ in range(serialize.MAX_DEPTH - 1):
        deep = [deep]  # the Tensor sits MAX_DEPTH - 1 lists down: the deepest save writes
    save(deep, tmp_path / "c")
    out = load(tmp_path / "c")
    for _ in range(serialize.MAX_DEPTH - 1):
        [out] = out
    assert out.tolist() == [1.0]
    with pytest.raises(ValueError, match=f"nests deeper than {serialize.MAX_DEPTH} levels"):
        save([deep], tmp_path / "c")
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match=r"obj\['x'\]\[0\]\[0\].*hold itself"):
        save({"x": loop}, tmp_path / "c")


def test_tree_size_limit_is_the_same_for_save_and_load(tmp_path, monkeypatch):
    monkeypatch.setattr(serialize, "MAX_TREE_BYTES", 1000)
    save({"s": "x" * 800}, tmp_path / "c")
    with pytest.raises(ValueError, match="bytes of JSON, more than load accepts .1000.; store bulk data"):
        save({"s": "x" * 1000}, tmp_path / "c")
    monkeypatch.setattr(serialize, "MAX_TREE_BYTES", 500)
    with pytest.raises(CheckpointError, match="tinygrad_tf.json is 8.. bytes; expected at most 500"):
        load(tmp_path / "c")


@contextlib.contextmanager
def time_limit(seconds):
    """Fail instead of hanging (a blocked open of a FIFO never returns by itself)."""
    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_load_refuses_special_files_without_opening_them(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with time_limit(5):
        for path, kind in [(tmp_path / "fifo", "a FIFO"), ("/dev/zero", "a character device"),
                           (tmp_path, "a directory")]:
            with pytest.raises(CheckpointError, match=f"{os.path.basename(path)}': it is {kind}.*, "
                                                      f"expected a regular file"):
                load(path)


def test_load_checks_the_opened_file_too(tmp_path, monkeypatch):
    """Should the path become a FIFO between the check and the open, O_NONBLOCK keeps the open
    from waiting for a writer, and the check of the open file refuses it."""
    save({"a": 1}, tmp_path / "good.tg")
    os.mkfifo(tmp_path / "fifo")
    real_stat = os.stat
    def stale_stat(path, *args, **kwargs):  # what os.stat said just before the swap
        return real_stat(tmp_path / "good.tg" if os.fspath(path) == os.fspath(tmp_path / "fifo") else path,
                         *args, **kwargs)
    monkeypatch.setattr(serialize.os, "stat", stale_stat)
    with time_limit(5), pytest.raises(CheckpointError, match="it is a FIFO"):
        load(tmp_path / "fifo")


def make_temp(directory, pid, age_s, target="ckpt.tg", suffix=serialize.TEMP_SUFFIX):
    """A file named as a save's temp file, last written `age_s` ago."""
    path = directory / f".{target}.{pid}.{secrets.token_hex(6)}{suffix}"
    path.write_bytes(b"half a checkpoint")
    os.utime(path, (time.time() - age_s,) * 2)
    return path


def test_save_removes_only_our_stale_temp_files(tmp_path):
    gone = 999_999_999  # above any pid_max: no such process
    old = serialize.STALE_AFTER_S + 60
    before_us = old + time.time() - serialize._IMPORTED
    stale = [make_temp(tmp_path, gone, old), make_temp(tmp_path, gone, old, target="other.tg"),
             make_temp(tmp_path, os.getpid(), before_us)]  # our pid, written before we started
    kept = [make_temp(tmp_path, gone, 60),  # recent: may be a live save on another machine
            make_temp(tmp_path, os.getppid(), old),  # its writer is alive (perhaps stopped)
            make_temp(tmp_path, gone, old, suffix=".tmp"),  # not our suffix
            tmp_path / "notes.tinygrad_tf-tmp"]  # not our pattern
    kept[-1].write_text("mine")
    os.utime(kept[-1], (time.time() - old,) * 2)
    link = tmp_path / f".x.{gone}.{'0' * 12}{serialize.TEMP_SUFFIX}"  # our name, but a symlink
    os.symlink(kept[-1].name, link)
    os.utime(link, (time.time() - old,) * 2, follow_symlinks=False)
    directory = tmp_path / f".y.{gone}.{'1' * 12}{serialize.TEMP_SUFFIX}"  # our name, but a directory
    directory.mkdir()
    os.utime(directory, (time.time() - old,) * 2)
    save({"a": 1}, tmp_path / "ckpt.tg")
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept) and link.is_symlink() and directory.is_dir()
    assert kept[-1].read_text() == "mine"


def test_save_leaves_a_concurrent_saves_temp_file_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(serialize, "STALE_AFTER_S", 0)  # every temp file counts as old
    started, release = threading.Event(), threading.Event()
    write_array = np.lib.format.write_array
    def paused(*args, **kwargs):  # the first save stops mid-write until released
        if threading.current_thread() is not threading.main_thread():
            started.set()
            release.wait(10)
        return write_array(*args, **kwargs)
    monkeypatch.setattr(np.lib.format, "write_array", paused)
    first = threading.Thread(target=save, args=({"w": np.ones(3)}, tmp_path / "a.tg"))
    first.start()
    try:
        assert started.wait(10)
        [tmp] = list(tmp_path.iterdir())
        assert serialize.TEMP_NAME.fullmatch(tmp.name) and f".{os.getpid()}." in tmp.name
        save({"x": 2}, tmp_path / "b.tg")  # same directory, while the first is mid-write
        assert tmp.exists()
    finally:
        release.set()
        first.join()
    assert load(tmp_path / "a.tg")["w"].tolist() == [1, 1, 1]
    assert sorted(os.listdir(tmp_path)) == ["a.tg", "b.tg"]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.tg"):
        load(tmp_path / "missing.tg")


def rewrite(src, dst, **members):
    """Copy a checkpoint zip, replacing (or, with None, dropping) the named members."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            if name not in members:
                zout.writestr(name, zin.read(name))
        for name, data in members.items():
            if data is not None:
                zout.writestr(name, data)


def npy(array, allow_pickle=False):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


PWNED = []


def _pwn():
    PWNED.append("code ran")


class Evil:
    def __reduce__(self):
        return (_pwn, ())


def header(**changes):
    return json.dumps({"format": "tinygrad_tf", "version": 1, "tree": {"tensor": "arrays/0.npy"}, **changes})


@pytest.mark.parametrize("case, message", [
    ("random bytes", "not a zip"),
    ("truncated", "cannot load"),
    ("plain npz", "no tinygrad_tf.json"),
    ("npz with object array", "no tinygrad_tf.json"),
    ("object array member", "allow_pickle"),
    ("newer version", "version 2"),
    ("no format marker", "format"),
    ("missing member", "missing"),
    ("tensor of strings", "dtype <U"),
    ("malformed tree", "malformed"),
    ("not json", "cannot load"),
    ("flipped data byte", "CRC"),
])
def test_bad_files_raise_checkpoint_error(tmp_path, case, message):
    good, bad = tmp_path / "good.tg", tmp_path / "bad.tg"
    save({"w": tg.arange(1000)}, good)
    data = good.read_bytes()
    if case == "random bytes":
        bad.write_bytes(np.random.default_rng(0).bytes(4096))
    elif case == "truncated":
        bad.write_bytes(data[:len(data) // 2])
    elif case == "plain npz":
        with bad.open("wb") as f:
            np.savez(f, w=np.ones(3))
    elif case == "npz with object array":
        with bad.open("wb") as f:
            np.savez(f, w=np.array([Evil()], dtype=object), allow_pickle=True)
    elif case == "object array member":
        rewrite(good, bad, **{"arrays/0.npy": npy(np.array([Evil()], dtype=object), allow_pickle=True)})
    elif case == "newer version":
        rewrite(good, bad, **{"tinygrad_tf.json": header(version=2)})
    elif case == "no format marker":
        rewrite(good, bad, **{"tinygrad_tf.json": header(format="other")})
    elif case == "missing member":
        rewrite(good, bad, **{"arrays/0.npy": None})
    elif case == "tensor of strings":
        rewrite(good, bad, **{"arrays/0.npy": npy(np.array(["a"]))})
    elif case == "malformed tree":
        rewrite(good, bad, **{"tinygrad_tf.json": header(tree={"tensor": "a", "extra": 1})})
    elif case == "not json":
        rewrite(good, bad, **{"tinygrad_tf.json": b"\xff{"})
    elif case == "flipped data byte":
        flipped = bytearray(data)
        flipped[data.index(np.arange(1000).tobytes()) + 4000] ^= 1
        bad.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match=message) as e:
        load(bad)
    assert "bad.tg" in str(e.value)
    assert PWNED == []  # nothing was unpickled


def test_fuzzed_files_load_correctly_or_raise_checkpoint_error(tmp_path):
    """Damage anywhere (zip headers, JSON, npy headers, data) must never pass silently or crash oddly."""
    good, bad = tmp_path / "good.tg", tmp_path / "bad.tg"
    ckpt = {"w": tg.randn(4, 5), "s": {0: {"m": tg.zeros(3, dtype=tg.float64)}}, "t": (1, "x")}
    save(ckpt, good)
    data, rng = good.read_bytes(), np.random.default_rng(0)
    for i in range(300):
        damaged = bytearray(data[:rng.integers(1, len(data))] if i % 3 == 0 else data)
        for pos in rng.integers(len(damaged), size=rng.integers(1, 4)):
            damaged[pos] = rng.integers(256)
        bad.write_bytes(bytes(damaged))
        try:
            assert_same(ckpt, load(bad))
        except CheckpointError:
            pass


def test_float64_round_trips_where_ml_dtypes_is_missing(tmp_path, monkeypatch):
    """Without ml_dtypes there is no bfloat16, and nothing may be taken for one (NumPy reads
    `dtype == None` as float64): float64 arrays and tensors save and load as themselves."""
    monkeypatch.setattr(backend, "_BFLOAT16", None)
    data = {"t": tg.tensor(np.arange(3.0)), "a": np.arange(4.0), "f": tg.ones(2, dtype="float32")}
    save(data, tmp_path / "f64")
    out = load(tmp_path / "f64")
    assert out["t"].dtype == tg.float64 and out["t"].numpy().tolist() == [0.0, 1.0, 2.0]
    assert out["a"].dtype == np.float64 and out["a"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert out["f"].dtype == tg.float32
