"""Fuzzing tg.load with hostile files (issue 14): each case loads correctly or raises CheckpointError.

Never another exception type, never a hang, never a big allocation. Every load runs under a
SIGALRM timer (a hang fails its case instead of stalling the suite) and under tracemalloc,
which sees numpy's array buffers too, so a header that tricks load into allocating a gigabyte
fails here even where the OS would grant it lazily. Seeded and deterministic; a few seconds.
Run with -s to see how many cases ran.
"""
import io
import json
import os
import re
import signal
import socket
import stat
import struct
import tempfile
import tracemalloc
import warnings
import zipfile
import zlib

import numpy as np
import pytest

import tinygrad_tf as tg
from tinygrad_tf.serialize import MAX_DEPTH, MAX_TREE_BYTES, TREE_MEMBER, CheckpointError, load, save

TIME_LIMIT_S = 2.0  # a load of these few-KB files takes about a millisecond
MEMORY_LIMIT = 8 * 2**20  # such a load needs well under 1 MB; a bomb would need far more
REFUSED = "refused"
CASES = {}  # category -> cases run, printed at the end of the module


class Hang(BaseException):
    """Raised by the timer when a load does not return (a BaseException: nothing may swallow it)."""


def _alarm(signum, frame):
    raise Hang(f"load did not return within {TIME_LIMIT_S} s")


@pytest.fixture(scope="module", autouse=True)
def guards():
    previous = signal.signal(signal.SIGALRM, _alarm)
    yield
    signal.signal(signal.SIGALRM, previous)
    print(f"\ncheckpoint fuzz: {sum(CASES.values())} cases run: {CASES}")


def run(path, category, what=""):
    """Load `path` under the timer and the memory meter: the object, or REFUSED for a
    CheckpointError that names the file. Any other exception fails the test, naming the case."""
    CASES[category] = CASES.get(category, 0) + 1
    tracemalloc.start()
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT_S)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns about headers it had to repair
            result = load(path)
    except CheckpointError as e:
        result = e
    except (Exception, Hang) as e:
        raise AssertionError(f"{category} {what}: load raised {type(e).__name__}: {e}") from e
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT, f"{category} {what}: load allocated {peak} bytes"
    if isinstance(result, CheckpointError):
        assert repr(os.fspath(path)) in str(result), f"{category} {what}: {result} does not name the file"
        return REFUSED
    return result


def sample():
    """A small checkpoint with each kind of leaf (Tensors, numpy arrays, scalars) and nesting;
    four arrays, as each one read costs about half a millisecond."""
    rng = np.random.default_rng(0)
    return {"model": {"w": tg.tensor(rng.standard_normal((4, 5)).astype(np.float32)),
                      "idx": tg.tensor([1, 2**40], dtype=tg.int64)},
            "arrays": (np.asfortranarray(np.arange(6, dtype=np.uint8).reshape(2, 3)), np.array("héllo")),
            "step": 7, "cfg": {0: [1.5, None, "x"], "deep": {"t": (True, -2**70)}}}


def same(a, b):
    """Exact equality: types (tuple is not list, 1 is not True), dict order, dtypes and bits."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, tg.Tensor):
        a, b = a.numpy(), b.numpy()
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return repr(a) == repr(b)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """The sample, its file's bytes and its members."""
    path = tmp_path_factory.mktemp("good") / "good.tg"
    save(sample(), path)
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    return sample(), path.read_bytes(), members


def zip_of(members, method=zipfile.ZIP_STORED):
    """A zip made by zipfile (so its CRCs are right) from {name: bytes}, or a list of pairs."""
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", method) as zf:
        warnings.simplefilter("ignore")  # "Duplicate name", on purpose
        for name, data in members.items() if isinstance(members, dict) else members:
            zf.writestr(name, data)
    return buf.getvalue()


def raw_zip(members, entries=None):
    """A zip written field by field, so that any field can lie. Each member is a dict: name,
    data, and optionally method, flags, crc, csize and size (the sizes claimed) and offset
    (where its central entry says it starts). `entries` overrides the entry count."""
    local, central = bytearray(), bytearray()
    for m in members:
        name, data = m["name"].encode(), m["data"]
        fields = struct.pack("<HHHHHIII", 20, m.get("flags", 0), m.get("method", 0), 0, 0,
                             m.get("crc", zlib.crc32(data)), m.get("csize", len(data)), m.get("size", len(data)))
        offset = m.get("offset", len(local))
        local += b"PK\x03\x04" + fields + struct.pack("<HH", len(name), 0) + name + data
        central += (b"PK\x01\x02" + struct.pack("<H", 20) + fields
                    + struct.pack("<HHHHHII", len(name), 0, 0, 0, 0, 0, offset) + name)
    n = len(members) if entries is None else entries
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, n, n, len(central), len(local), 0)
    return bytes(local + central + end)


def tree(node, **header):
    return json.dumps({"format": "tinygrad_tf", "version": 1, "tree": node, **header}).encode()


def npy(header, data=b"", version=1):
    """A .npy member with a hand-written header (a dict literal, or any text)."""
    text = header if isinstance(header, str) else repr(header)
    size = struct.pack("<H", len(text)) if version == 1 else struct.pack("<I", len(text))
    return b"\x93NUMPY" + bytes([version, 0]) + size + text.encode("latin1") + data


def hdr(descr="<f4", shape=(2,), fortran_order=False):
    return {"descr": descr, "fortran_order": fortran_order, "shape": shape}


def write(tmp_path, data, name="case.tg"):
    """The case's bytes in a file, written in place and then cut to length: rewriting with
    O_TRUNC makes ext4 flush the file to disk (auto_da_alloc), about 3 ms a case."""
    path = tmp_path / name
    path.touch()
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate()
    return path


def test_byte_flips_load_exactly_or_are_refused(tmp_path, good):
    """Random bytes changed anywhere (zip headers, JSON, npy headers, data): the zip's CRCs
    and our checks catch what matters; a flip in a field nobody reads loads the same object."""
    obj, data, _ = good
    rng = np.random.default_rng(1401)
    outcomes = {"loaded": 0, REFUSED: 0}
    for case in range(800):
        damaged = bytearray(data)
        for pos in rng.integers(len(data), size=rng.integers(1, 4)):
            damaged[pos] ^= int(rng.integers(1, 256))
        out = run(write(tmp_path, bytes(damaged)), "byte flip", f"case {case}")
        assert out is REFUSED or same(obj, out), f"byte flip case {case} loaded something else"
        outcomes["loaded" if out is not REFUSED else REFUSED] += 1
    assert outcomes[REFUSED] > 500, outcomes  # most bytes matter


def test_truncations_are_refused_and_padding_is_harmless(tmp_path, good):
    obj, data, _ = good
    for n in range(len(data)):  # every prefix: the end record is gone or cut
        assert run(write(tmp_path, data[:n]), "truncation", f"at {n}") is REFUSED
    rng = np.random.default_rng(1402)
    for case in range(100):  # junk before (a zip may follow other data) or after the zip
        junk = rng.bytes(int(rng.integers(1, 5000)))
        out = run(write(tmp_path, junk + data if case % 2 else data + junk), "padding", f"case {case}")
        assert out is REFUSED or same(obj, out)


def test_mutated_members_with_valid_crcs(tmp_path, good):
    """Damage inside one member, re-zipped so the CRC is right: the npy header parser, the size
    checks and the JSON tree are on their own. Whatever loads is fine; only how it fails matters."""
    _, _, members = good
    names = sorted(members)
    rng = np.random.default_rng(1403)
    for case in range(600):
        name = names[case % len(names)]
        member = bytearray(members[name])
        action = case % 5
        if action == 0:  # cut short or extended
            member = member[:rng.integers(len(member))] if rng.random() < 0.5 else member + rng.bytes(8)
        else:  # flips, mostly in the first 128 bytes: magic, header length, header dict
            span = min(len(member), 128) if action < 4 else len(member)
            for pos in rng.integers(span, size=rng.integers(1, 4)):
                member[pos] = int(rng.integers(256))
        run(write(tmp_path, zip_of({**members, name: bytes(member)})), "member mutation", f"{name} case {case}")


FORGED_NPY = [  # (what, member, tag, "ok" or the error's words)
    ("claims 10**12 floats in 300 bytes", npy(hdr(shape=(10**12,)), bytes(200)), "tensor", "4000000000000 bytes"),
    ("claims 2**62 x 4", npy(hdr(shape=(2**62, 4)), bytes(8)), "tensor", "2**63"),
    ("claims a 1 GiB array", npy(hdr("<f8", (2**27,)), bytes(64)), "tensor", "1073741824 bytes"),
    ("negative dimension", npy(hdr(shape=(-1,)), bytes(4)), "tensor", "shape (-1,)"),
    ("two negative dimensions", npy(hdr(shape=(-2, -2)), bytes(16)), "tensor", "shape (-2, -2)"),
    ("zero times huge", npy(hdr(shape=(0, 10**20)), b""), "ndarray", "2**63"),
    ("zero-size items, huge count", npy(hdr("|V0", (10**12, 10**12)), b""), "ndarray", "2**63"),
    ("too few bytes", npy(hdr(shape=(3,)), bytes(8)), "tensor", "holds 8"),
    ("trailing bytes", npy(hdr(shape=(2,)), bytes(12)), "tensor", "holds 12"),
    ("float64 header on float32 data", npy(hdr("<f8", (3,)), bytes(12)), "tensor", "24 bytes"),
    ("int32 header on float32 data", npy(hdr("<i4", (2,)), bytes(8)), "tensor", "ok"),
    ("object dtype", npy(hdr("|O", (1,)), bytes(8)), "ndarray", "allow_pickle"),
    ("object field", npy(hdr([("a", "|O")], (1,)), bytes(8)), "ndarray", "allow_pickle"),
    ("pickled payload", npy(hdr("|O", (1,)), b"\x80\x04cos\nsystem\n."), "ndarray", "allow_pickle"),
    ("string dtype for a Tensor", npy(hdr("<U1", (1,)), bytes(4)), "tensor", "dtype <U1"),
    ("big-endian Tensor", npy(hdr(">f4", (2,)), bytes(8)), "tensor", "dtype >f4"),
    ("unknown dtype", npy(hdr("<f99", (1,)), bytes(8)), "ndarray", "descr"),
    ("huge string itemsize", npy(hdr("<U999999999999", (1,)), bytes(8)), "ndarray", "descr"),
    ("huge subarray dtype", npy(hdr(("<f8", (10**6, 10**6)), (1,)), bytes(8)), "ndarray", "C int"),
    ("huge structured offset", npy("{'descr': {'names': ['a'], 'formats': ['<f4'], 'offsets': [2**40], "
                                   "'itemsize': 2**40 + 4}, 'fortran_order': False, 'shape': (1,)}"),
     "ndarray", "cannot load"),
    ("repeated field names", npy(hdr([("a", "<f4"), ("a", "<f4")], (1,)), bytes(8)), "ndarray", "cannot load"),
    ("fortran order true, C data", npy(hdr(shape=(2, 3), fortran_order=True), bytes(24)), "tensor", "ok"),
    ("fortran order not a bool", npy(hdr(fortran_order=None), bytes(8)), "tensor", "fortran_order"),
    ("shape a list", npy(hdr(shape=[2]), bytes(8)), "tensor", "shape"),
    ("shape of 70 dims", npy(hdr(shape=(1,) * 70), bytes(4)), "ndarray", "dimension"),
    ("shape a 5000-digit int", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (" + "9" * 5000 + ",)}"),
     "ndarray", "cannot load"),
    ("header an expression", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (10**12,)}"),
     "tensor", "malformed"),
    ("header a call", npy("__import__('os').system('false')"), "tensor", "cannot load"),
    ("header not a dict", npy("[1, 2]", bytes(8)), "tensor", "not a dictionary"),
    ("header with an extra key", npy({**hdr(), "x": 1}, bytes(8)), "tensor", "keys"),
    ("header missing a key", npy({"descr": "<f4", "shape": (2,)}, bytes(8)), "tensor", "keys"),
    ("header 20,000 bytes", npy(repr(hdr()) + " " * 20000, bytes(8)), "tensor", "large"),
    ("unbalanced header", npy("(" * 300, bytes(8)), "tensor", "unreadable .npy header"),
    ("header length 2 GiB", b"\x93NUMPY\x02\x00\xff\xff\xff\x7f{", "tensor", "EOF"),
    ("version 2.0", npy(hdr(), bytes(8), version=2), "tensor", "ok"),
    ("version 3.0", npy(hdr(), bytes(8), version=3), "tensor", "(3, 0)"),
    ("version 9.0", npy(hdr(), bytes(8), version=9), "tensor", "format (9, 0)"),
    ("bad magic", b"\x93NUMPZ\x01\x00" + bytes(8), "tensor", "magic"),
    ("empty member", b"", "tensor", "EOF"),
    ("datetimes", npy(hdr("<M8[ns]", (2,)), bytes(16)), "ndarray", "ok"),
]


@pytest.mark.parametrize("what, member, tag, expected", FORGED_NPY, ids=[c[0] for c in FORGED_NPY])
def test_forged_npy_headers(tmp_path, what, member, tag, expected):
    """Headers written by hand, zipped with the right CRCs: checked before anything is allocated."""
    path = write(tmp_path, zip_of({TREE_MEMBER: tree({tag: "arrays/0.npy"}), "arrays/0.npy": member}))
    out = run(path, "forged npy", what)
    if expected == "ok":
        assert out is not REFUSED
    else:
        assert out is REFUSED
        with pytest.raises(CheckpointError, match=re.escape(expected)):
            load(path)


def deflate_bomb(mib):
    """A raw deflate stream of a .npy member holding `mib` MiB of zeros, in about `mib` KB, and
    its inflated size: after a full flush the compressor starts afresh, so each MiB compresses
    to the same bytes."""
    header = npy(hdr("<f8", (mib * 2**17,)))
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(2**20)) + c.flush(zlib.Z_FULL_FLUSH)
    return head + block * mib + c.flush(), len(header) + mib * 2**20


def test_deflate_bomb_is_what_we_think():
    bomb, size = deflate_bomb(16)
    assert size == len(zlib.decompress(bomb, -15))
    array = np.lib.format.read_array(io.BytesIO(zlib.decompress(bomb, -15)))
    assert len(bomb) < 2**24 // 500 and array.shape == (2**21,) and not array.any()


def zip_cases(members):
    """Zip-level forgeries: (what, file bytes, "ok" or the error's words)."""
    t, a = members[TREE_MEMBER], members["arrays/0.npy"]
    honest = [{"name": n, "data": d} for n, d in members.items()]
    bomb, size = deflate_bomb(1024)  # a 1 GiB array in about 1 MB
    return [
        ("hand-built honest zip", raw_zip(honest), "ok"),
        ("deflate bomb: 1 GiB array member", raw_zip([{"name": TREE_MEMBER, "data": t},
                                                      {"name": "arrays/0.npy", "data": bomb, "method": 8,
                                                       "size": size, "crc": 0}]), "compressed"),
        ("deflate bomb that claims 100 bytes", raw_zip([{"name": TREE_MEMBER, "data": t},
                                                        {"name": "arrays/0.npy", "data": bomb, "method": 8,
                                                         "size": 100, "crc": 0}]), "compressed"),
        ("honest deflated members", zip_of(members, zipfile.ZIP_DEFLATED), "compressed"),
        ("bzip2 member", zip_of(members, zipfile.ZIP_BZIP2), "compressed"),
        ("lzma member", zip_of(members, zipfile.ZIP_LZMA), "compressed"),
        ("method 99 (AES)", raw_zip([{**m, "method": 99} for m in honest]), "compressed"),
        ("encrypted flag", raw_zip([{**m, "flags": 1} for m in honest]), "encrypted"),
        ("stored sizes differ", raw_zip([{**honest[0], "size": len(t) + 1}] + honest[1:]), "equal sizes"),
        ("stored member claims 4 GiB",
         raw_zip([{**honest[0], "size": 2**32 - 16, "csize": 2**32 - 16}] + honest[1:]), "file holds only"),
        ("members claim more than the file",
         raw_zip(honest + [{"name": "x", "data": b"", "size": 10**6, "csize": 10**6, "offset": 0}]),
         "file holds only"),
        ("duplicate array member", zip_of([(TREE_MEMBER, t), ("arrays/0.npy", a), ("arrays/0.npy", a)]), "twice"),
        ("duplicate tree member", zip_of([(TREE_MEMBER, t), ("arrays/0.npy", a), (TREE_MEMBER, t)]), "twice"),
        ("entry pointing at another member", raw_zip([honest[0], {**honest[1], "offset": 0}]), "differ"),
        ("entry pointing past the end", raw_zip([honest[0], {**honest[1], "offset": 10**6}]), "cannot load"),
        ("entry count lies", raw_zip(honest, entries=1000), "ok"),  # zipfile reads the entries there are
        ("end record only", b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 9, 9, 2**31, 2**31, 0), "cannot load"),
        ("zip64 locator past the end", b"PK\x06\x07" + struct.pack("<IQI", 0, 2**60, 1)
         + b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 1, 1, 0, 0, 0), "cannot load"),
        ("many extra members", raw_zip(honest + [{"name": f"extra/{i}", "data": b"x"} for i in range(3000)]),
         "ok"),
        ("a path-traversal member name", zip_of({**members, "../../etc/passwd": b"x"}), "ok"),
        ("plain npz", zip_of({"arrays/0.npy": a}), f"no {TREE_MEMBER}"),
        ("empty zip", zip_of({}), f"no {TREE_MEMBER}"),
        ("empty file", b"", "not a zip"),
        ("random bytes", np.random.default_rng(1404).bytes(4096), "not a zip"),
    ]


def test_zip_forgeries(tmp_path, good):
    _, _, members = good
    members = {TREE_MEMBER: tree({"dict": [["w", {"tensor": "arrays/0.npy"}]]}),
               "arrays/0.npy": members["arrays/0.npy"]}
    for what, data, expected in zip_cases(members):
        path = write(tmp_path, data)
        out = run(path, "zip forgery", what)
        if expected == "ok":
            assert out is not REFUSED and isinstance(out["w"], tg.Tensor), what
        else:
            assert out is REFUSED, what
            with pytest.raises(CheckpointError, match=expected):
                load(path)


def nested(depth):
    return "[" * depth + "]" * depth


TREE_CASES = [  # (what, JSON bytes, "ok" or the error's words)
    ("lists 100,000 deep", tree(None).replace(b"null", nested(10**5).encode()), "too deep"),
    ("objects 100,000 deep", ('{"a": ' * 10**5 + "1" + "}" * 10**5).encode(), "too deep"),
    ("lists one level too deep", tree(json.loads(nested(MAX_DEPTH + 1))), f"deeper than {MAX_DEPTH}"),
    ("dicts one level too deep",
     tree(json.loads('{"dict": [["k", ' * (MAX_DEPTH + 1) + "1" + "]]}" * (MAX_DEPTH + 1))),
     f"deeper than {MAX_DEPTH}"),
    ("lists as deep as allowed", tree(json.loads(nested(MAX_DEPTH))), "ok"),
    ("a 5000-digit int", tree(None)[:-1] + b', "x": ' + b"9" * 5000 + b"}", "cannot load"),
    ("not a dict", b"[1, 2]", "marker"),
    ("no format", json.dumps({"version": 1, "tree": 1}).encode(), "marker"),
    ("no tree", json.dumps({"format": "tinygrad_tf", "version": 1}).encode(), "marker"),
    ("version as a string", tree(1, version="1"), "version"),
    ("version true", tree(1, version=True), "version"),
    ("version 2**80", tree(1, version=2**80), "upgrade"),
    ("version -1", tree(1, version=-1), "version"),
    ("tensor name not a string", tree({"tensor": 5}), "malformed"),
    ("dict key a float", tree({"dict": [[1.5, 2]]}), "malformed"),
    ("dict key a list", tree({"dict": [[[1], 2]]}), "malformed"),
    ("dict pair of one", tree({"dict": [["a"]]}), "malformed"),
    ("tuple not a list", tree({"tuple": "ab"}), "malformed"),
    ("two tags", tree({"tensor": "arrays/0.npy", "ndarray": "arrays/0.npy"}), "malformed"),
    ("empty object", tree({}), "malformed"),
    ("the tree member as an array", tree({"ndarray": TREE_MEMBER}), "magic"),
    ("a missing member", tree({"tensor": "arrays/9.npy"}), "missing"),
    ("one member 10,000 times", tree([{"tensor": "arrays/0.npy"}] * 10**4), "ok"),
    ("one member as tensor and ndarray", tree([{"tensor": "arrays/0.npy"}, {"ndarray": "arrays/0.npy"}]), "ok"),
    ("not UTF-8", b'{"format": "\xff"}', "cannot load"),
    ("UTF-16", tree(1).decode().encode("utf-16"), "ok"),
    ("NaN and Infinity", tree([float("nan"), float("-inf")]), "ok"),
    ("empty", b"", "cannot load"),
    ("truncated", tree([1, 2, 3])[:-3], "cannot load"),
]


@pytest.mark.parametrize("what, text, expected", TREE_CASES, ids=[c[0] for c in TREE_CASES])
def test_forged_trees(tmp_path, good, what, text, expected):
    path = write(tmp_path, zip_of({TREE_MEMBER: text, "arrays/0.npy": good[2]["arrays/0.npy"]}))
    out = run(path, "forged tree", what)
    if expected == "ok":
        assert out is not REFUSED
    else:
        assert out is REFUSED
        with pytest.raises(CheckpointError, match=expected):
            load(path)


def test_oversized_tree_is_refused_unread(tmp_path):
    path = write(tmp_path, zip_of({TREE_MEMBER: tree("x" * MAX_TREE_BYTES)}))
    assert run(path, "forged tree", "over MAX_TREE_BYTES") is REFUSED  # the memory meter: it was never read
    with pytest.raises(CheckpointError, match=f"expected at most {MAX_TREE_BYTES}"):
        load(path)


@pytest.fixture
def short_tmp():
    """A short directory name: a Unix socket's path must fit in about 100 bytes."""
    with tempfile.TemporaryDirectory(prefix="tgfz") as d:
        yield d


def special_files(d, good_path):
    """(what, path, "ok" or the error's words) for things that are not regular files."""
    def link(name, target):
        os.symlink(target, os.path.join(d, name))
        return os.path.join(d, name)
    os.mkfifo(os.path.join(d, "fifo"))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(os.path.join(d, "sock"))
    os.mkdir(os.path.join(d, "dir"))
    link("loop_a", os.path.join(d, "loop_b"))
    link("loop_b", os.path.join(d, "loop_a"))
    chain = good_path
    for i in range(20):
        chain = link(f"chain{i}", chain)
    cases = [
        ("FIFO", os.path.join(d, "fifo"), "FIFO"),
        ("symlink to a FIFO", link("to_fifo", os.path.join(d, "fifo")), "FIFO"),
        ("/dev/zero", "/dev/zero", "character device"),
        ("/dev/null", "/dev/null", "character device"),
        ("/dev/urandom", "/dev/urandom", "character device"),
        ("symlink to /dev/zero", link("to_zero", "/dev/zero"), "character device"),
        ("directory", os.path.join(d, "dir"), "directory"),
        ("symlink to a directory", link("to_dir", os.path.join(d, "dir")), "directory"),
        ("socket", os.path.join(d, "sock"), "socket"),
        ("symlink loop", os.path.join(d, "loop_a"), "loop"),
        ("symlink to itself", link("self", os.path.join(d, "self")), "loop"),
        ("20 symlinks to a good file", chain, "ok"),
    ]
    blocks = [e.path for e in os.scandir("/dev") if stat.S_ISBLK(e.stat(follow_symlinks=False).st_mode)][:1]
    cases += [("block device", path, "block device") for path in blocks]  # stat only: never opened
    if os.path.exists("/proc/self/status"):  # says "regular file, 0 bytes", yet has content
        cases.append(("/proc/self/status", "/proc/self/status", "cannot load"))
    return cases, sock


def test_special_files_are_refused_without_blocking(short_tmp, good):
    cases, sock = special_files(short_tmp, os.path.join(short_tmp, "good.tg"))
    with open(os.path.join(short_tmp, "good.tg"), "wb") as f:
        f.write(good[1])
    try:
        for what, path, expected in cases:
            out = run(path, "special file", what)
            if expected == "ok":
                assert same(good[0], out), what
            else:
                assert out is REFUSED, what
                with pytest.raises(CheckpointError, match=expected):
                    load(path)
                if expected != "cannot load":
                    assert "expected a regular file" in str(pytest.raises(CheckpointError, load, path).value)
    finally:
        sock.close()
    assert stat.S_ISFIFO(os.stat(os.path.join(short_tmp, "fifo")).st_mode)  # left as it was


def test_dangling_symlink_is_a_missing_file(tmp_path):
    """The one exception that is not CheckpointError: a missing file stays FileNotFoundError."""
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "dangling")
