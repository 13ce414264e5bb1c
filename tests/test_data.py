import functools
import hashlib
import http.server
import json
import os
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from tinygrad_tf import data
from tinygrad_tf.data import (DATA_ENV, TINY_SHAKESPEARE_SHA256, BatchSampler, CharTokenizer, DataError,
                              default_cache_dir, download, load_text, tiny_shakespeare_path, train_val_split)

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\n" * 60  # a few KB
SHA = hashlib.sha256(TEXT.encode()).hexdigest()
REAL_FILE = os.environ.get(DATA_ENV)  # a local copy of tinyshakespeare.txt, if the environment names one


@pytest.fixture
def server(tmp_path):
    """Local HTTP server serving a temp dir; counts requests. Yields (base_url, served_dir, requests)."""
    served = tmp_path / "served"
    served.mkdir()
    (served / "input.txt").write_text(TEXT)
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            if self.path == "/truncated":  # promise more bytes than we send
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b"only ten b")
                self.close_connection = True
                return
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=served))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served, requests
    httpd.shutdown()
    httpd.server_close()


def _closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/input.txt"


def _leftovers(directory):
    return sorted(p.name for p in Path(directory).iterdir() if p.name.endswith(".part"))


# --- download ---------------------------------------------------------------

def test_download_good_checksum(server, tmp_path, capsys):
    url, _, requests = server
    dest = tmp_path / "out" / "x.txt"
    assert download(url + "/input.txt", dest, sha256=SHA, progress=True) == dest
    assert dest.read_text() == TEXT
    assert requests == ["/input.txt"]
    assert f"{len(TEXT.encode()) / 1e6:.2f} MB" in capsys.readouterr().err
    assert _leftovers(dest.parent) == []


def test_download_bad_checksum_leaves_no_file_and_keeps_old(server, tmp_path):
    url, _, _ = server
    dest = tmp_path / "x.txt"
    with pytest.raises(DataError, match="expected sha256 0+, got " + SHA):
        download(url + "/input.txt", dest, sha256="0" * 64, progress=False)
    assert not dest.exists() and _leftovers(tmp_path) == []
    dest.write_text("previous good file")
    with pytest.raises(DataError, match="input.txt"):
        download(url + "/input.txt", dest, sha256="0" * 64, progress=False)
    assert dest.read_text() == "previous good file" and _leftovers(tmp_path) == []


def test_download_server_down_mentions_offline_options(tmp_path):
    with pytest.raises(DataError, match="--data") as exc:
        download(_closed_port_url(), tmp_path / "x.txt", timeout=2, progress=False)
    assert DATA_ENV in str(exc.value)
    assert list(tmp_path.iterdir()) == []


def test_download_http_error_and_truncation(server, tmp_path):
    url, _, _ = server
    out = tmp_path / "out"
    with pytest.raises(DataError, match="404"):
        download(url + "/missing.txt", out / "x.txt", progress=False)
    with pytest.raises(DataError, match="10 of 1000 bytes"):
        download(url + "/truncated", out / "x.txt", progress=False)
    assert list(out.iterdir()) == []


def test_download_interrupted_leaves_nothing(tmp_path, monkeypatch):
    class Response:
        headers = {"Content-Length": "100"}
        def __enter__(self): return self
        def __exit__(self, *a): pass
        def read(self, n):
            raise KeyboardInterrupt

    monkeypatch.setattr(data.urllib.request, "urlopen", lambda *a, **k: Response())
    with pytest.raises(KeyboardInterrupt):
        download("http://example.invalid/x", tmp_path / "x.txt", progress=False)
    assert list(tmp_path.iterdir()) == []


# --- tiny_shakespeare_path / load_text ---------------------------------------

def test_cache_download_reuse_and_repair(server, tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    url, _, requests = server
    kw = dict(cache_dir=tmp_path / "cache", url=url + "/input.txt", sha256=SHA)
    path = tiny_shakespeare_path(**kw)
    assert path == tmp_path / "cache" / "tinyshakespeare.txt" and path.read_text() == TEXT
    assert tiny_shakespeare_path(**kw) == path
    assert len(requests) == 1  # cached copy reused without a request
    path.write_text("corrupt")
    assert tiny_shakespeare_path(**kw).read_text() == TEXT
    assert len(requests) == 2
    assert load_text(**kw) == TEXT


def test_path_precedence(tmp_path, monkeypatch):
    explicit, env = tmp_path / "explicit.txt", tmp_path / "env.txt"
    explicit.write_text("a")
    env.write_text("b")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "tinyshakespeare.txt").write_text("c")
    kw = dict(cache_dir=cache, sha256=None, url=_closed_port_url())
    monkeypatch.setenv(DATA_ENV, str(env))
    assert tiny_shakespeare_path(explicit, **kw) == explicit
    assert tiny_shakespeare_path(**kw) == env
    monkeypatch.delenv(DATA_ENV)
    assert tiny_shakespeare_path(**kw) == cache / "tinyshakespeare.txt"


def test_missing_user_paths(tmp_path, monkeypatch):
    missing = tmp_path / "nope.txt"
    with pytest.raises(DataError, match="nope.txt.*--data"):
        tiny_shakespeare_path(missing)
    monkeypatch.setenv(DATA_ENV, str(missing))
    with pytest.raises(DataError, match=f"nope.txt.*{DATA_ENV}"):
        tiny_shakespeare_path()


def test_default_cache_dir_respects_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "tinygrad_tf"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "tinygrad_tf"


def test_load_text_errors(tmp_path):
    bad, empty = tmp_path / "bad.txt", tmp_path / "empty.txt"
    bad.write_bytes(b"ok\xff\xfe")
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="bad.txt.*UTF-8"):
        load_text(bad)
    with pytest.raises(DataError, match="empty"):
        load_text(empty)
    user = tmp_path / "mine.txt"
    user.write_text("any text, not checksummed\r\n")
    assert load_text(user) == "any text, not checksummed\r\n"


@pytest.mark.skipif(not REAL_FILE, reason=f"set {DATA_ENV} to a local tinyshakespeare.txt to check it")
def test_real_tiny_shakespeare():
    assert hashlib.sha256(Path(REAL_FILE).read_bytes()).hexdigest() == TINY_SHAKESPEARE_SHA256
    text = load_text(REAL_FILE)
    tok = CharTokenizer(text)
    assert tok.vocab_size == 65
    ids = tok.encode(text)
    assert ids.shape == (len(text),) and ids.dtype == np.int64
    assert tok.decode(ids) == text


# --- tokenizer -----------------------------------------------------------------

def test_tokenizer_round_trip_and_order():
    tok = CharTokenizer("hello world")
    assert tok.chars == " dehlorw" and tok.vocab_size == 8
    ids = tok.encode("hello")
    assert ids.dtype == np.int64 and ids.tolist() == [3, 2, 4, 4, 5]
    assert tok.decode(ids) == tok.decode(ids.tolist()) == "hello"
    assert tok.encode("").shape == (0,) and tok.decode([]) == ""


def test_tokenizer_errors():
    tok = CharTokenizer("abc")
    with pytest.raises(ValueError, match=r"'z' at position 2"):
        tok.encode("abzaq")
    with pytest.raises(ValueError, match="token id 3 out of range for vocab_size 3"):
        tok.decode([0, 3])
    with pytest.raises(ValueError, match="token id -1"):
        tok.decode(np.array([-1]))
    with pytest.raises(ValueError):
        CharTokenizer("")
    with pytest.raises(ValueError, match="sorted"):
        CharTokenizer.from_chars("ba")


def test_tokenizer_unicode():
    text = "naïve café — 日本語 🙂\ud800"
    tok = CharTokenizer(text)
    assert tok.decode(tok.encode(text)) == text
    with pytest.raises(ValueError, match="'🚀' at position 1"):
        tok.encode("n🚀")


def test_tokenizer_decode_tolist_objects():
    class FakeTensor:
        def tolist(self):
            return [0, 1]

    assert CharTokenizer("ab").decode(FakeTensor()) == "ab"


def test_tokenizer_state_dict():
    tok = CharTokenizer("to be or not to be")
    state = json.loads(json.dumps(tok.state_dict()))
    restored = CharTokenizer.from_state_dict(state)
    assert restored == tok and hash(restored) == hash(tok)
    assert restored.encode("be").tolist() == tok.encode("be").tolist()
    assert tok != CharTokenizer("xyz")


# --- split and sampler ---------------------------------------------------------

def test_train_val_split():
    d = np.arange(100)
    train, val = train_val_split(d)
    assert len(train) == 90 and len(val) == 10
    assert np.array_equal(np.concatenate([train, val]), d)
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="train_fraction"):
            train_val_split(d, bad)


def test_batch_sampler_shapes_and_shift():
    d = np.arange(1000, dtype=np.int32) * 7
    x, y = BatchSampler(d, batch_size=4, block_size=8, seed=0).sample()
    assert x.shape == y.shape == (4, 8) and x.dtype == y.dtype == np.int64
    for row_x, row_y in zip(x, y):
        start = int(row_x[0]) // 7
        assert np.array_equal(row_x, d[start:start + 8])
        assert np.array_equal(row_y, d[start + 1:start + 9])


def test_batch_sampler_covers_edges_exactly():
    # With len == block_size + 1 there is exactly one window: the whole array.
    d = np.arange(9)
    x, y = BatchSampler(d, batch_size=3, block_size=8, seed=0).sample()
    assert (x == d[:8]).all() and (y == d[1:]).all()


def test_batch_sampler_determinism_and_resume():
    d = np.arange(500)
    a, b = BatchSampler(d, 4, 16, seed=123), BatchSampler(d, 4, 16, seed=123)
    assert all(np.array_equal(p, q) for p, q in zip(a.sample(), b.sample()))

    run = BatchSampler(d, 4, 16, seed=7)
    run.sample()
    state = json.loads(json.dumps(run.state_dict()))
    expected = run.sample()
    resumed = BatchSampler(d, 4, 16, seed=999)
    resumed.load_state_dict(state)
    assert all(np.array_equal(p, q) for p, q in zip(resumed.sample(), expected))

    gen = np.random.default_rng(5)
    assert BatchSampler(d, 2, 4, seed=gen).rng is gen


def test_batch_sampler_errors():
    with pytest.raises(ValueError, match="8 tokens.*block_size=8"):
        BatchSampler(np.arange(8), 2, 8)
    with pytest.raises(ValueError, match="1-D"):
        BatchSampler(np.zeros((10, 10), dtype=np.int64), 2, 4)
    with pytest.raises(ValueError, match="integer"):
        BatchSampler(np.zeros(100), 2, 4)
