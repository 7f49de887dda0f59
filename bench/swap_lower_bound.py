#!/usr/bin/env python3
"""A lower bound on the transfers any swaps-only policy needs, against swift's budget curve.

    PYTHONPATH=build/python /usr/bin/python3 bench/swap_lower_bound.py [--ranks 32 --slots 8]

Where ranks x slots equals the expert count there are no spare slots: every expert has one
replica and a placement changes only by swaps (2 transfers each). The current placement is
deepseek-global on prefill_in1024, the load decode_in1000out1000 (the `bench` row of issue 13).

The bound relaxes the problem: a rank above a level T must shed its excess, and its j best
swaps shed at most its j hottest experts minus the j coldest experts of the layer held
elsewhere; receivers are assumed to have room. So a layer needs at least the sum over ranks of
the fewest swaps that bring each below T, and T is at least the layer's floor (the hottest
expert with the S - 1 coldest, and the mean). An exact knapsack over the layers (levels per layer as options)
gives, for each transfer count, the lowest mean imbalance the relaxation allows; no swaps-only
policy does better. Skips (exit 0) when the shared traces are absent.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

import swiftbalancer as sb
from swiftbalancer import _core

TRACES = Path(os.environ.get("SWIFTBALANCER_TRACES_DIR",
                             Path(__file__).resolve().parent.parent.parent / "shared" / "traces"))


def read(name):
    with open(TRACES / "deepseek_v3r1" / (name + ".json")) as f:
        return np.asarray(json.load(f)["logical_count"], dtype=np.float64)


def swaps_needed(w, p, level):
    """Fewest swaps the relaxation allows to bring every rank of layer p ([R][S]) to <= level;
    None when some rank cannot get there."""
    loads = w[p].sum(axis=1)
    total = 0
    for r in np.nonzero(loads > level + 1e-9)[0]:
        own = np.sort(w[p[r]])[::-1]
        others = np.sort(np.delete(w, p[r]))
        shed = np.cumsum(own - others[:len(own)])
        ok = np.nonzero(loads[r] - shed <= level + 1e-9)[0]
        if len(ok) == 0:
            return None
        total += int(ok[0]) + 1
    return total


def layer_options(w, p, max_swaps):
    """Lowest imbalance the relaxation allows with k swaps, k = 0 .. max_swaps."""
    R, S = p.shape
    mean = w.sum() / R
    loads = w[p].sum(axis=1)
    # No rank gets below the mean, nor the rank of the hottest expert below its floor.
    floor = max(w.max() + np.sort(w)[:S - 1].sum(), mean)
    # The bound only changes at a rank's load, before or after its j best swaps.
    levels = set(loads.tolist()) | {float(floor)}
    for r in range(R):
        own = np.sort(w[p[r]])[::-1]
        others = np.sort(np.delete(w, p[r]))
        levels.update((loads[r] - np.cumsum(own - others[:S])).tolist())
    best = np.full(max_swaps + 1, np.inf)
    for level in sorted(x for x in levels if x >= floor - 1e-9):
        k = swaps_needed(w, p, level)
        if k is not None and k <= max_swaps:
            best[k] = min(best[k], level / mean)
    return np.minimum.accumulate(best)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, default=32)
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--nodes", type=int, default=4)
    args = ap.parse_args()
    if not (TRACES / "deepseek_v3r1").is_dir():
        print("shared traces not found under %s; skipped" % TRACES)
        return 0
    a, b = read("prefill_in1024"), read("decode_in1000out1000")
    if args.ranks * args.slots != b.shape[1]:
        print("ranks x slots must equal the %d experts (no spare slot)" % b.shape[1])
        return 2
    topo = sb.Topology(args.ranks, args.slots, args.ranks // args.nodes)
    current = _core.rebalance(a, topo, "deepseek-global", None, 0, -1, 1.0)
    layers = [l for l in range(b.shape[0]) if b[l].sum() > 0]
    max_swaps, total_swaps = 4 * args.ranks, 2000
    # best[s]: the lowest sum of layer imbalances with at most s swaps in all.
    best = np.full(total_swaps + 1, np.inf)
    best[0] = 0.0
    for l in layers:
        opts = layer_options(b[l], current[l].reshape(args.ranks, args.slots), max_swaps)
        nxt = np.full(total_swaps + 1, np.inf)
        for k in np.nonzero(np.isfinite(opts))[0]:
            nxt[k:] = np.minimum(nxt[k:], best[:total_swaps + 1 - k] + opts[k])
        best = np.minimum.accumulate(nxt)
    n = len(layers)
    print("%d x %d, %d layers: mean imbalance by transfers (swaps x 2)" % (args.ranks, args.slots, n))
    print("%10s %14s %10s" % ("transfers", "lower bound", "swift"))
    for t in (250, 500, 1000, 1308, 2000):
        swift = _core.rebalance(b, topo, "swift", current, 0, t, 1.0)
        print("%10d %14.4f %10.4f" % (t, best[t // 2] / n,
                                      sb.balance_summary(swift, b, topo).mean_imbalance))
    ascend = _core.rebalance(b, topo, "vllm-ascend-swap", current, 0, -1, 1.0)
    level = sb.balance_summary(ascend, b, topo).mean_imbalance
    moved = sb.transfer_summary(current, ascend, topo).total
    need = np.nonzero(best / n <= level)[0]
    print("vllm-ascend-swap: %.4f with %d transfers; the bound needs at least %s for it (%.2fx)"
          % (level, moved, 2 * need[0] if len(need) else "more than %d" % (2 * total_swaps),
             2 * need[0] / moved if len(need) else float("nan")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
