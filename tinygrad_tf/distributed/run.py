"""Start one process per GPU for a script, as torchrun does:

    python -m tinygrad_tf.distributed.run --nproc-per-node 2 train.py --its-own-flags
    python -m tinygrad_tf.distributed.run --nnodes 2 --node-rank 0 --master-addr host0 --nproc-per-node 8 train.py

Each process gets RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT
(what tinygrad_tf.distributed.init_process_group reads). Ctrl-C (or SIGTERM) is passed on to
every process; when one exits with an error the others are stopped, and the launcher exits
with that process's status.
"""
import argparse
import os
import signal
import subprocess
import sys
import time

GRACE_S = 10  # how long stopped processes get to save and exit before they are killed


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m tinygrad_tf.distributed.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--nproc-per-node", "--nproc_per_node", type=int, default=1, help="processes (GPUs) on this node")
    p.add_argument("--nnodes", type=int, default=1, help="nodes (hosts) in the job")
    p.add_argument("--node-rank", "--node_rank", type=int, default=0, help="this node's index, 0..nnodes-1")
    p.add_argument("--master-addr", "--master_addr", default="127.0.0.1", help="the host of rank 0")
    p.add_argument("--master-port", "--master_port", type=int, default=29500, help="a free port on that host")
    p.add_argument("script", help="the Python script each process runs")
    p.add_argument("script_args", nargs=argparse.REMAINDER, help="its arguments")
    args = p.parse_args(argv)
    if args.nproc_per_node < 1 or args.nnodes < 1:
        p.error("--nproc-per-node and --nnodes must be at least 1")
    if not 0 <= args.node_rank < args.nnodes:
        p.error(f"--node-rank must be in 0..{args.nnodes - 1}, got {args.node_rank}")
    if not os.path.isfile(args.script):
        p.error(f"no such script: {args.script}")
    return args


def environment(args, local_rank):
    world = args.nnodes * args.nproc_per_node
    return {**os.environ, "RANK": str(args.node_rank * args.nproc_per_node + local_rank),
            "LOCAL_RANK": str(local_rank), "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(args.nproc_per_node),
            "MASTER_ADDR": args.master_addr, "MASTER_PORT": str(args.master_port)}


def stop(processes, sig):
    """Send sig to the processes still running, and kill those that outlive the grace period."""
    for p in processes:
        if p.poll() is None:
            p.send_signal(sig)
    deadline = time.monotonic() + GRACE_S
    for p in processes:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main(argv=None):
    args = parse_args(argv)
    # Sessions of their own: a Ctrl-C at the terminal reaches the launcher only, which passes it on once
    # (a second Ctrl-C means "stop now" to examples/shakespeare.py).
    processes = [subprocess.Popen([sys.executable, args.script, *args.script_args], env=environment(args, i),
                                  start_new_session=True) for i in range(args.nproc_per_node)]
    received = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda number, frame: received.append(number))
    try:
        while True:
            if received:
                stop(processes, received[0])
                return 128 + received[0]
            codes = [p.poll() for p in processes]
            failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                rank, code = failed[0]
                print(f"tinygrad_tf.distributed.run: local rank {rank} exited with status {code}; stopping the others",
                      file=sys.stderr)
                stop(processes, signal.SIGTERM)
                return code if code > 0 else 128 - code
            if all(c == 0 for c in codes):
                return 0
            time.sleep(0.1)
    finally:
        stop(processes, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
