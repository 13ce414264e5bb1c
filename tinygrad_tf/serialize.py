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
"""
import contextlib
import json
import os
import secrets
import zipfile
import zlib

import numpy as np

from . import backend
from .tensor import Tensor

FORMAT, VERSION, TREE_MEMBER = "tinygrad_tf", 1, "tinygrad_tf.json"
SUPPORTED = "dict, list, tuple, str, int, float, bool, None, numpy arrays and scalars, Tensors"


class CheckpointError(ValueError):
    """A file that is not a readable tinygrad_tf checkpoint (corrupt, truncated, foreign, newer)."""


def _encode(obj, where, arrays, seen):
    """Check `obj` and turn it into a JSON node, collecting its arrays; `where` names it in errors.

    Runs over the whole tree before anything is written, so a bad leaf costs no I/O.
    """
    if isinstance(obj, np.generic) and obj.dtype.kind in "biufU":
        obj = obj.item()  # a numpy scalar becomes the Python number (or str) it stands for
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    if type(obj) in (list, tuple):
        items = [_encode(x, f"{where}[{i}]", arrays, seen) for i, x in enumerate(obj)]
        return items if type(obj) is list else {"tuple": items}
    if isinstance(obj, dict):  # OrderedDict too; it comes back as a plain dict, in order
        bad = [k for k in obj if type(k) not in (str, int)]
        if bad:
            raise TypeError(f"cannot save {where}: dict key {bad[0]!r} has type "
                            f"{type(bad[0]).__name__}; keys must be str or int")
        return {"dict": [[k, _encode(v, f"{where}[{k!r}]", arrays, seen)] for k, v in obj.items()]}
    if isinstance(obj, (Tensor, np.ndarray)):
        tag = "tensor" if isinstance(obj, Tensor) else "ndarray"
        if id(obj) not in seen:  # an object saved twice (tied weights) is stored once, loaded once
            array = backend.to_numpy(obj.data) if tag == "tensor" else obj
            if array.dtype.hasobject:
                raise TypeError(f"cannot save {where}: arrays of Python objects would need pickle")
            seen[id(obj)] = f"arrays/{len(arrays)}.npy"
            arrays[seen[id(obj)]] = array
        return {tag: seen[id(obj)]}
    raise TypeError(f"cannot save {where}: unsupported type {type(obj).__module__}."
                    f"{type(obj).__qualname__} (supported: {SUPPORTED})")


def save(obj, path):
    """Write `obj` (e.g. {"model": model.state_dict(), "optimizer": opt.state_dict(), ...}) to `path`.

    Atomic: the file is written beside `path` under a temporary name, synced to disk, then
    renamed over `path`, so a crash, an error or Ctrl-C mid-save leaves the previous
    checkpoint intact and no temporary file behind. The parent directory must exist.
    """
    path = os.fspath(path)
    arrays = {}
    tree = _encode(obj, "obj", arrays, {})
    header = json.dumps({"format": FORMAT, "version": VERSION, "tree": tree}, allow_nan=True,
                        ensure_ascii=True)  # ASCII keeps even lone surrogates in str exact
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save to {path!r}: directory {directory!r} does not exist")
    # open(..., "x") rather than tempfile.mkstemp: same exclusive create, but the file gets
    # the usual umask permissions instead of mkstemp's owner-only 0600.
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
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
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt too: never leave half a file behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _read_array(zf, tag, name):
    if name not in zf.NameToInfo:
        raise ValueError(f"the tree refers to array member {name!r}, which is missing")
    with zf.open(name) as member:
        array = np.lib.format.read_array(member, allow_pickle=False)
    if tag == "ndarray":
        return array
    if array.dtype not in backend.DTYPES.values():
        raise ValueError(f"member {name!r} has dtype {array.dtype}, which a Tensor cannot hold")
    return Tensor._wrap(array)


def _decode(node, zf, loaded):
    """Inverse of _encode; anything it does not recognise is a corrupt file, never guessed at."""
    if node is None or type(node) in (bool, int, float, str):
        return node
    if type(node) is list:
        return [_decode(x, zf, loaded) for x in node]
    if type(node) is dict and len(node) == 1:
        (tag, value), = node.items()
        if tag == "tuple" and type(value) is list:
            return tuple(_decode(x, zf, loaded) for x in value)
        if tag == "dict" and type(value) is list and all(
                type(p) is list and len(p) == 2 and type(p[0]) in (str, int) for p in value):
            return {k: _decode(v, zf, loaded) for k, v in value}
        if tag in ("tensor", "ndarray") and type(value) is str:
            if (tag, value) not in loaded:
                loaded[tag, value] = _read_array(zf, tag, value)
            return loaded[tag, value]
    raise ValueError(f"malformed node in {TREE_MEMBER}: {json.dumps(node)[:100]}")


def load(path, device="cpu"):
    """Read a file written by `save`. Tensors come back as leaves on `device` that do not
    require grad; numpy arrays stay numpy arrays; tuples, int dict keys and dtypes round-trip.

    Raises FileNotFoundError for a missing file and CheckpointError for anything that is not
    an intact checkpoint of a version this code knows.
    """
    device = backend.parse_device(device)
    path = os.fspath(path)
    loaded = {}
    with open(path, "rb") as f:
        try:
            with zipfile.ZipFile(f) as zf:
                if TREE_MEMBER not in zf.NameToInfo:
                    raise ValueError(f"it has no {TREE_MEMBER} member: not a tinygrad_tf checkpoint "
                                     f"(a plain .npz or another zip?)")
                header = json.loads(zf.read(TREE_MEMBER))
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
        # RuntimeError: a flipped "encrypted" bit, or JSON nested past the recursion limit.
        except (ValueError, KeyError, EOFError, OSError, RuntimeError, zipfile.BadZipFile,
                zlib.error) as e:
            raise CheckpointError(f"cannot load {path!r}: {e}") from e
    for (tag, _), value in loaded.items():  # only now touch the device, so its errors stay its own
        if tag == "tensor":
            value.data = backend.to_device(value.data, device)
    return obj
