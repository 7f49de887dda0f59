#!/usr/bin/env python3
"""What swiftbalancer.torch.Balancer's per-step calls cost the serving thread, cold.

    PYTHONPATH=build/python .venv/bin/torchrun --nproc-per-node 4 bench/torch_serving_calls.py [--steps N]
    PYTHONPATH=<build>/python torchrun --nproc-per-node GPUS bench/torch_serving_calls.py --device cuda

4 ranks on gloo (CPU), 4 layers x 5 slots, counts bound with bind_counts, async mode with no
rebalance in the run (the interval is longer than it), so every step is an ordinary one. Each
call is timed right after a gloo all_reduce of the same size every step: the thread has just
slept in a collective and the host's other ranks ran on its core, as after an engine's
dispatch. Rows: a Python call that does nothing (the floor of any call there), a pybind11
property (the binding's dispatcher and nothing else), before_forward and after_forward (the
runtime's per-step calls, plain CPython methods), after_forward + before_forward back to back
(what a step pays: docs/torch.md), record(layer, counts) (one layer's counts, as an engine
hands them after each layer's dispatch), record_step(counts) (every layer's at once),
route(layer, topk_ids) for 64 tokens x 4 choices and route_topk on the same ids (the tensor
operations it replaces on CPU tables) and counters() (a pybind11 method building a dict, for
comparison). Printed per row: the median over steps and ranks, its ratio to the empty call, and
the 90th percentile (us). The machine is shared: compare rows of one run.

--device cuda: the experts, the bound counts, the layer's counts and the top-k ids on cuda:RANK
(one GPU per rank), the weights on an NCCL group, the counts and votes on the gloo group. Each
row is the serving thread's (host) time: the device calls only launch kernels (record adds into
the device accumulator; route runs route_topk's operations on the device tables), and the GPU
runs them later; with no rebalance in the run, after_forward never copies the counts to the host.
"""

import argparse
import time

import torch
import torch.distributed as dist

import swiftbalancer
import swiftbalancer.torch as sbt
from swiftbalancer.runtime import make_config

LAYERS, SLOTS, EXPERTS = 4, 5, 16


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q / 100))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=400, help="steps timed per row (default 400)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="where the experts, counts and ids live (default cpu)")
    a = ap.parse_args()
    dist.init_process_group("gloo")
    ranks, rank = dist.get_world_size(), dist.get_rank()
    device, device_group = torch.device("cpu"), None
    if a.device == "cuda":
        device = torch.device("cuda", rank)
        torch.cuda.set_device(device)
        device_group = dist.new_group(backend="nccl")
    experts = [[torch.zeros(SLOTS, 64, 64, device=device)] for _ in range(LAYERS)]
    n_experts = min(EXPERTS, ranks * SLOTS)  # one rank (one GPU): each expert once
    phy2log = torch.tensor([[p % n_experts for p in range(ranks * SLOTS)]] * LAYERS)
    bal = sbt.Balancer(swiftbalancer.Topology(ranks=ranks, slots_per_rank=SLOTS), phy2log,
                       experts, config=make_config(mode="async", interval_steps=10 ** 9),
                       cpu_group=dist.new_group(backend="gloo"), device_group=device_group)
    counts = torch.zeros(LAYERS, SLOTS, dtype=torch.int64, device=device)
    bal.bind_counts(counts)
    # One layer's counts, as an engine hands them.
    row = torch.zeros(SLOTS, dtype=torch.int64, device=device)
    # One layer's top-k ids: 64 tokens x 4 choices, as the example routes them.
    topk = torch.randint(0, n_experts, (64, 4),
                         generator=torch.Generator().manual_seed(rank)).to(device)
    wake = torch.zeros(1024)
    bal.before_forward()

    def step_pair():
        bal.after_forward()
        bal.before_forward()

    rows = [("empty Python call", lambda: None),
            ("pybind11 property (rank)", lambda: bal._b.rank),
            ("after_forward", bal.after_forward),
            ("before_forward", bal.before_forward),
            ("after_forward + before_forward", step_pair),
            ("record(layer, counts)", lambda: bal.record(0, row)),
            ("record_step(counts)", lambda: bal.record_step(counts)),
            ("route(layer, topk_ids)", lambda: bal.route(0, topk)),
            ("route_topk (tensor ops)", lambda: sbt.route_topk(bal.log2phy[0],
                                                               bal.replica_count[0], topk,
                                                               offset=rank)),
            ("counters() (pybind11, a dict)", bal.counters)]
    results = []
    for name, call in rows:
        us = []
        for _ in range(a.steps):
            dist.all_reduce(wake)
            counts += 1
            t0 = time.perf_counter_ns()
            call()
            us.append((time.perf_counter_ns() - t0) / 1e3)
        everyone = [None] * ranks
        dist.all_gather_object(everyone, us)
        results.append((name, [x for r in everyone for x in r]))
    bal.close()
    if rank == 0:
        floor = percentile(results[0][1], 50)
        print("calls right after a gloo all_reduce, %d ranks, %s tensors, %d steps each (us)"
              % (ranks, device.type, a.steps))
        print("%-32s %9s %7s %9s" % ("call", "median", "ratio", "p90"))
        for name, us in results:
            print("%-32s %9.1f %7.1f %9.1f" % (name, percentile(us, 50),
                                               percentile(us, 50) / floor, percentile(us, 90)))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
