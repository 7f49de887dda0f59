#!/usr/bin/env python3
"""Runs DeepSeek's EPLB on a shared DeepSeek-V3/R1 load through swiftbalancer's drop-in and
through the numpy reference, and compares the two layer by layer.

    PYTHONPATH=build/python /usr/bin/python3 python/examples/compare_deepseek_trace.py \
        [--trace ../shared/traces/deepseek_v3r1/decode_in1000out1000.json] \
        [--replicas 288 --groups 8 --nodes 4 --gpus 32]

A layer is "identical" when phy2log, log2phy and logcnt all match. The two differ only where
the reference puts two replicas of one expert on one GPU (swiftbalancer never does) or, with
one group per node, in the order of the nodes; the imbalance is then compared instead.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

import swiftbalancer as sb
from swiftbalancer import reference as ref

DEFAULT = (Path(__file__).resolve().parents[2].parent / "shared" / "traces" / "deepseek_v3r1" /
           "decode_in1000out1000.json")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, default=DEFAULT,
                    help='SGLang load dump {"logical_count": [layers][experts]}')
    ap.add_argument("--replicas", type=int, default=288)
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--gpus", type=int, default=32)
    a = ap.parse_args()

    with open(a.trace) as f:
        weight = np.asarray(json.load(f)["logical_count"], dtype=np.float64)
    if weight.ndim == 3:  # [T][L][E] dumps: sum over steps
        weight = weight.sum(axis=0)
    moe = weight.sum(axis=1) > 0  # dense layers have no expert load
    weight = weight[moe]
    args = (a.replicas, a.groups, a.nodes, a.gpus)
    mode = "hierarchical" if a.groups % a.nodes == 0 else "global"
    print("%s: %d MoE layers x %d experts; %d replicas on %d GPUs, %d nodes, %d groups (%s)" %
          (a.trace.name, weight.shape[0], weight.shape[1], a.replicas, a.gpus, a.nodes,
           a.groups, mode))

    t = time.perf_counter()
    ours = sb.rebalance_experts(weight, *args)
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    theirs = ref.rebalance_experts(weight, *args)
    t_ref = time.perf_counter() - t

    slots_per_gpu = a.replicas // a.gpus
    identical, doubled, other = [], [], []
    for l in range(weight.shape[0]):
        k = min(ours[1].shape[2], theirs[1].shape[2])
        if ((ours[0][l] == theirs[0][l]).all() and (ours[2][l] == theirs[2][l]).all() and
                (ours[1][l, :, :k] == theirs[1][l, :, :k]).all()):
            identical.append(l)
            continue
        gpus = theirs[0][l].reshape(-1, slots_per_gpu)
        if any(len(set(g.tolist())) < slots_per_gpu for g in gpus):
            doubled.append(l)
        else:
            other.append(l)

    topo = sb.Topology(a.gpus, slots_per_gpu, a.gpus // a.nodes)
    s_ours = sb.balance_summary(ours[0], weight, topo)
    s_ref = sb.balance_summary(theirs[0], weight, topo)
    print("identical layers: %d of %d" % (len(identical), weight.shape[0]))
    print("layers where the reference puts two replicas of an expert on one GPU: %d" %
          len(doubled))
    print("other differing layers (node order, float ties): %d %s" % (len(other), other))
    print("imbalance (max/mean GPU load)  swiftbalancer: mean %.5f max %.5f" %
          (s_ours.mean_imbalance, s_ours.max_imbalance))
    print("                               reference:     mean %.5f max %.5f" %
          (s_ref.mean_imbalance, s_ref.max_imbalance))
    worst = np.max(np.abs(s_ours.imbalance - s_ref.imbalance) / s_ref.imbalance)
    print("largest per-layer imbalance difference: %.3f %%" % (100 * worst))
    print("time  swiftbalancer: %.1f ms   numpy reference: %.1f ms" % (t_ours * 1e3,
                                                                     t_ref * 1e3))


if __name__ == "__main__":
    main()
