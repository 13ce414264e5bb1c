"""Data pipeline for the char-level GPT: fetch tiny Shakespeare, tokenize, batch.

Depends only on the standard library and NumPy so it can be used (and tested)
on its own. Everything a user can get wrong (bad path, no network, corrupt
download, unreadable file) surfaces as :class:`DataError` with a message that
says what to do next, rather than as a raw traceback from urllib or codecs.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

TINY_SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
DATA_ENV = "TINYGRAD_TF_DATA"

_FILENAME = "tinyshakespeare.txt"
_OFFLINE_HINT = f"pass --data PATH or set {DATA_ENV}=PATH to a local copy of {_FILENAME}"
_CHUNK = 1 << 16


class DataError(RuntimeError):
    """A data problem the user can fix (path, network, checksum, encoding)."""


def default_cache_dir() -> Path:
    """Where downloads are kept: ``$XDG_CACHE_HOME/tinygrad_tf`` or ``~/.cache/tinygrad_tf``.

    Following XDG lets users relocate caches (e.g. to a scratch disk) the way
    they already do for other tools.
    """
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tinygrad_tf"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest: str | os.PathLike, sha256: str | None = None,
             timeout: float = 30.0, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` atomically, optionally verifying its SHA-256.

    The body is streamed into a temporary file next to ``dest`` and only moved
    into place with :func:`os.replace` once complete and verified, so an
    existing good ``dest`` is never clobbered by a failed or interrupted
    download, and no partial file is left behind (even on Ctrl-C).
    """
    dest = Path(dest)
    tmp = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
        digest, done = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            while chunk := resp.read(_CHUNK):
                f.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    of_total = f"/{total / 1e6:.2f}" if total is not None else ""
                    print(f"\rdownloading {dest.name}: {done / 1e6:.2f}{of_total} MB",
                          end="", file=sys.stderr, flush=True)
        if progress:
            print(file=sys.stderr)
        if total is not None and done != total:
            raise OSError(f"connection closed after {done} of {total} bytes")
        got = digest.hexdigest()
        if sha256 is not None and got != sha256.lower():
            raise DataError(f"checksum mismatch for {url}: expected sha256 {sha256}, got {got}")
        os.replace(tmp, dest)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(e, urllib.error.HTTPError):
            e.close()  # it holds the open response; don't leak the socket
            reason = e  # "HTTP Error 404: Not Found" says more than "Not Found"
        raise DataError(f"download of {url} to {dest} failed ({reason}). "
                        f"If you are offline, {_OFFLINE_HINT}.") from e
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return dest


def _user_file(path: str | os.PathLike, source: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} (from {source}) does not exist or is not a file")
    return path


def tiny_shakespeare_path(path: str | os.PathLike | None = None,
                          cache_dir: str | os.PathLike | None = None,
                          url: str = TINY_SHAKESPEARE_URL,
                          sha256: str | None = TINY_SHAKESPEARE_SHA256) -> Path:
    """Resolve the dataset file: explicit ``path`` > ``$TINYGRAD_TF_DATA`` > cache.

    User-supplied files are used as-is (no checksum) so any text can be
    trained on. The cached copy is verified on every call and re-downloaded if
    it is missing or corrupt, so a bad cache never silently poisons training.
    """
    if path is not None:
        return _user_file(path, "--data")
    if env := os.environ.get(DATA_ENV):
        return _user_file(env, f"${DATA_ENV}")
    cached = Path(cache_dir if cache_dir is not None else default_cache_dir()) / _FILENAME
    if cached.is_file():
        if sha256 is None or _sha256_file(cached) == sha256.lower():
            return cached
        print(f"cached {cached} failed its checksum; re-downloading", file=sys.stderr)
    return download(url, cached, sha256=sha256)


def load_text(path: str | os.PathLike | None = None, **kw) -> str:
    """Return the dataset as a string; ``path`` and ``kw`` go to :func:`tiny_shakespeare_path`.

    Bytes are decoded exactly (no newline translation) so the text matches
    the checksummed file.
    """
    file = tiny_shakespeare_path(path, **kw)
    try:
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{file} is not valid UTF-8 (byte {e.start}: {e.reason})") from e
    except OSError as e:
        raise DataError(f"cannot read {file}: {e}") from e
    if not text:
        raise DataError(f"{file} is empty")
    return text


def _codepoints(s: str) -> np.ndarray:
    # UTF-32 is one 4-byte unit per character, so array index == string index.
    # surrogatepass lets even lone surrogates round-trip.
    return np.frombuffer(s.encode("utf-32-le", "surrogatepass"), dtype="<u4")


class CharTokenizer:
    """Character-level tokenizer: token id = rank of the character in the sorted vocabulary.

    Encoding and decoding are vectorized through code points (UTF-32), so
    tokenizing the whole corpus takes milliseconds instead of a Python loop.
    """

    def __init__(self, text: str):
        self.chars = "".join(sorted(set(text)))
        if not self.chars:
            raise ValueError("cannot build a vocabulary from empty text")
        self._codes = _codepoints(self.chars)  # sorted, so encode can binary-search

    @classmethod
    def from_chars(cls, chars: str) -> CharTokenizer:
        """Rebuild a tokenizer from its exact vocabulary (as stored in a checkpoint)."""
        if chars != "".join(sorted(set(chars))):
            raise ValueError("chars must be sorted and unique, as produced by CharTokenizer")
        return cls(chars)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, s: str) -> np.ndarray:
        """Map a string to an int64 array of token ids; unknown characters raise ValueError."""
        codes = _codepoints(s)
        ids = np.minimum(np.searchsorted(self._codes, codes), self.vocab_size - 1)
        unknown = self._codes[ids] != codes
        if unknown.any():
            i = int(np.argmax(unknown))
            raise ValueError(f"unknown character {s[i]!r} at position {i} "
                             f"(not in the {self.vocab_size}-character vocabulary)")
        return ids.astype(np.int64, copy=False)

    def decode(self, ids) -> str:
        """Map token ids (list, ndarray, or anything with ``.tolist()``) back to a string."""
        if not isinstance(ids, np.ndarray) and hasattr(ids, "tolist"):
            ids = ids.tolist()
        ids = np.atleast_1d(np.asarray(ids))
        if ids.size == 0:
            return ""
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"expected a 1-D sequence of integer ids, got shape {ids.shape} dtype {ids.dtype}")
        bad = (ids < 0) | (ids >= self.vocab_size)
        if bad.any():
            raise ValueError(f"token id {int(ids[np.argmax(bad)])} out of range for vocab_size {self.vocab_size}")
        return self._codes[ids].tobytes().decode("utf-32-le", "surrogatepass")

    def state_dict(self) -> dict:
        """JSON-friendly vocabulary, saved with checkpoints so ids keep their meaning."""
        return {"chars": self.chars}

    @classmethod
    def from_state_dict(cls, d: dict) -> CharTokenizer:
        return cls.from_chars(d["chars"])

    def __eq__(self, other):
        return self.chars == other.chars if isinstance(other, CharTokenizer) else NotImplemented

    def __hash__(self):
        return hash(self.chars)

    def __repr__(self):
        return f"CharTokenizer(vocab_size={self.vocab_size})"


def train_val_split(data: np.ndarray, train_fraction: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Split into the first ``train_fraction`` and the rest.

    A contiguous split (not shuffled) keeps validation text unseen: shuffled
    windows would overlap training windows almost everywhere.
    """
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    n = int(len(data) * train_fraction)
    if n == 0 or n == len(data):
        raise ValueError(f"{len(data)} tokens is too few to split with train_fraction={train_fraction}")
    return data[:n], data[n:]


class BatchSampler:
    """Draws random (x, y) windows for next-token prediction; ``y`` is ``x`` shifted by one.

    All randomness comes from one ``np.random.Generator`` whose state is part
    of :meth:`state_dict`, so a run resumed from a checkpoint sees exactly the
    batches an uninterrupted run would have.
    """

    def __init__(self, data: np.ndarray, batch_size: int, block_size: int,
                 seed: int | np.random.Generator | None = None):
        data = np.asarray(data)
        if data.ndim != 1 or not np.issubdtype(data.dtype, np.integer):
            raise ValueError(f"data must be a 1-D integer array, got shape {data.shape} dtype {data.dtype}")
        if batch_size < 1 or block_size < 1:
            raise ValueError(f"batch_size and block_size must be >= 1, got {batch_size} and {block_size}")
        if len(data) <= block_size:
            raise ValueError(f"data has {len(data)} tokens but needs more than block_size={block_size}")
        self.data, self.batch_size, self.block_size = data, batch_size, block_size
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self._window = np.arange(block_size)

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """Return int64 arrays ``x, y`` of shape (batch_size, block_size)."""
        offsets = self.rng.integers(0, len(self.data) - self.block_size, size=self.batch_size)
        idx = offsets[:, None] + self._window
        return self.data[idx].astype(np.int64, copy=False), self.data[idx + 1].astype(np.int64, copy=False)

    def state_dict(self) -> dict:
        """JSON-serializable generator state (PCG64's state is a dict of ints)."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, d: dict) -> None:
        self.rng.bit_generator.state = d["rng"]
