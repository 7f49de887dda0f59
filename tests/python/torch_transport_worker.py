"""One rank of the transport tests (test_torch_transport.py starts four).

    python torch_transport_worker.py REPORT_DIR   (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
                                                   in the environment)

Drives swiftbalancer._torch._Transport, the balancer's transport over torch.distributed groups,
through each check on a gloo group of its own, and writes what every call returned (or the
error it raised) to REPORT_DIR/rankN.json for the test to compare with what it must be.
"""

import datetime
import json
import os
import sys
import time

import torch.distributed as dist

from swiftbalancer import _torch

HOUR_MS = 3600 * 1000


def idle_transport(group, rank):
    """A transport polling once an hour, its posting thread asleep: a blocking collective first
    (its posting thread starts anything queued when it first runs), then time to go back to
    sleep."""
    t = _torch._Transport(group, group, poll_interval_ms=HOUR_MS)
    t.all_reduce([rank], "sum", 10000)
    time.sleep(0.05)
    return t


def outcome(fn):
    try:
        return {"ok": fn()}
    except (RuntimeError, ValueError) as e:
        return {"error": type(e).__name__, "message": str(e)}


def ordered(group, rank):
    """Started and blocking collectives interleaved; the started ones waited for last, in
    reverse: results mix unless every rank issues them to gloo in the order asked for."""
    t = _torch._Transport(group, group)
    started, blocking = [], []
    for i in range(12):
        if i % 3 == 2:
            blocking.append(t.all_reduce([rank + i, 1], "sum", 10000))
        elif i % 3 == 1:
            started.append(("max", i, t.start_all_reduce([rank * 10 + i], "max", 10000)))
        else:
            started.append(("gather", i, t.start_all_gather([rank * 100 + i, -i], 10000)))
    waited = {}
    for kind, i, pending in reversed(started):
        waited["%s%d" % (kind, i)] = pending.wait()
    return {"blocking": blocking, "started": waited, "broken": t.broken, "name": t.name}


def nobody_waits(group, rank):
    """Started, then waited for only after its timeout: succeeds only if the posting thread
    started it on its own (the serving thread never wakes it)."""
    t = _torch._Transport(group, group, poll_interval_ms=1)
    pending = t.start_all_reduce([rank], "sum", 300)
    time.sleep(0.6)
    return outcome(pending.wait)


def waiter_wakes(group, rank):
    """An hour's poll interval: a thread that blocks on queued work starts it."""
    t = _torch._Transport(group, group, poll_interval_ms=HOUR_MS)
    t0 = time.monotonic()
    reduced = t.all_reduce([rank, 2 * rank], "min", 10000)
    gathered = t.start_all_gather([rank], 10000).wait()
    return {"reduced": reduced, "gathered": gathered, "seconds": time.monotonic() - t0}


def not_started(group, rank):
    """An hour's poll interval and nobody waiting before the deadline: the collective fails,
    is never started, and the transport is broken."""
    t = idle_transport(group, rank)
    pending = t.start_all_reduce([rank], "sum", 100)
    time.sleep(0.2)
    first = outcome(pending.wait)
    broken = t.broken
    later = outcome(lambda: t.all_reduce([rank], "sum", 1000))
    return {"first": first, "broken": broken, "later": later}


def dropped(group, rank):
    """A handle dropped unwaited, its collective never started: closing does not wait for it."""
    t = idle_transport(group, rank)
    t.start_all_gather([rank], 10000)
    t0 = time.monotonic()
    del t
    return {"seconds": time.monotonic() - t0}


def bad_arguments(group):
    return {
        "poll": outcome(lambda: _torch._Transport(group, group, poll_interval_ms=0)),
        "op": outcome(lambda: _torch._Transport(group, group).all_reduce([1], "avg", 1000)),
        "timeout": outcome(lambda: _torch._Transport(group, group).all_gather([1], 0)),
    }


def main():
    out_dir = sys.argv[1]
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    timeout = datetime.timedelta(seconds=20)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timeout)
    report = {"rank": rank}
    for name, check in (("ordered", ordered), ("nobody_waits", nobody_waits),
                        ("waiter_wakes", waiter_wakes), ("dropped", dropped)):
        report[name] = check(dist.new_group(backend="gloo", timeout=timeout), rank)
    # A group left out of step by the failed collective: a short gloo timeout of its own.
    short = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=3))
    report["not_started"] = not_started(short, rank)
    report["bad_arguments"] = bad_arguments(dist.new_group(backend="gloo", timeout=timeout))
    tmp = os.path.join(out_dir, ".rank%d.json.tmp" % rank)
    with open(tmp, "w") as f:
        json.dump(report, f)
    os.replace(tmp, os.path.join(out_dir, "rank%d.json" % rank))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
