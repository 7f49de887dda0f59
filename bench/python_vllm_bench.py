#!/usr/bin/env python3
"""Times the vLLM adapter (swiftbalancer.vllm.SwiftEplbPolicy) as vLLM calls it.

    PYTHONPATH=build/python /usr/bin/python3 bench/python_vllm_bench.py [--trace FILE] [--repeat N]

Load: the DeepSeek-V3 decode trace (58 MoE layers x 256 experts) as an int64 CPU torch tensor,
the way vLLM hands its summed window; 32 ranks x 9 slots (num_replicas 288), 8 groups, 4 nodes.
With the old map (the contiguous placement, as vLLM starts) the swift policy runs under the
default budget; without it, DeepSeek's policy. Each timed call includes the conversion of the
arguments and the int64 result tensors. Target (issue 11): at most 10 ms with the old map.
Without torch the load goes in as a numpy array.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from swiftbalancer.vllm import SwiftEplbPolicy

HERE = Path(__file__).resolve().parent
DEFAULT_TRACE = Path(os.environ.get("SWIFTBALANCER_TRACES_DIR", HERE.parent.parent / "shared" /
                                    "traces")) / "deepseek_v3r1" / "decode_in1000out1000.json"


def load(trace):
    if trace.is_file():
        with open(trace) as f:
            w = np.asarray(json.load(f)["logical_count"], dtype=np.int64)
        return w[w.sum(axis=1) > 0], str(trace)
    rng = np.random.default_rng(0)
    return rng.zipf(1.6, size=(58, 256)).astype(np.int64) * 1000, "synthetic zipf(1.6), seed 0"


def timed(fn, repeat):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), min(times), max(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args()
    weight, source = load(args.trace)
    layers, experts = weight.shape
    replicas, ranks = 288, 32
    old = np.tile(np.arange(replicas) % experts, (layers, 1))
    try:
        import torch
        weight, old = torch.from_numpy(weight), torch.from_numpy(old)
        kind = "torch int64 CPU tensor"
    except ImportError:
        kind = "numpy int64 array (torch not installed)"
    print("load: %s, %d layers x %d experts, as a %s" % (source, layers, experts, kind))
    print("layout: %d ranks x %d slots, 8 groups, 4 nodes; median / min / max of %d calls"
          % (ranks, replicas // ranks, args.repeat))
    coarse = SwiftEplbPolicy.variant(target=1.02)
    cases = [
        ("old map given (swift, budget %d)" % (layers * ranks),
         lambda: SwiftEplbPolicy.rebalance_experts(weight, replicas, 8, 4, ranks, old)),
        ("old map, variant(target=1.02)",
         lambda: coarse.rebalance_experts(weight, replicas, 8, 4, ranks, old)),
        ("no old map (DeepSeek hierarchical)",
         lambda: SwiftEplbPolicy.rebalance_experts(weight, replicas, 8, 4, ranks)),
    ]
    try:
        import swiftbalancer as sb
        topo = sb.Topology(ranks, replicas // ranks, ranks // 4)
    except (ImportError, AttributeError):
        sb = None
    worst = 0.0
    for name, fn in cases:
        med, lo, hi = timed(fn, args.repeat)
        if name.startswith("old map given"):
            worst = med
        extra = ""
        if sb is not None:
            phy2log = fn()[0]
            extra = "  imbalance %.4f, %d transfers" % (
                sb.balance_summary(phy2log, np.asarray(weight), topo).mean_imbalance,
                sb.transfer_summary(old, phy2log, topo).total)
        print("  %-38s %8.2f ms %8.2f ms %8.2f ms%s" % (name, med, lo, hi, extra))
    print("target: old map given (default options), at most 10 ms: %s"
          % ("met" if worst <= 10.0 else "MISSED"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
