"""Every EP rank runs the engine's policy itself and the result is never broadcast (vLLM,
SGLang, vllm-ascend), so the adapters must give the same bytes in every process. This runs the
same calls here and in two spawned processes, for thread counts 1, 2 and 3, and compares a
digest of every output byte (issue 18)."""

import concurrent.futures
import hashlib
import multiprocessing

import numpy as np
import pytest

THREADS = (1, 2, 3)


def _inputs():
    rng = np.random.default_rng(2026)
    layers, experts, ranks, slots = 12, 64, 8, 10
    weight = (rng.zipf(1.4, size=(layers, experts)).clip(max=5000) * 7).astype(np.int64)
    window = rng.integers(0, 300, size=(4, layers, experts)).astype(np.int64)
    old = np.tile(np.arange(ranks * slots) % experts, (layers, 1))
    old[:, 3] = old[:, 2]  # two replicas of one expert on rank 0, as vLLM's policy makes them
    old[:, -1] = -1        # an empty slot
    table = np.tile(np.arange(ranks * slots) % experts, (layers, 1)).reshape(layers, ranks, slots)
    work = rng.integers(0, 1000, size=(layers, ranks, slots)).astype(np.float64)
    return weight, window, old, table, work, ranks, slots


def digests():
    """sha256 of every adapter's output bytes, per thread count."""
    import swiftbalancer as sb
    from swiftbalancer import sglang as sbs
    from swiftbalancer import vllm as sbv
    weight, window, old, table, work, ranks, slots = _inputs()
    out = {}
    for t in THREADS:
        h = hashlib.sha256()

        def add(*arrays):
            for a in arrays:
                a = np.ascontiguousarray(np.asarray(a))
                h.update(str((a.dtype.str, a.shape)).encode())
                h.update(a.tobytes())

        P = sbv.SwiftEplbPolicy.variant(contract="tuple6", threads=t)
        add(*P.rebalance_experts(weight, ranks * slots, 8, 2, ranks, old))
        add(*P.rebalance_experts(window, ranks * slots, 8, 2, ranks))
        add(P.variant(contract="phy2log6").rebalance_experts(weight, ranks * slots, 8, 2, ranks,
                                                             old))
        add(*sbs.rebalance_experts(window, ranks * slots, slots, 8, 2, "deepseek_hierarchical"))
        add(*sbs.rebalance_experts(window, ranks * slots, slots, 8, 2, "deepseek",
                                   old_map=np.maximum(old, 0)))
        add(*sbs.rebalance_experts(window, ranks * slots, slots, 8, 2, "elasticity_aware",
                                   active_ranks=[1, 1, 0, 1, 1, 1, 1, 1]))
        changed, priority, new = sb.VllmAscendPolicy(ranks_per_node=4, threads=t) \
            .rebalance_experts(table, work)
        add(np.array([changed]), priority, np.array(new))
        add(*sb.rebalance_experts(weight, ranks * slots, 8, 2, ranks))
        out[t] = h.hexdigest()
    return out


def test_same_bytes_in_three_processes_and_thread_counts():
    pytest.importorskip("swiftbalancer")
    here = digests()
    assert len(set(here.values())) == 1, here  # thread counts agree
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        futures = [pool.submit(digests) for _ in range(2)]
        others = [f.result(timeout=300) for f in futures]
    for other in others:
        assert other == here
