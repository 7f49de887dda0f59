"""One rank of the swiftbalancer.torch weight-mover test (test_torch_mover.py starts four).

    python3 mover_worker.py RANK WORLD PORT ONE_PEER_ROUNDS MAX_OPS OUT.json

Every rank builds the same seeded 58-layer plan from the policy, holds 3 tensors of different
dtypes per expert slot, moves every layer and checks every byte of every local slot against the
placement in service after each layer. Rank 2 starts its transfers of FAULT_LAYER late (past the
timeout): that layer must stay on its old bytes and map on every rank, and move on a retry.
"""

import datetime
import json
import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist

import swiftbalancer as sb
from swiftbalancer.torch import WeightMover

LAYERS, EXPERTS, SLOTS = 58, 12, 4
FAULT_LAYER, FAULT_RANK, TIMEOUT_S = 7, 2, 1.0


def content(layer, expert):
    """The tensors of `expert` in `layer`: uint8 weights, float32 scales, int64 biases."""
    i = torch.arange(40)
    return [((layer * 31 + expert * 7 + i) % 251).to(torch.uint8),
            (layer * 1000 + expert + torch.arange(6) / 8).to(torch.float32),
            (layer << 20) + expert * 1000 + torch.arange(3, dtype=torch.int64)]


def plans(topo):
    rng = np.random.default_rng(11)
    load = rng.zipf(1.5, size=(LAYERS, EXPERTS)).astype(np.float64)
    old = sb.contiguous_placement(topo, LAYERS, EXPERTS)
    new = sb.rebalance(load, topo, "deepseek-global")
    aligned = sb.align_to_current(old, new, topo)
    new[::2] = aligned[::2]  # odd layers keep the policy's slot order: many local copies
    return old, new


def bad_slots(mover, experts, rank, layer):
    phy = mover.phy2log[layer]
    bad = 0
    for s in range(SLOTS):
        want = content(layer, int(phy[rank * SLOTS + s]))
        bad += sum(not torch.equal(a, b) for a, b in zip(experts[layer][s], want))
    return bad


def main():
    rank, world, port = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    one_peer, max_ops, out = sys.argv[4] == "1", int(sys.argv[5]), sys.argv[6]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    dist.init_process_group("gloo", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    topo = sb.Topology(world, SLOTS)
    old, new = plans(topo)
    experts = [[content(l, int(old[l, rank * SLOTS + s])) for s in range(SLOTS)]
               for l in range(LAYERS)]
    mover = WeightMover(topo, rank, experts, old, timeout_s=TIMEOUT_S, max_ops_per_batch=max_ops,
                        one_peer_rounds=one_peer)
    if rank == FAULT_RANK:
        mover.inject_delay(FAULT_LAYER, TIMEOUT_S + 0.5)
    report = {"committed": [], "bad": 0, "maps_ok": True, "remote_ops": 0}
    for l in range(LAYERS):
        report["remote_ops"] += int(sb.make_layer_plan(old[l], new[l], topo).remote_ops)
        ok = mover.move_layer(l, new[l])
        report["committed"].append(bool(ok))
        want = new[l] if ok else old[l]
        report["maps_ok"] &= bool((mover.phy2log[l] == want).all())
        report["bad"] += bad_slots(mover, experts, rank, l)
    deadline = time.monotonic() + 30
    while mover.parked and time.monotonic() < deadline:  # the late transfers land in staging
        time.sleep(0.05)
    report["parked_left"] = mover.parked
    report["retry"] = bool(mover.move_layer(FAULT_LAYER, new[FAULT_LAYER]))
    report["bad_after_retry"] = bad_slots(mover, experts, rank, FAULT_LAYER)
    report["maps_ok"] &= bool((mover.phy2log == new).all())
    report["counters"] = mover.counters
    with open(out, "w") as f:
        json.dump(report, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
