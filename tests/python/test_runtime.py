"""swiftbalancer.runtime: the asynchronous balancer driven from Python threads (one per rank)."""

import threading
import time

import numpy as np
import pytest

import swiftbalancer as sb

runtime = pytest.importorskip("swiftbalancer.runtime")

RANKS, SLOTS, LAYERS, EXPERTS = 2, 3, 2, 5
BYTES = 64


def fill(buf, layer, expert):
    buf[:] = (layer * 16 + expert) & 0xFF


def run_ranks(steps, load, step_seconds=0.0, **options):
    """Runs RANKS balancers in lockstep; returns per-rank (placement, counters, buffers, bad).
    step_seconds: a pause per step, so that the worker gets time on a loaded machine."""
    topo = sb.Topology(RANKS, SLOTS)
    world = runtime.InProcessWorld(RANKS)
    initial = sb.contiguous_placement(topo, LAYERS, EXPERTS)
    barrier = threading.Barrier(RANKS, timeout=30)
    results = [None] * RANKS
    errors = []

    def rank_main(rank):
        try:
            b = runtime.Balancer(world, topo, rank, initial, policy="deepseek-global",
                                 interval_steps=2, window_intervals=1, decision_poll_steps=1,
                                 layers_per_step=1,
                                 # normal priority: a nice-19 worker starves on a busy machine
                                 background_worker=False, **options)
            bufs = {}
            for l in range(LAYERS):
                for s in range(SLOTS):
                    weights = np.empty(BYTES, dtype=np.uint8)
                    scales = np.empty(8, dtype=np.float32)
                    fill(weights, l, initial[l, rank * SLOTS + s])
                    scales[:] = initial[l, rank * SLOTS + s]
                    b.register_expert(l, s, [weights, scales])
                    bufs[l, s] = (weights, scales)
            bad = 0
            for _ in range(steps):
                barrier.wait()
                time.sleep(step_seconds)
                b.before_forward()
                for l in range(LAYERS):
                    phy = b.phy2log(l)
                    counts = np.zeros(SLOTS, dtype=np.int64)
                    for s in range(SLOTS):
                        e = phy[rank * SLOTS + s]
                        w, sc = bufs[l, s]
                        if not ((w == ((l * 16 + e) & 0xFF)).all() and (sc == e).all()):
                            bad += 1  # a table never points at weights not yet arrived
                        reps = len(b.replicas(l, e))
                        counts[s] = load[l, e] // reps
                    b.record(l, counts)
                b.after_forward()
            results[rank] = (b.placement, b.counters(), bad)
        except Exception as e:  # surfaced by the test below
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=rank_main, args=(r,)) for r in range(RANKS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return topo, results


def test_two_ranks_rebalance_and_move_weights():
    # Experts 1 and 2 are hot and start together on rank 0 (rank 1 holds 3, 4, 0).
    load = np.array([[10, 1000, 900, 10, 10], [10, 1000, 900, 10, 10]])
    # Steps of 2 ms: a decision must not depend on the worker keeping up with steps that take
    # microseconds (it did not, under a loaded ctest -j2 run).
    topo, results = run_ranks(100, load, step_seconds=0.002)
    p0 = results[0][0]
    for placement, counters, bad in results:
        np.testing.assert_array_equal(placement, p0)
        assert bad == 0
        assert counters["layers_committed"] >= 1 and counters["errors"] == 0
    before = sb.balance_summary(sb.contiguous_placement(topo, LAYERS, EXPERTS), load, topo)
    after = sb.balance_summary(p0, load, topo)
    assert after.mean_imbalance < before.mean_imbalance


def test_bad_arguments():
    topo = sb.Topology(2, 3)
    world = runtime.InProcessWorld(2)
    initial = sb.contiguous_placement(topo, 1, 4)
    with pytest.raises(ValueError):
        runtime.Balancer(runtime.InProcessWorld(3), topo, 0, initial)
    with pytest.raises(ValueError):
        runtime.Balancer(world, topo, 0, initial.astype(float))
    with pytest.raises(ValueError):
        runtime.Balancer(world, topo, 0, initial, mode="fast")
    b = runtime.Balancer(world, topo, 0, initial, mode="off")
    with pytest.raises(ValueError):
        b.record(0, np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError):
        b.record(5, np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError):
        b.register_expert(0, 0, [np.zeros((4, 4))[:, ::2]])
    with pytest.raises(ValueError):
        b.select(0, 9, 0, 0)


def test_config_defaults_come_from_cpp():
    # A Balancer built without options carries a default-constructed C++ BalancerConfig; a
    # keyword overrides exactly its field (nested policy options by their own name).
    topo = sb.Topology(2, 3)
    initial = sb.contiguous_placement(topo, 1, 4)
    cpp = runtime.BalancerConfig()
    b = runtime.Balancer(runtime.InProcessWorld(2), topo, 0, initial, mode="off",
                         transfer_timeout_ms=cpp.transfer_timeout_ms + 7, max_transfers=11)
    got = b.config
    for name in runtime.BalancerConfig.field_names:
        if name in ("mode", "transfer_timeout_ms", "policy_options", "link_weights", "fault"):
            continue
        assert getattr(got, name) == getattr(cpp, name), name
    assert got.mode == "off" and got.transfer_timeout_ms == cpp.transfer_timeout_ms + 7
    assert got.policy_options.max_transfers == 11
    assert got.policy_options.num_groups == cpp.policy_options.num_groups
    assert got.link_weights.inter_node == cpp.link_weights.inter_node
    assert got.fault.kind == cpp.fault.kind
    with pytest.raises(TypeError, match="interval_step"):
        runtime.make_config(interval_step=3)
    with pytest.raises(ValueError, match="worker_timeout_ms"):
        runtime.make_config(worker_timeout_ms=-1)
    base = runtime.make_config(interval_steps=9)
    assert runtime.make_config(base, layers_per_step=2).interval_steps == 9
    assert base.layers_per_step == cpp.layers_per_step  # the copy, not the original, changed


def test_shift_config_nested_and_under_its_flat_names():
    # BalancerConfig.shift is the C++ ShiftConfig; the flat names it had before it was nested
    # still read and write the same fields, by attribute and by keyword.
    cfg = runtime.make_config(shift_check_steps=4, shift_layers_per_step=8)
    assert cfg.shift.check_steps == 4 and cfg.shift_check_steps == 4
    assert cfg.shift.layers_per_step == 8
    cfg.shift.trigger_ratio = 1.5  # the nested object is the config's own, not a copy
    assert cfg.shift_trigger_ratio == 1.5
    cfg.shift_min_gap_steps = 7
    assert cfg.shift.min_gap_steps == 7
    s = runtime.ShiftConfig()
    assert s.check_steps == 0 and s.trigger_ratio == runtime.BalancerConfig().shift_trigger_ratio
    s.skip_below = 1.25
    cfg.shift = s
    assert cfg.shift_skip_below == 1.25 and cfg.shift_check_steps == 0
    for name in ("shift_check_steps", "shift_trigger_ratio", "shift_rearm_ratio",
                 "shift_min_gap_steps", "shift_skip_below", "shift_layers_per_step"):
        assert name in runtime.BalancerConfig.field_names
    topo = sb.Topology(2, 3)
    initial = sb.contiguous_placement(topo, 1, 4)
    with pytest.raises(ValueError, match="shift.trigger_ratio"):
        runtime.Balancer(runtime.InProcessWorld(2), topo, 0, initial, mode="off",
                         shift_check_steps=2, shift_trigger_ratio=0.5)


def test_log_sink_is_a_python_callable():
    # The worker of rank 1 throws in cycle 0: the failure reaches the Python sink with its
    # severity, from the worker or serving thread, and serving goes on.
    lines = []
    fault = runtime.FaultInjection()
    fault.kind, fault.rank, fault.cycle = "worker-exception", 1, 0
    load = np.array([[10, 1000, 900, 10, 10], [10, 1000, 900, 10, 10]])
    _, results = run_ranks(12, load, fault=fault,
                           log=lambda severity, line: lines.append((severity, line)))
    assert any(sev in ("warning", "error") for sev, _ in lines), lines
    assert all(isinstance(sev, str) and isinstance(line, str) for sev, line in lines)
    assert results[1][1]["worker_failures"] + results[0][1]["cycles_dropped"] >= 1
