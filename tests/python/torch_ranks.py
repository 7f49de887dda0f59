"""What the torch tests share: the skip when torch 2.x or swiftbalancer._torch is missing, a
free local port, and the ranks of a gloo world as processes of a worker script."""

import os
import socket
import subprocess
import sys

import pytest


def require_torch():
    """Skips the calling test module unless torch 2.x and swiftbalancer._torch are importable;
    returns (torch, swiftbalancer.torch)."""
    torch = pytest.importorskip("torch", reason="torch is not installed (scripts/install-deps.sh)")
    if int(torch.__version__.split(".")[0]) < 2:
        pytest.skip("torch %s is older than 2.0" % torch.__version__, allow_module_level=True)
    sbt = pytest.importorskip("swiftbalancer.torch")
    if sbt._torch is None:
        pytest.skip("swiftbalancer._torch is not built", allow_module_level=True)
    return torch, sbt


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_ranks(args, ranks, timeout, killed=()):
    """Runs `python *args` once per rank (RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT in the
    environment) and waits for all; asserts each exited 0, or of SIGKILL for the ranks in
    `killed`."""
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()),
               WORLD_SIZE=str(ranks), OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable] + list(args), env=dict(env, RANK=str(r)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(ranks)]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            p.kill()
    for r, (p, out) in enumerate(zip(procs, outs)):
        want = -9 if r in killed else 0
        assert p.returncode == want, "rank %d exited %s:\n%s" % (r, p.returncode, out)
