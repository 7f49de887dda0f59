"""One rank of the swiftbalancer.torch.Balancer tests (test_torch_balancer.py starts four).

    python torch_balancer_worker.py SCENARIO REPORT_DIR   (RANK, WORLD_SIZE, MASTER_ADDR,
                                                           MASTER_PORT in the environment)

Every rank holds 3 layers x 3 local slots of 2 x ranks experts (4 ranks: 8 experts in 12 slots),
each expert three
tensors of different dtypes whose values say which (layer, expert, tensor) they are, so that a
slot's bytes can be checked against the placement after every step. Loads are skewed (expert 0
hot) and the same on every rank. After every step the worker checks, on its own rank:
  - every local slot holds exactly the expert its phy2log table names (weights and table agree);
  - the tables are consistent (log2phy and replica_count from phy2log) and never move (data_ptr);
  - route() (the extension's) gives route_topk()'s slots, each holding its id's expert, spread
    evenly over the expert's replicas;
and records the placement, so the test can compare ranks and count the bytes the plans move.

Scenarios: ``move`` (async, no fault), ``move1`` (the same with one point-to-point operation in
flight per rank, so every batch runs as many stages), ``fault`` (rank 1 withholds its sends of one layer),
``stall`` (rank 3 stops answering after step 10: the others must go on, bounded), ``die``
(rank 3 is killed with SIGKILL right after posting its transfers of a cycle's first layer),
``step`` (record_step against record per layer: record_step_scenario).

SB_DEVICE=cuda puts the experts (and so the tables and the counts) on cuda:RANK and moves them on
an NCCL group, with counts and votes on a gloo group (scripts/gpu-check.sh, one GPU per rank).
With one rank (WORLD_SIZE=1: a machine of one GPU, where NCCL refuses two ranks on it) a rank
holds each expert once (2 experts in 2 slots), so no placement can be better and nothing moves:
the run checks the tables, routing and counting on the device through the balancer's cycles.
"""

import json
import os
import signal
import sys
import time

import torch
import torch.distributed as dist

import swiftbalancer as sb
import swiftbalancer.torch as sbt

RANKS = int(os.environ.get("WORLD_SIZE", "4"))
LAYERS, SLOTS, EXPERTS = 3, 3 if RANKS > 1 else 2, 2 * RANKS
DEVICE = os.environ.get("SB_DEVICE", "cpu")
SHAPES = [((4, 6), torch.float32), ((5,), torch.bfloat16), ((3,), torch.int32)]


def expert_value(layer, expert, t):
    return float(layer * 100 + expert * 10 + t + 1)


def fill_slot(tensors, layer, slot, expert):
    for t, x in enumerate(tensors):
        x[slot].fill_(expert_value(layer, expert, t))


def slot_expert(tensors, layer, slot):
    """The expert whose values the slot holds, or -1 when its tensors disagree."""
    found = set()
    for t, x in enumerate(tensors):
        v = float(x[slot].flatten()[0].float())
        if not bool((x[slot].float() == v).all()):
            return -1
        e, rem = divmod(int(round(v - 1 - t - layer * 100)), 10)
        if rem != 0 or not 0 <= e < EXPERTS:
            return -1
        found.add(e)
    return found.pop() if len(found) == 1 else -1


def initial_placement():
    row = [p % EXPERTS for p in range(RANKS * SLOTS)]  # never two replicas on one rank
    return torch.tensor([row] * LAYERS, dtype=torch.long)


def load_row(step):
    # Expert 0 is hot, then a falling tail; the same on every rank.
    return [400 // (e + 1) + 10 for e in range(EXPERTS)]


def local_counts(p2l_row, rank, load):
    """This rank's tokens per local slot of one layer: the tokens of expert e split evenly over
    its replicas (p2l_row: that layer's phy2log row on the CPU)."""
    counts = torch.zeros(SLOTS, dtype=torch.long)
    for e in range(EXPERTS):
        holders = [p for p in range(RANKS * SLOTS) if int(p2l_row[p]) == e]
        for p in holders:
            if p // SLOTS == rank:
                counts[p % SLOTS] += load[e] // len(holders)
    return counts


def wrong_slots(bal, experts, rank):
    """Local slots whose bytes hold another expert than bal's phy2log names."""
    n = 0
    for l in range(LAYERS):
        for s in range(SLOTS):
            if slot_expert([x.cpu() for x in experts[l]], l, s) != int(
                    bal.phy2log[l, rank * SLOTS + s].cpu()):
                n += 1
    return n


def check_tables(bal, rank):
    p2l = bal.phy2log.cpu()
    assert torch.equal(p2l, bal.placement()), "phy2log tensor differs from the placement"
    for l in range(LAYERS):
        for e in range(EXPERTS):
            slots = [p for p in range(RANKS * SLOTS) if int(p2l[l, p]) == e]
            n = int(bal.replica_count[l, e].cpu())
            assert n == len(slots) >= 1, (l, e, n, slots)
            got = [int(x) for x in bal.log2phy[l, e].cpu().tolist()]
            assert got[:n] == slots and all(x == -1 for x in got[n:]), (l, e, got, slots)
        # route (the extension's) against route_topk (tensor ops on the same tables), and both
        # against phy2log: every pair lands on a slot holding its expert, and an expert's pairs
        # at consecutive positions spread evenly over its replicas.
        ids = torch.arange(EXPERTS).repeat_interleave(5).view(-1, 2).to(bal.phy2log.device)
        routed = bal.route(l, ids)
        ref = sbt.route_topk(bal.log2phy[l], bal.replica_count[l], ids, offset=rank)
        assert routed.dtype == torch.int64 and torch.equal(routed, ref), (l, routed, ref)
        assert torch.equal(p2l[l][routed.cpu()], ids.cpu()), (l, routed)
        per_slot = torch.bincount(routed.flatten().cpu(), minlength=RANKS * SLOTS)
        for e in range(EXPERTS):
            used = per_slot[p2l[l] == e]
            assert int(used.sum()) == 5 and int(used.max() - used.min()) <= 1, (l, e, used)


def main():
    scenario, out_dir = sys.argv[1], sys.argv[2]
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    import datetime
    timeout = datetime.timedelta(seconds=20)
    device_group = None
    if DEVICE == "cuda":
        torch.cuda.set_device(rank)
        dist.init_process_group("nccl", rank=rank, world_size=world, timeout=timeout,
                                device_id=torch.device("cuda", rank))
        device_group = dist.group.WORLD
        cpu_group = dist.new_group(backend="gloo", timeout=timeout)
    else:
        dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timeout)
        cpu_group = None
    if scenario == "step":
        return record_step_scenario(rank, out_dir)
    phy2log = initial_placement()
    experts = make_experts(phy2log, rank)
    cfg = dict(mode="async", interval_steps=4, window_intervals=1, decision_poll_steps=1,
               layers_per_step=1, transfer_timeout_ms=2000, collective_timeout_ms=3000,
               worker_timeout_ms=10000, log=False)
    if scenario == "fault":
        cfg.update(fault=_fault("transfer-timeout", 1, 0), transfer_timeout_ms=300)
    if scenario in ("stall", "die"):
        cfg.update(collective_timeout_ms=500, max_collective_failures=1)
    bal = sbt.Balancer(sb.Topology(RANKS, SLOTS), phy2log, experts, config=cfg, policy="swift",
                       cpu_group=cpu_group, device_group=device_group,
                       max_ops_in_flight=1 if scenario == "move1" else 512)
    ptrs = [bal.phy2log.data_ptr(), bal.log2phy.data_ptr(), bal.replica_count.data_ptr()]
    report = {"rank": rank, "placements": [], "wrong_slots": 0, "step_seconds": [],
              "transport": bal.transport}
    steps = 40
    for step in range(steps):
        if scenario == "stall" and rank == 3 and step == 10:
            # Stops answering, alive (a hung rank, not a dead one): the others must finish
            # their steps within this sleep, bounded by the collective timeout.
            report["stopped_at"] = step
            time.sleep(8)
            break
        t0 = time.monotonic()
        bal.before_forward()
        if scenario == "die" and rank == 3 and bal.counters()["cycles_agreed"] >= 1:
            os.kill(os.getpid(), signal.SIGKILL)  # mid-cycle, its transfers posted
        load = load_row(step)
        for l in range(LAYERS):
            bal.record(l, local_counts(bal.phy2log[l].cpu(), rank, load).to(
                experts[l][0].device))
        bal.after_forward()
        report["step_seconds"].append(time.monotonic() - t0)
        report["wrong_slots"] += wrong_slots(bal, experts, rank)
        check_tables(bal, rank)
        report["placements"].append(bal.placement().tolist())
    assert ptrs == [bal.phy2log.data_ptr(), bal.log2phy.data_ptr(),
                    bal.replica_count.data_ptr()], "a routing table moved"
    report["counters"] = bal.counters()
    report["metrics"] = bal.metrics_text()
    report["expert_bytes"] = sum(
        torch.zeros(shape, dtype=dtype).nbytes for shape, dtype in SHAPES)
    write_report_and_exit(report, out_dir, rank)


def record_step_scenario(rank, out_dir):
    """Three balancers fed the same loads: ``a`` per layer with record(), ``b`` once per step
    with record_step(), ``c`` through a bound tensor its "layers" add into (bind_counts, no
    counting call), each on groups of its own with its own copy of the experts, in sync mode
    (all of a cycle happens at its gather step, so equal counts give equal placements at equal
    steps). Each layer has another hot expert, the hot ones turn every 6 steps, and a warm one
    every step, so a row given to the wrong layer, lost, or counted twice (a bound tensor not
    zeroed) changes the gathered load. ``b`` gets its step tensor as int64, int32 and a
    non-contiguous int64 view in turn (the in-place and the converting paths)."""
    cfg = dict(mode="sync", interval_steps=3, window_intervals=1, transfer_timeout_ms=2000,
               collective_timeout_ms=3000, worker_timeout_ms=10000, log=False)
    bals, experts = [], []
    for _ in range(3):
        # Groups of its own: neither balancer's collectives can pair with the other's.
        cpu_group = dist.new_group(backend="gloo")
        device_group = dist.new_group(backend="nccl") if DEVICE == "cuda" else None
        experts.append(make_experts(initial_placement(), rank))
        bals.append(sbt.Balancer(sb.Topology(RANKS, SLOTS), initial_placement(), experts[-1],
                                 config=cfg, cpu_group=cpu_group, device_group=device_group))
    a, b, c = bals
    bound = torch.zeros(LAYERS, SLOTS, dtype=torch.int64, device=c.phy2log.device)
    bound_at = bound.data_ptr()
    c.bind_counts(bound)
    report = {"rank": rank, "wrong_slots": 0, "placements_a": [], "placements_b": [],
              "placements_c": [], "imbalance_a": [], "imbalance_b": [], "imbalance_c": [],
              "bound_left_nonzero": 0, "bound_moved": False}
    for step in range(18):
        loads = [[400 // ((e - l - step // 6) % EXPERTS + 1) + 10 +
                  (150 if e == (3 * l + step) % EXPERTS else 0) for e in range(EXPERTS)]
                 for l in range(LAYERS)]
        a.before_forward()
        for l in range(LAYERS):
            a.record(l, local_counts(a.phy2log[l].cpu(), rank, loads[l]).to(a.phy2log.device))
        a.after_forward()
        b.before_forward()
        rows = torch.stack([local_counts(b.phy2log[l].cpu(), rank, loads[l])
                            for l in range(LAYERS)])
        rows = [rows, rows.int(), rows.t().contiguous().t()][step % 3]
        b.record_step(rows.to(b.phy2log.device))
        b.after_forward()
        c.before_forward()
        for l in range(LAYERS):  # the layers add in place, as an engine's MoE layers would
            bound[l] += local_counts(c.phy2log[l].cpu(), rank, loads[l]).to(bound.device)
        c.after_forward()
        report["bound_left_nonzero"] += int(bound.count_nonzero())
        report["bound_moved"] |= bound.data_ptr() != bound_at
        for name, bal, ex in (("a", a, experts[0]), ("b", b, experts[1]), ("c", c, experts[2])):
            report["wrong_slots"] += wrong_slots(bal, ex, rank)
            report["placements_" + name].append(bal.placement().tolist())
            got = bal.counters()
            report["imbalance_" + name].append([got["imbalance_before"], got["imbalance_after"]])
    report["counters_a"], report["counters_b"] = a.counters(), b.counters()
    report["counters_c"] = c.counters()
    write_report_and_exit(report, out_dir, rank)


def make_experts(phy2log, rank):
    """This rank's expert tensors, each slot filled with the values of the expert phy2log puts
    there."""
    experts = []
    for l in range(LAYERS):
        ts = [torch.zeros((SLOTS,) + shape, dtype=dtype, device=DEVICE if DEVICE == "cpu"
                          else "cuda:%d" % rank) for shape, dtype in SHAPES]
        for s in range(SLOTS):
            fill_slot(ts, l, s, int(phy2log[l, rank * SLOTS + s]))
        experts.append(ts)
    return experts


def write_report_and_exit(report, out_dir, rank):
    path = os.path.join(out_dir, "rank%d.json" % rank)
    with open(path + ".tmp", "w") as f:
        json.dump(report, f)
    os.replace(path + ".tmp", path)
    sys.stdout.flush()
    # Without teardown: a peer that stopped answering leaves collectives that a clean
    # destroy_process_group would wait on; the report is written, the test reads it.
    os._exit(0)


def _fault(kind, rank, cycle):
    f = sb.runtime.FaultInjection()
    f.kind, f.rank, f.cycle = kind, rank, cycle
    return f


if __name__ == "__main__":
    main()
