"""swiftbalancer.torch.Balancer: four processes on gloo (torch_balancer_worker.py), the C++
runtime over torch.distributed, every slot's bytes checked against the tables after every step.
"""

import json
import os

import pytest
from torch_ranks import free_port, require_torch, spawn_ranks

torch, sbt = require_torch()

import swiftbalancer as sb  # noqa: E402

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_balancer_worker.py")
RANKS, SLOTS, LAYERS = 4, 3, 3


def run_ranks(scenario, tmp_path, timeout=60, killed=()):
    """Runs the 4 ranks; returns their reports (None for the ranks in `killed`, which must
    have died of SIGKILL)."""
    spawn_ranks([WORKER, scenario, str(tmp_path)], RANKS, timeout, killed)
    return [None if r in killed else
            json.load(open(os.path.join(tmp_path, "rank%d.json" % r))) for r in range(RANKS)]


def plan_bytes(placements, expert_bytes):
    """Bytes the transfer plans of every committed change move, from one rank's history of
    placements (start: the initial one)."""
    topo = sb.Topology(RANKS, SLOTS)
    import numpy as np
    from torch_balancer_worker import initial_placement
    prev = initial_placement().numpy()
    total = 0
    for cur in placements:
        cur = np.asarray(cur, dtype=np.int64)
        for l in range(LAYERS):
            if not np.array_equal(prev[l], cur[l]):
                total += int(sb.make_layer_plan(prev[l], cur[l], topo).remote_ops) * expert_bytes
        prev = cur
    return total


@pytest.fixture(autouse=True)
def _worker_on_path(monkeypatch):
    monkeypatch.syspath_prepend(os.path.dirname(WORKER))


@pytest.mark.parametrize("scenario", ["move", "move1"])
def test_ranks_agree_move_the_planned_bytes_and_keep_tables_in_place(tmp_path, scenario):
    # move1: one operation in flight per rank, so each layer's transfers run as many stages.
    reports = run_ranks(scenario, tmp_path)
    first = reports[0]
    assert first["transport"] == "torch-gloo"
    for r in reports:
        assert r["wrong_slots"] == 0, "a slot held another expert than its table says"
        assert r["placements"] == first["placements"], "ranks disagree on a placement"
    c = [r["counters"] for r in reports]
    assert all(x["rebalances"] >= 1 and x["layers_committed"] >= 1 for x in c)
    assert all(x["layers_failed"] == 0 and x["errors"] == 0 for x in c)
    assert first["placements"][-1] != first["placements"][0] or c[0]["layers_committed"] > 0
    moved = plan_bytes(first["placements"], first["expert_bytes"])
    assert moved > 0
    assert sum(x["bytes_received"] for x in c) == moved
    assert sum(x["bytes_sent"] for x in c) == moved
    assert c[0]["imbalance_after"] < c[0]["imbalance_before"]
    assert 'swiftbalancer_rebalances_total{rank="0"}' in first["metrics"]


def test_a_failed_transfer_leaves_the_layer_old_and_serving_goes_on(tmp_path):
    reports = run_ranks("fault", tmp_path)
    first = reports[0]
    for r in reports:
        assert r["wrong_slots"] == 0
        assert r["placements"] == first["placements"]
        assert len(r["placements"]) == 40
    c = [r["counters"] for r in reports]
    assert all(x["layers_failed"] >= 1 for x in c), c
    # The other layers of that cycle, and later cycles, still commit.
    assert all(x["layers_committed"] >= 1 for x in c)
    assert c[0]["transfer_failures"] >= 1 or c[1]["transfer_failures"] >= 1
    # A receiver of the withheld sends cannot withdraw its posted gloo receives: its staging is
    # parked, never reused for a later layer (a late message may still land there).
    assert sum(x["parked_staging_bytes"] for x in c) > 0
    assert sum(x["bytes_received"] for x in c) == plan_bytes(first["placements"],
                                                             first["expert_bytes"])


def test_a_peer_that_stops_answering_never_hangs_the_others(tmp_path):
    reports = run_ranks("stall", tmp_path)
    assert reports[3]["stopped_at"] == 10
    for r in reports[:3]:
        assert r["wrong_slots"] == 0
        assert len(r["placements"]) == 40, "a rank did not finish its steps"
        assert r["counters"]["balancing_stopped"] == 1
        assert "timed out" in r["counters"]["last_error"], r["counters"]["last_error"]
        # Bounded: one collective timeout (500 ms) at most per step, nothing near gloo's 20 s.
        assert max(r["step_seconds"]) < 5.0
        # After the stop the placement in service no longer changes.
        tail = r["placements"][12:]
        assert all(p == tail[0] for p in tail)


def test_a_rank_killed_mid_cycle_leaves_the_others_serving_on_a_valid_placement(tmp_path):
    reports = run_ranks("die", tmp_path, killed=(3,))
    first = reports[0]
    for r in reports[:3]:
        assert r["wrong_slots"] == 0, "a slot held another expert than its table says"
        assert len(r["placements"]) == 40, "a survivor did not finish its steps"
        assert r["placements"] == first["placements"], "survivors disagree on a placement"
        c = r["counters"]
        assert c["balancing_stopped"] == 1 and c["errors"] >= 1
        assert max(r["step_seconds"]) < 5.0, "a survivor waited past its deadlines"


def test_record_step_and_bound_counts_give_the_same_load_and_placements_as_record(tmp_path):
    reports = run_ranks("step", tmp_path)
    keys = ("gathers", "rebalances", "layers_committed", "bytes_sent", "bytes_received")
    for r in reports:
        assert r["wrong_slots"] == 0, "a slot held another expert than its table says"
        assert r["placements_a"] == reports[0]["placements_a"], "ranks disagree on a placement"
        assert r["placements_b"] == r["placements_a"], "record_step decided otherwise"
        assert r["placements_c"] == r["placements_a"], "bound counts decided otherwise"
        # The imbalance the gathered load had before and after each rebalance, step by step.
        assert r["imbalance_b"] == r["imbalance_a"]
        assert r["imbalance_c"] == r["imbalance_a"]
        ca, cb, cc = r["counters_a"], r["counters_b"], r["counters_c"]
        assert [cb[k] for k in keys] == [ca[k] for k in keys]
        assert [cc[k] for k in keys] == [ca[k] for k in keys]
        assert ca["layers_failed"] == cb["layers_failed"] == cc["layers_failed"] == 0
        # after_forward took the bound tensor and zeroed it in place, every step.
        assert r["bound_left_nonzero"] == 0 and not r["bound_moved"]
    # Equal placements prove something only if the loads moved them, more than once.
    placements = reports[0]["placements_a"]
    assert sum(p != q for p, q in zip(placements, placements[1:])) >= 2
    assert len({tuple(x) for x in reports[0]["imbalance_a"]}) >= 3


def test_route_spreads_tokens_over_replicas():
    log2phy = torch.tensor([[0, 5, -1], [1, -1, -1], [2, 3, 4]])
    count = torch.tensor([2, 1, 3])
    ids = torch.tensor([[0, 2], [0, 2], [1, 2], [0, 0]])
    got = sbt.route_topk(log2phy, count, ids)
    # flat positions 0..7: expert 0 -> replica i % 2, expert 2 -> i % 3, expert 1 -> 1.
    assert got.tolist() == [[0, 3], [0, 2], [1, 4], [0, 5]]
    assert got.dtype == torch.long
    assert sbt.route_topk(log2phy, count, ids, offset=1)[0].tolist() == [5, 4]


def _in_process_step_stats():
    """One step of the in-process balancer (swiftbalancer.runtime, one rank): its stats dict."""
    from swiftbalancer import runtime
    import numpy as np
    topo = sb.Topology(1, 1)
    b = runtime.Balancer(runtime.InProcessWorld(1), topo, 0, sb.contiguous_placement(topo, 1, 1),
                         policy="deepseek-global", mode="off")
    b.register_expert(0, 0, [np.zeros(4, dtype=np.uint8)])
    b.before_forward()
    return b.after_forward()


def test_bad_arguments_are_refused_before_any_collective():
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo", init_method="tcp://127.0.0.1:%d"
                                             % free_port(), rank=0, world_size=1)
    topo = sb.Topology(1, 2)
    good = [[torch.zeros(2, 3)]]
    with pytest.raises(ValueError, match="leading dimension"):
        sbt.Balancer(topo, [[0, 1]], [[torch.zeros(3, 3)]])
    with pytest.raises(ValueError, match="integer"):
        sbt.Balancer(topo, torch.tensor([[0.0, 1.0]]), good)
    with pytest.raises(ValueError, match=r"\[layers, 2\]"):
        sbt.Balancer(topo, [[0, 1, 2]], good)
    with pytest.raises(ValueError, match="topology 2"):
        sbt.Balancer(sb.Topology(2, 1), [[0, 1]], good)
    with pytest.raises(ValueError, match="not contiguous"):
        sbt.Balancer(topo, [[0, 1]], [[torch.zeros(3, 2).t()]])
    with pytest.raises(ValueError, match=r"^layer 0: rank 0 holds two replicas of expert 1$"):
        sbt.Balancer(topo, [[1, 1]], good)
    with pytest.raises(ValueError, match=r"^layer 0: expert 1 has no replica$"):
        sbt.Balancer(topo, [[0, 2]], good)
    b = sbt.Balancer(topo, [[0, 1]], good, mode="off")
    with pytest.raises(ValueError, match="one per local slot"):
        b.record(0, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="out of range"):
        b.record(5, torch.zeros(2, dtype=torch.long))
    b.record(0, torch.tensor([1, 2], dtype=torch.int32))
    # Counts on a device other than the CPU or the experts' (here a meta tensor, which no
    # kernel can count into) are refused before anything is recorded.
    for call in (lambda c: b.record(0, c), lambda c: b.record_step(c.view(1, 2))):
        with pytest.raises(ValueError, match=r"^counts must be on the CPU or the experts' "
                           r"device \(cpu\); got meta$"):
            call(torch.zeros(2, dtype=torch.long, device="meta"))
    for bad, given in ((torch.zeros(1, 3, dtype=torch.long), r"torch.int64 \[1, 3\]"),
                       (torch.zeros(2, 2, dtype=torch.long), r"torch.int64 \[2, 2\]"),
                       (torch.zeros(2, dtype=torch.long), r"torch.int64 \[2\]"),
                       (torch.zeros(1, 2), r"torch.float32 \[1, 2\]"),
                       (torch.zeros(1, 2, dtype=torch.bool), r"torch.bool \[1, 2\]")):
        with pytest.raises(ValueError, match=r"counts must be an integer tensor \[1, 2\] "
                           r"\(layers x local slots\); got " + given):
            b.record_step(bad)
    with pytest.raises(ValueError, match=r"\[2\] \(one per local slot\); got torch.bool \[2\]"):
        b.record(0, torch.zeros(2, dtype=torch.bool))
    b.record_step(torch.tensor([[1, 2]], dtype=torch.int32))
    b.record_step(torch.tensor([[1, 2]]))
    stats = b.after_forward()
    assert isinstance(stats, sbt.StepStats)
    assert stats.step == 1 and stats[0] == 1
    # The same fields, in the same order, as the in-process balancer's dict (its own binding).
    in_process = _in_process_step_stats()
    assert list(stats.__match_args__) == list(in_process)
    for name in stats.__match_args__:
        assert type(getattr(stats, name)) is type(in_process[name]), name
    assert (stats.layers_committed, stats.errors, stats.gathered) == (0, 0, False)
    with pytest.raises(ValueError, match=r"\(layers x local slots\); got torch.int64 \[2\]"):
        b.bind_counts(torch.zeros(2, dtype=torch.long))
    bound = torch.tensor([[3, 4]], dtype=torch.int32)
    b.bind_counts(bound)
    b.after_forward()
    assert bound.tolist() == [[0, 0]], "after_forward did not zero the bound counts"
    b.bind_counts(None)
    bound += 5
    b.after_forward()
    assert bound.tolist() == [[5, 5]], "an unbound tensor was still taken"
    # A negative count is refused with its place named, and nothing of the call is recorded;
    # a bound tensor's are dropped, and after_forward says so once its step is done.
    with pytest.raises(ValueError, match=r"^counts must not be negative: layer 0, local slot 1 "
                       r"holds -3$"):
        b.record(0, torch.tensor([2, -3], dtype=torch.int32))
    with pytest.raises(ValueError, match=r"^counts must not be negative: layer 0, local slot 0 "
                       r"holds -1$"):
        b.record_step(torch.tensor([[-1, 4]]))
    bound = torch.tensor([[7, -2]])
    b.bind_counts(bound)
    with pytest.raises(ValueError, match=r"^the bound counts were dropped: counts must not be "
                       r"negative: layer 0, local slot 1 holds -2; step 4 ran without them$"):
        b.after_forward()
    assert bound.tolist() == [[0, 0]], "the dropped counts were left in the bound tensor"
    assert b.after_forward().step == 5
    b.bind_counts(None)
    # record and record_step parse their own arguments (plain CPython methods): by position or
    # by name, and a wrong call is a TypeError naming the argument.
    b.record(layer=0, counts=torch.tensor([1, 2]))
    b.record(0, counts=torch.tensor([1, 2]))
    b.record_step(counts=torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match="layer 5 out of range"):
        b.record(counts=torch.zeros(2, dtype=torch.long), layer=5)
    with pytest.raises(ValueError, match="one per local slot"):
        b.record(counts=torch.zeros(3, dtype=torch.long), layer=0)
    with pytest.raises(ValueError, match=r"layer -1 out of range \[0, 1\)"):
        b.record(-1, torch.zeros(2, dtype=torch.long))
    for call, message in (
            (lambda: b.record(0), r"^record\(\) missing required argument 'counts'$"),
            (lambda: b.record(), r"^record\(\) missing required argument 'layer'$"),
            (lambda: b.record(0, [1, 2]),
             r"^record\(\): counts must be a torch.Tensor, not list$"),
            (lambda: b.record(0.0, torch.zeros(2, dtype=torch.long)),
             r"^record\(\): layer must be an integer, not float$"),
            (lambda: b.record(0, torch.zeros(2), 1), r"^record\(\) takes 2 arguments \(3 given\)$"),
            (lambda: b.record(0, layer=0),
             r"^record\(\) got multiple values for argument 'layer'$"),
            (lambda: b.record(0, torch.zeros(2), slot=1),
             r"^record\(\) got an unexpected keyword argument 'slot'$"),
            (lambda: b.record_step(None),
             r"^record_step\(\): counts must be a torch.Tensor, not NoneType$"),
            (lambda: b.record_step(), r"^record_step\(\) missing required argument 'counts'$")):
        with pytest.raises(TypeError, match=message):
            call()
    with pytest.raises(OverflowError):
        b.record(2 ** 64, torch.zeros(2, dtype=torch.long))
    # route: exact on the identity placement, refused with the problem named.
    assert b.route(0, torch.tensor([[1, 0], [0, 1]], dtype=torch.int32)).tolist() == [[1, 0],
                                                                                      [0, 1]]
    assert b.route(layer=0, topk_ids=torch.zeros(0, 4, dtype=torch.long)).shape == (0, 4)
    with pytest.raises(ValueError, match=r"^topk id 2 out of range \[0, 2\)$"):
        b.route(0, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"^topk id -1 out of range \[0, 2\)$"):
        b.route(0, torch.tensor([-1]))
    with pytest.raises(ValueError,
                       match=r"^topk_ids must be an integer tensor; got torch.float32$"):
        b.route(0, torch.zeros(2))
    with pytest.raises(ValueError, match=r"^layer 1 out of range \[0, 1\)$"):
        b.route(1, torch.zeros(2, dtype=torch.long))
    with pytest.raises(TypeError, match=r"^route\(\): topk_ids must be a torch.Tensor, not list$"):
        b.route(0, [0, 1])
    # A method called on an object whose __init__ never ran says so instead of crashing.
    bare = type(b._b).__new__(type(b._b))
    with pytest.raises(ValueError, match="the balancer was not initialised"):
        bare.after_forward()
    b.close()
    with pytest.raises(ValueError, match="the balancer is closed"):
        b.record(0, torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="closed"):
        b.before_forward()
    with pytest.raises(ValueError, match="closed"):
        b.after_forward()
