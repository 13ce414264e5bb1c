"""tinygrad_tf.distributed on the CPU: the launcher's process handling, the rendezvous store,
world size 1, bucketing in DistributedDataParallel, and the errors when NCCL or GPUs are missing.
The collectives themselves run on the two-GPU machine (tests/distributed_gpu_check.py)."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import tinygrad_tf as tg
import tinygrad_tf.distributed as dist
from tinygrad_tf.distributed.store import StoreTimeout, TCPStore
from tinygrad_tf.nn.parallel import DistributedDataParallel

ROOT = Path(__file__).resolve().parents[1]


def launch(tmp_path, body, *flags, timeout=60):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.run([sys.executable, "-m", "tinygrad_tf.distributed.run", *flags, str(script)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_launcher_sets_each_ranks_environment(tmp_path):
    out = launch(tmp_path, f"""
        import os
        keys = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
        with open(os.path.join({str(tmp_path)!r}, "rank" + os.environ["LOCAL_RANK"]), "w") as f:
            f.write(" ".join(os.environ[k] for k in keys))
        """, "--nproc-per-node", "3", "--nnodes", "2", "--node-rank", "1", "--master-port", "29611")
    assert out.returncode == 0, out.stderr
    assert [(tmp_path / f"rank{i}").read_text() for i in range(3)] == [
        f"{3 + i} {i} 6 3 127.0.0.1 29611" for i in range(3)]


def test_a_failing_rank_stops_the_others_and_sets_the_status(tmp_path):
    start = time.monotonic()
    out = launch(tmp_path, """
        import os, sys, time
        if os.environ["LOCAL_RANK"] == "1":
            sys.exit(3)
        time.sleep(60)  # would outlive the test if the launcher did not stop it
        """, "--nproc-per-node", "2")
    assert out.returncode == 3 and time.monotonic() - start < 30
    assert "local rank 1 exited with status 3; stopping the others" in out.stderr


def test_ctrl_c_reaches_every_rank_once(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal, sys, time
        seen = []
        signal.signal(signal.SIGINT, lambda *_: seen.append(1))
        open(os.path.join({str(tmp_path)!r}, "up" + os.environ["LOCAL_RANK"]), "w").close()
        deadline = time.monotonic() + 30
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # a second SIGINT would arrive by now
        with open(os.path.join({str(tmp_path)!r}, "got" + os.environ["LOCAL_RANK"]), "w") as f:
            f.write(str(len(seen)))
        sys.exit(130)
        """))
    launcher = subprocess.Popen([sys.executable, "-m", "tinygrad_tf.distributed.run", "--nproc-per-node", "2",
                                 str(script)], cwd=ROOT)
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"up{i}").exists() for i in range(2)) and time.monotonic() < deadline:
        time.sleep(0.05)
    launcher.send_signal(signal.SIGINT)
    assert launcher.wait(timeout=30) == 130
    assert [(tmp_path / f"got{i}").read_text() for i in range(2)] == ["1", "1"]


def test_launcher_refuses_bad_flags(tmp_path):
    out = launch(tmp_path, "pass", "--nproc-per-node", "0")
    assert out.returncode == 2 and "--nproc-per-node and --nnodes must be at least 1" in out.stderr
    out = subprocess.run([sys.executable, "-m", "tinygrad_tf.distributed.run", "missing.py"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 2 and "no such script: missing.py" in out.stderr


def test_rendezvous_store_across_threads_and_its_timeout():
    server = TCPStore("127.0.0.1", 29622, is_server=True, timeout=2)
    client = TCPStore("127.0.0.1", 29622, is_server=False, timeout=2)
    threading.Timer(0.2, lambda: client.set("id", [1, 2, 3])).start()
    assert server.get("id") == [1, 2, 3]  # waits for the other side
    with pytest.raises(StoreTimeout, match="no rank set 'never'"):
        client.get("never")
    client.close()
    server.close()
    with pytest.raises(StoreTimeout, match="could not reach the rendezvous store"):
        TCPStore("127.0.0.1", 29622, is_server=False, timeout=0.3)


def test_world_size_one_needs_no_nccl_and_collectives_leave_tensors_alone(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    dist.init_process_group("nccl")
    try:
        assert dist.is_initialized() and dist.get_rank() == 0 and dist.get_world_size() == 1
        t = tg.tensor([1.0, 2.0])
        dist.all_reduce(t)
        dist.broadcast(t, src=0)
        dist.barrier()
        assert t.tolist() == [1.0, 2.0]
        with pytest.raises(RuntimeError, match="called twice"):
            dist.init_process_group("nccl")
    finally:
        dist.destroy_process_group()
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="call tinygrad_tf.distributed.init_process_group"):
        dist.get_rank()


@pytest.mark.skipif(tg.cuda.is_available(), reason="checks the message on machines without NCCL or GPUs")
def test_several_ranks_without_nccl_or_gpus_say_what_is_missing(monkeypatch):
    for name, value in (("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29633")):
        monkeypatch.setenv(name, value)
    with pytest.raises(RuntimeError, match="nvidia-nccl-cu12 or nvidia-nccl-cu13"):
        dist.init_process_group("nccl")
    assert not dist.is_initialized()
    monkeypatch.delenv("MASTER_PORT")
    with pytest.raises(RuntimeError, match=r"\$MASTER_PORT is not set"):
        dist.init_process_group("nccl")
    with pytest.raises(ValueError, match="backend must be 'nccl'"):
        dist.init_process_group("gloo")


class DoublingGroup:
    """A stand-in for two ranks with equal gradients: all_reduce(avg) of equal values changes nothing,
    all_reduce(sum) doubles; it records the buckets it was given."""
    device, rank, world_size = "cpu", 0, 2

    def __init__(self):
        self.sizes = []

    def all_reduce(self, array, op):
        self.sizes.append(array.size)
        if op == "sum":
            array *= 2

    def broadcast(self, array, src):
        pass


def test_ddp_averages_in_buckets_and_gradients_become_views_of_them(monkeypatch):
    group = DoublingGroup()
    monkeypatch.setattr(dist._Default, "group", group)
    tg.manual_seed(0)
    model = tg.nn.Sequential(tg.nn.Linear(4, 8), tg.nn.ReLU(), tg.nn.Linear(8, 3))
    ddp = DistributedDataParallel(model, bucket_cap_mb=30 * 4 / 2**20)  # 30 floats a bucket
    assert [len(b.params) for b in ddp._buckets] == [2, 1, 1]  # 3+24 | 8 | 32 floats, from the last back
    x = tg.randn(5, 4)
    ddp(x).sum().backward()
    expected = {n: p.grad.numpy().copy() for n, p in model.named_parameters()}
    assert sorted(group.sizes) == [8, 27, 32]
    for bucket in ddp._buckets:
        for p in bucket.params:
            assert p.grad.data.base is bucket.flat  # a view of the bucket, where the all-reduce wrote
    model.zero_grad()
    with ddp.no_sync():  # accumulate locally, average on the next synced backward
        ddp(x).sum().backward()
    assert len(group.sizes) == 3
    ddp(x).sum().backward()
    for n, p in model.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), 2 * expected[n], rtol=1e-6)
    assert list(ddp.state_dict())[0].startswith("module.")


def test_ddp_names_parameters_that_got_no_gradient(monkeypatch):
    monkeypatch.setattr(dist._Default, "group", DoublingGroup())
    model = tg.nn.ModuleList([tg.nn.Linear(2, 2), tg.nn.Linear(2, 2)])
    model.forward = lambda x: model[0](x)
    ddp = DistributedDataParallel(model, bucket_cap_mb=1)
    ddp(tg.ones(1, 2)).sum().backward()
    with pytest.raises(RuntimeError, match="left 2 parameter.s. without a gradient"):
        ddp(tg.ones(1, 2))


def test_ddp_refuses_parameters_on_another_device(monkeypatch):
    group = DoublingGroup()
    group.device = "cuda:1"
    monkeypatch.setattr(dist._Default, "group", group)
    with pytest.raises(RuntimeError, match="must be on cuda:1"):
        DistributedDataParallel(tg.nn.Linear(2, 2))
