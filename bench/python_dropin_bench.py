#!/usr/bin/env python3
"""Times the drop-in calls on the full DeepSeek-V3 load and prints the median of each.

    PYTHONPATH=build/python /usr/bin/python3 bench/python_dropin_bench.py [--trace FILE] [--repeat N]

Load: an SGLang dump from the shared traces (61 layers, the 58 MoE layers with load kept),
or a seeded synthetic skewed load when the traces are absent. Layout: 32 ranks x 9 slots
(num_replicas 288, num_gpus 32), as in ANCHORS.md. Each timed call includes the argument
conversion and the result arrays (what an engine pays). The numpy reference
(swiftbalancer.reference) is timed too, a few runs, for comparison.
"""

import argparse
from pathlib import Path

import numpy as np

import swiftbalancer as sb
from bench_common import DEFAULT_TRACE, load, median_ms
from swiftbalancer import reference as ref

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--reference-repeat", type=int, default=3)
    args = ap.parse_args()

    weight, source = load(args.trace, np.float64)
    print("load: %s, %d layers x %d experts; 32 ranks x 9 slots" % (source, *weight.shape))
    cases = [
        ("rebalance_experts hierarchical (8 groups, 4 nodes), float64", weight, (288, 8, 4, 32)),
        ("rebalance_experts hierarchical (8 groups, 4 nodes), int64", weight.astype(np.int64),
         (288, 8, 4, 32)),
        ("rebalance_experts global (1 group, 1 node), float64", weight, (288, 1, 1, 32)),
    ]
    try:
        import torch
        cases.append(("rebalance_experts global, torch int64 tensor",
                      torch.from_numpy(weight.astype(np.int64)), (288, 1, 1, 32)))
    except ImportError:
        pass
    for name, w, a in cases:
        med, lo, hi = median_ms(lambda: sb.rebalance_experts(w, *a), args.repeat)
        print("%-62s median %7.2f ms  (min %.2f, max %.2f, %d runs)" % (name, med, lo, hi,
                                                                          args.repeat))
    for name, a in (("numpy reference, hierarchical", (288, 8, 4, 32)),
                    ("numpy reference, global", (288, 1, 1, 32))):
        med, lo, hi = median_ms(lambda: ref.rebalance_experts(weight, *a),
                                args.reference_repeat)
        print("%-62s median %7.2f ms  (%d runs)" % (name, med, args.reference_repeat))

    # vllm-ascend adapter, from the contiguous placement, per-slot workloads (even split).
    topo = sb.Topology(32, 9, 8)
    cur = sb.contiguous_placement(topo, weight.shape[0], weight.shape[1])
    _, cnt = sb.dense_log2phy(cur)
    shape = (weight.shape[0], 32, 9)
    table = cur.reshape(shape)
    work = (np.take_along_axis(weight, cur, 1) / np.take_along_axis(cnt, cur, 1)).reshape(shape)
    # threads None: default_threads() (the CPUs of this process, at most 8).
    for policy, threads in (("swift", None), ("swift", 1), ("deepseek-global", None)):
        p = sb.VllmAscendPolicy(policy=policy, ranks_per_node=8, threads=threads)
        try:
            med, lo, hi = median_ms(lambda: p.rebalance_experts(table, work),
                                    max(3, args.repeat // 5))
        except ValueError as e:
            print("VllmAscendPolicy(%s): %s" % (policy, e))
            continue
        print("%-62s median %7.2f ms  (min %.2f, max %.2f)" % (
            "VllmAscendPolicy(policy=%r, threads=%d)" % (policy, p.threads), med, lo, hi))


if __name__ == "__main__":
    main()
