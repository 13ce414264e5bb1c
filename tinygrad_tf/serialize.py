"""tg.save / tg.load: checkpoints as a zip of .npy arrays plus a JSON tree. Never pickle.

Why not pickle (what torch.save used for years): unpickling runs whatever code the file
names, so opening a downloaded checkpoint could run anything. Here the structure is JSON
and every array is a plain .npy member read with allow_pickle=False, so loading can only
ever build dicts, lists, tuples, strings, numbers, None, arrays and Tensors.

Layout (an uncompressed zip, so `np.load` and `unzip -l` can peek inside):
    tinygrad_tf.json   {"format": "tinygrad_tf", "version": 1, "tree": <node>}
    arrays/<i>.npy     one member per distinct array or Tensor
A node is a JSON scalar (None, bool, int of any size, float written by repr so it
round-trips exactly, NaN/Infinity included), a JSON list (a Python list), or a one-key
object for what JSON cannot say itself: {"tuple": [...]}, {"dict": [[key, value], ...]}
(pairs keep int keys as ints, and keep order), {"tensor": member} or {"ndarray": member}.

Loading treats the file as hostile: it opens only regular files (a FIFO would block,
/dev/zero never ends), reads only stored members (a deflated one could be a zip bomb) that
fit in the file together, checks each .npy header's shape and dtype against the member's
size before allocating, and caps the JSON tree's size and nesting. So a load costs about
what the file weighs, and anything wrong ends in CheckpointError.
"""
import contextlib
import errno
import json
import math
import os
import re
import secrets
import stat
import time
import zipfile

import numpy as np

from . import backend
from .tensor import Tensor

FORMAT, VERSION, TREE_MEMBER = "tinygrad_tf", 1, "tinygrad_tf.json"
SUPPORTED = "dict, list, tuple, str, int, float, bool, None, numpy arrays and scalars, Tensors"
MAX_TREE_BYTES = 16 * 2**20  # a real tree is a few KB: bulk data belongs in arrays
MAX_DEPTH = 64  # containers within containers; a training checkpoint nests about 5 deep
# Temp files: ".<name>.<pid>.<random>.tinygrad_tf-tmp" beside the target. The suffix marks them
# as ours, the pid says who writes one; see _remove_stale_temps for when one counts as stale.
TEMP_SUFFIX = ".tinygrad_tf-tmp"
TEMP_NAME = re.compile(r"\..*\.(\d{1,9})\.[0-9a-f]{12}" + re.escape(TEMP_SUFFIX), re.DOTALL)
STALE_AFTER_S = 3600
_IMPORTED = time.time()  # no temp file this process writes is older than this
_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}
_NOT_REGULAR = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                (stat.S_ISSOCK, "a socket"))


class CheckpointError(ValueError):
    """A file that is not a readable tinygrad_tf checkpoint (corrupt, truncated, foreign, newer)."""


def _not_regular(mode):
    """What a file of this st_mode is, or None for a regular file (the only kind we read or replace)."""
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _NOT_REGULAR if test(mode)), f"not a regular file (mode {mode:o})")


def _encode(obj, where, arrays, seen, depth=0):
    """Check `obj` and turn it into a JSON node, collecting its arrays; `where` names it in errors.

    Runs over the whole tree before anything is written, so a bad leaf costs no I/O.
    """
    if isinstance(obj, np.generic) and obj.dtype.kind in "biufU":
        obj = obj.item()  # a numpy scalar becomes the Python number (or str) it stands for
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    if depth >= MAX_DEPTH:
        raise ValueError(f"cannot save {where}: it nests deeper than {MAX_DEPTH} levels, "
                         f"which load refuses (does a container hold itself?)")
    if type(obj) in (list, tuple):
        items = [_encode(x, f"{where}[{i}]", arrays, seen, depth + 1) for i, x in enumerate(obj)]
        return items if type(obj) is list else {"tuple": items}
    if isinstance(obj, dict):  # OrderedDict too; it comes back as a plain dict, in order
        bad = [k for k in obj if type(k) not in (str, int)]
        if bad:
            raise TypeError(f"cannot save {where}: dict key {bad[0]!r} has type "
                            f"{type(bad[0]).__name__}; keys must be str or int")
        return {"dict": [[k, _encode(v, f"{where}[{k!r}]", arrays, seen, depth + 1)]
                         for k, v in obj.items()]}
    if isinstance(obj, (Tensor, np.ndarray)):
        tag = "tensor" if isinstance(obj, Tensor) else "ndarray"
        if id(obj) not in seen:  # an object saved twice (tied weights) is stored once, loaded once
            array = backend.to_numpy(obj.data) if tag == "tensor" else obj
            if array.dtype.hasobject:
                raise TypeError(f"cannot save {where}: arrays of Python objects would need pickle")
            seen[id(obj)] = f"arrays/{len(arrays)}.npy"
            # .npy knows no bfloat16 (it would write raw 2-byte voids): its bits go as uint16, tagged
            arrays[seen[id(obj)]] = array.view(np.uint16) if backend.is_bfloat16(array.dtype) else array
        node = {tag: seen[id(obj)]}
        return {"bfloat16": node} if backend.is_bfloat16(obj.dtype) else node
    raise TypeError(f"cannot save {where}: unsupported type {type(obj).__module__}."
                    f"{type(obj).__qualname__} (supported: {SUPPORTED})")


def _save_target(path):
    """The file a save to `path` replaces: a symlink's target (so the link survives), and only
    a regular file or a new name (renaming over /dev/null or a FIFO would replace the node)."""
    target = os.path.realpath(path)
    try:
        kind = _not_regular(os.stat(target).st_mode)  # a symlink loop raises ELOOP here
    except FileNotFoundError:
        kind = None
    if kind:
        it = "it" if target == os.path.abspath(path) else f"its target {target!r}"
        raise FileExistsError(f"cannot save to {path!r}: {it} is {kind}, expected a regular file or a new name")
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save to {path!r}: directory {directory!r} does not exist")
    return target


def _writer_gone(pid, mtime):
    """Whether the process that named a temp file can no longer be writing it."""
    if pid == os.getpid():  # our pid, but written before we started: an earlier process with our pid
        return mtime < _IMPORTED
    if os.name == "nt":  # there os.kill(pid, 0) would terminate the process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: alive, another user's
        pass
    return False


def _remove_stale_temps(directory):
    """Delete temp files that a killed save (SIGKILL, power loss) left in `directory`.

    A file is removed only if its name is ours, it is a regular file, nothing wrote to it for
    STALE_AFTER_S, AND its writer's pid is gone. Both conditions, because each alone can hit a
    live save: the pid may belong to another machine sharing the directory (NFS) or to another
    container, and a live writer can sit still (stopped, a slow fsync). A pid reused by an
    unrelated process only keeps a stale file until that process ends.
    """
    now = time.time()
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            match = TEMP_NAME.fullmatch(entry.name)
            if not match:
                continue
            with contextlib.suppress(OSError):  # vanished, or another save removed it first
                st = entry.stat(follow_symlinks=False)
                if (stat.S_ISREG(st.st_mode) and now - st.st_mtime > STALE_AFTER_S
                        and _writer_gone(int(match[1]), st.st_mtime)):
                    os.unlink(entry.path)


def save(obj, path):
    """Write `obj` (e.g. {"model": model.state_dict(), "optimizer": opt.state_dict(), ...}) to `path`.

    Atomic: the file is written beside `path` under a temporary name, synced to disk, then
    renamed over `path`, so a crash, an error or Ctrl-C mid-save leaves the previous
    checkpoint intact and no temporary file behind (a SIGKILL's leftover is removed by a later
    save into the same directory). A symlink stays a symlink: its target is replaced. The
    parent directory must exist; an existing `path` must be a regular file.
    """
    path = os.fspath(path)
    arrays = {}
    tree = _encode(obj, "obj", arrays, {})
    header = json.dumps({"format": FORMAT, "version": VERSION, "tree": tree}, allow_nan=True,
                        ensure_ascii=True)  # ASCII keeps even lone surrogates in str exact
    if len(header) > MAX_TREE_BYTES:
        raise ValueError(f"cannot save to {path!r}: the tree is {len(header)} bytes of JSON, more than "
                         f"load accepts ({MAX_TREE_BYTES}); store bulk data as numpy arrays")
    target = _save_target(path)
    directory = os.path.dirname(target)
    _remove_stale_temps(directory)
    # open(..., "x") rather than tempfile.mkstemp: same exclusive create, but the file gets
    # the usual umask permissions instead of mkstemp's owner-only 0600.
    name = f".{os.path.basename(target)[:40]}.{os.getpid()}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
    tmp = os.path.join(directory, name)
    f = open(tmp, "xb")
    try:
        with f:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                zf.writestr(TREE_MEMBER, header)
                for name, array in arrays.items():
                    with zf.open(name, "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, array, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:  # KeyboardInterrupt too: never leave half a file behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _open_regular(path):
    """Open `path` for reading if it is a regular file; return the file and its size.

    Checked before opening (opening a device can have effects of its own), and again on the
    open file in case the path changed in between; O_NONBLOCK so that even then a FIFO
    cannot block the open.
    """
    try:
        kind = _not_regular(os.stat(path).st_mode)
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise  # FileNotFoundError, PermissionError: the usual OSErrors of open()
        raise CheckpointError(f"cannot load {path!r}: it is a loop of symbolic links, "
                              f"expected a regular file") from e
    if not kind:
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        f = os.fdopen(os.open(path, flags), "rb")
        st = os.fstat(f.fileno())
        kind = _not_regular(st.st_mode)
        if not kind:
            return f, st.st_size
        f.close()
    raise CheckpointError(f"cannot load {path!r}: it is {kind}, expected a regular file")


def _check_members(zf, file_size):
    """Refuse members that could cost more to read than the file weighs: compressed ones (a
    zip bomb), sizes that do not fit in the file, and repeated names (which one is meant?)."""
    if TREE_MEMBER not in zf.NameToInfo:
        raise ValueError(f"it has no {TREE_MEMBER} member: not a tinygrad_tf checkpoint "
                         f"(a plain .npz or another zip?)")
    names, total = set(), 0
    for info in zf.infolist():
        name = info.filename
        if name in names:
            raise ValueError(f"member {name!r} appears twice; expected unique member names")
        names.add(name)
        if info.compress_type != zipfile.ZIP_STORED:
            raise ValueError(f"member {name!r} is compressed (zip method {info.compress_type}); "
                             f"expected stored (method 0), which is all save writes")
        if info.flag_bits & 0x1:
            raise ValueError(f"member {name!r} is encrypted; expected a plain member")
        if info.file_size != info.compress_size:
            raise ValueError(f"member {name!r} claims {info.file_size} bytes stored in "
                             f"{info.compress_size}; expected equal sizes for a stored member")
        total += info.compress_size
    if total > file_size:
        raise ValueError(f"its members claim {total} bytes, but the file holds only {file_size}")


def _read_tree(zf):
    """The parsed JSON tree member, refused when larger than MAX_TREE_BYTES or nested too deep to parse."""
    size = zf.NameToInfo[TREE_MEMBER].file_size
    if size > MAX_TREE_BYTES:
        raise ValueError(f"{TREE_MEMBER} is {size} bytes; expected at most {MAX_TREE_BYTES}")
    raw = zf.read(TREE_MEMBER)
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError(f"{TREE_MEMBER} nests too deep to parse; expected at most {MAX_DEPTH} "
                         f"levels") from None


def _read_array(zf, tag, name):
    """One .npy member as an array (or Tensor), its header checked against its size before
    anything is allocated: a 300-byte member must not make us allocate 4 TB."""
    info = zf.NameToInfo.get(name)
    if info is None:
        raise ValueError(f"the tree refers to array member {name!r}, which is missing")
    with zf.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            if version not in _NPY_HEADER_READERS:
                raise ValueError(f"format {version}, expected (1, 0) or (2, 0)")
            shape, fortran_order, dtype = _NPY_HEADER_READERS[version](member)
        except zipfile.BadZipFile:  # a bad CRC: the zip's problem, not the header's
            raise
        except Exception as e:  # on junk, numpy's parser raises what its parts do (ast, tokenize, dtype)
            raise ValueError(f"member {name!r} has an unreadable .npy header: {e or type(e).__name__}") from e
        if dtype.hasobject:
            raise ValueError(f"member {name!r} has dtype {dtype} (Python objects), which only pickle "
                             f"could read; we read with allow_pickle=False")
        if tag == "tensor" and dtype not in backend.DTYPES.values():
            raise ValueError(f"member {name!r} has dtype {dtype}, which a Tensor cannot hold")
        count = math.prod(shape)
        if not all(0 <= n < 2**63 for n in shape) or count >= 2**63:
            raise ValueError(f"member {name!r} has shape {shape}; expected sizes >= 0 whose "
                             f"product, and each, is below 2**63")
        expected, found = count * dtype.itemsize, info.file_size - member.tell()
        if expected != found:
            raise ValueError(f"member {name!r} says shape {shape} of {dtype}, which is {expected} "
                             f"bytes of data, but holds {found}")
        # Checked, so this allocates no more than the member holds. np.ndarray, not np.empty,
        # which mishandles zero-width strings (numpy#6430). Chunks, to need no second copy.
        array = np.ndarray(count, dtype)
        flat = array.view(np.uint8) if dtype.itemsize else array[:0]
        for start in range(0, expected, 2**20):  # the last read ends the member: zipfile checks its CRC
            flat[start:start + 2**20] = np.frombuffer(member.read(2**20), np.uint8)
    array = array.reshape(shape[::-1]).T if fortran_order else array.reshape(shape)
    return array if tag == "ndarray" else Tensor._wrap(array)


def _read_bfloat16(zf, tag, name):
    """A bfloat16 array (or Tensor), stored as its uint16 bits."""
    bits = _read_array(zf, "ndarray", name)
    if bits.dtype != np.uint16:
        raise ValueError(f"member {name!r} is tagged bfloat16 but holds {bits.dtype}, expected its uint16 bits")
    array = bits.view(backend.bfloat16())
    return array if tag == "ndarray" else Tensor._wrap(array)


def _decode(node, zf, loaded, depth=0):
    """Inverse of _encode; anything it does not recognise is a corrupt file, never guessed at."""
    if node is None or type(node) in (bool, int, float, str):
        return node
    if depth >= MAX_DEPTH:  # the limit save keeps to; also keeps this recursion short
        raise ValueError(f"{TREE_MEMBER} nests deeper than {MAX_DEPTH} levels; expected at most {MAX_DEPTH}")
    if type(node) is list:
        return [_decode(x, zf, loaded, depth + 1) for x in node]
    if type(node) is dict and len(node) == 1:
        (tag, value), = node.items()
        if tag == "tuple" and type(value) is list:
            return tuple(_decode(x, zf, loaded, depth + 1) for x in value)
        if tag == "dict" and type(value) is list and all(
                type(p) is list and len(p) == 2 and type(p[0]) in (str, int) for p in value):
            return {k: _decode(v, zf, loaded, depth + 1) for k, v in value}
        if tag in ("tensor", "ndarray") and type(value) is str:
            if (tag, value) not in loaded:
                loaded[tag, value] = _read_array(zf, tag, value)
            return loaded[tag, value]
        if tag == "bfloat16" and type(value) is dict and len(value) == 1:
            (inner, name), = value.items()
            if inner in ("tensor", "ndarray") and type(name) is str:
                if (tag, inner, name) not in loaded:
                    loaded[tag, inner, name] = _read_bfloat16(zf, inner, name)
                return loaded[tag, inner, name]
    raise ValueError(f"malformed node in {TREE_MEMBER}: {json.dumps(node)[:100]}")


def _reason(e):
    """What to say for an exception from reading a damaged zip (zipfile's EOFError says nothing)."""
    if isinstance(e, EOFError) and not str(e):
        return "a member's data ends before its stated size: the file is cut short or corrupt"
    if isinstance(e, OSError) and e.errno == errno.EINVAL:
        return f"a zip offset points before the file's start ({e})"
    return str(e)


def load(path, device="cpu", *, map_location=None, weights_only=True):
    """Read a file written by `save`. Tensors come back as leaves on `device` that do not
    require grad; numpy arrays stay numpy arrays; tuples, int dict keys and dtypes round-trip.
    torch's spellings work too: map_location= is device=, and weights_only is always true here
    (no pickle: a checkpoint can only hold data), so either value is accepted.

    Raises FileNotFoundError for a missing file and CheckpointError for anything that is not
    an intact checkpoint of a version this code knows, without blocking or allocating much
    more than the file's size, whatever the file holds.
    """
    device = backend.parse_device(device if map_location is None else map_location)
    path = os.fspath(path)
    loaded = {}
    f, file_size = _open_regular(path)
    with f:
        try:
            with zipfile.ZipFile(f) as zf:
                _check_members(zf, file_size)
                header = _read_tree(zf)
                if type(header) is not dict or header.get("format") != FORMAT or "tree" not in header:
                    raise ValueError(f"{TREE_MEMBER} lacks the marker \"format\": \"{FORMAT}\" or the tree")
                version = header.get("version")
                if type(version) is not int or version < 1:
                    raise ValueError(f"unknown format version {version!r}")
                if version > VERSION:
                    raise ValueError(f"it has format version {version}, but this tinygrad_tf reads "
                                     f"versions up to {VERSION}; upgrade tinygrad_tf")
                obj = _decode(header["tree"], zf, loaded)
        # What a damaged zip can raise. OSError: a corrupt offset seeks before the file's start;
        # RuntimeError: a zip feature we do not read; EOFError: a member cut short.
        except (ValueError, KeyError, EOFError, OSError, RuntimeError, zipfile.BadZipFile) as e:
            raise CheckpointError(f"cannot load {path!r}: {_reason(e)}") from e
    for value in loaded.values():  # only now touch the device, so its errors stay its own
        if isinstance(value, Tensor):
            value.data = backend.to_device(value.data, device)
    return obj
