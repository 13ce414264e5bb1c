"""Fixtures shared by the test files."""
import pytest

from tinygrad_tf.kernels.numba import _numba


@pytest.fixture
def split(monkeypatch):
    """The Numba kernels made with split=True take their parallel variant (prange over numba's
    threads) on every call: the threshold at 0 and two threads."""
    numba = _numba.load()
    if numba is None or numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba is not installed, or has one thread here")
    before = numba.get_num_threads()
    monkeypatch.setattr(_numba, "PARALLEL_FROM", 0)
    numba.set_num_threads(2)
    yield
    numba.set_num_threads(before)
