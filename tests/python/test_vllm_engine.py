"""swiftbalancer.vllm against the installed vLLM's own EPLB modules (issue 18).

Imported from the vLLM package (scripts/install-deps.sh pins it, installed without its heavy
dependencies): ``AbstractEplbPolicy``, ``DefaultEplbPolicy`` and ``EPLB_POLICIES`` from
``vllm.distributed.eplb.policy``. ``compute_logical_maps`` lives in ``eplb_state.py``, whose
module imports the whole engine (attention backends, kernels, grammar libraries); the test reads
that one function from the installed file and compiles it alone, with torch in its namespace.
Nothing is stubbed. The whole module skips when vLLM is not installed.
"""

import ast
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
vpolicy = pytest.importorskip("vllm.distributed.eplb.policy",
                              reason="vLLM is not installed (scripts/install-deps.sh)")

from swiftbalancer import vllm as sbv  # noqa: E402

from conftest import load_trace  # noqa: E402


def _installed_function(relpath, name):
    """A top-level function of an installed vLLM file, compiled alone (torch in scope)."""
    import vllm
    path = Path(vllm.__file__).parent / relpath
    tree = ast.parse(path.read_text(), filename=str(path))
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    module = ast.Module(body=[node], type_ignores=[])
    scope = {"torch": torch}
    exec(compile(module, str(path), "exec"), scope)
    return scope[name]


compute_logical_maps = _installed_function("distributed/eplb/eplb_state.py",
                                           "compute_logical_maps")
Default = vpolicy.DefaultEplbPolicy


def rank_sets(phy2log, ranks):
    """[layers][ranks] sets of the experts each rank holds (-1 left out)."""
    a = np.asarray(phy2log).reshape(phy2log.shape[0], ranks, -1)
    return [[set(int(e) for e in r if e >= 0) for r in layer] for layer in a]


def moves(old, new, slots_per_rank):
    """(layer, expert, rank) triples new holds and old does not (old ranks past new's leave)."""
    o = np.asarray(old)
    n = np.asarray(new)
    count = 0
    for l in range(n.shape[0]):
        for r in range(n.shape[1] // slots_per_rank):
            have = set(o[l, r * slots_per_rank:(r + 1) * slots_per_rank].tolist())
            want = set(n[l, r * slots_per_rank:(r + 1) * slots_per_rank].tolist())
            count += len(want - have)
    return count


def imbalance(phy2log, load, ranks):
    """Mean over layers of max / mean rank load, each expert's load split evenly over its
    replicas (a rank with two replicas of one expert takes two shares)."""
    p = np.asarray(phy2log)
    w = np.asarray(load, dtype=np.float64)
    out = []
    for l in range(p.shape[0]):
        cnt = np.bincount(p[l], minlength=w.shape[1])
        share = w[l][p[l]] / cnt[p[l]]
        per_rank = share.reshape(ranks, -1).sum(axis=1)
        out.append(per_rank.max() / per_rank.mean())
    return float(np.mean(out))


def check_as_vllm_uses_it(phy2log, layers, experts, replicas):
    """What vLLM's eplb_state does with the policy's answer: a CPU int64 [L, P] map that
    compute_logical_maps turns into log2phy and counts covering every expert."""
    assert isinstance(phy2log, torch.Tensor)
    assert phy2log.shape == (layers, replicas) and phy2log.dtype == torch.int64
    assert phy2log.device.type == "cpu"
    log2phy, count = compute_logical_maps(phy2log, experts)
    assert count.shape == (layers, experts) and (count >= 1).all()
    assert (count.sum(dim=1) == replicas).all()
    for l in range(layers):
        for e in range(experts):
            slots = log2phy[l, e][log2phy[l, e] >= 0]
            assert len(slots) == count[l, e] and (phy2log[l, slots] == e).all()


def no_rank_dup(phy2log, ranks):
    return all(len(s) == phy2log.shape[1] // ranks for layer in rank_sets(phy2log, ranks)
               for s in layer)


def kept_in_place(old, new, slots_per_rank, ranks):
    """Every expert a remaining rank held (first copy) and still holds is in its old slot."""
    o, n = np.asarray(old), np.asarray(new)
    for l in range(n.shape[0]):
        for r in range(ranks):
            lo = r * slots_per_rank
            seen = set()
            for s in range(slots_per_rank):
                if lo + s >= o.shape[1]:
                    break
                e = int(o[l, lo + s])
                if e < 0 or e in seen:
                    continue
                seen.add(e)
                if e in n[l, lo:lo + slots_per_rank] and n[l, lo + s] != e:
                    return False
    return True


def skewed_load(layers, experts, seed):
    rng = np.random.default_rng(seed)
    w = rng.zipf(1.6, size=(layers, experts)).clip(max=2000) * 10
    return torch.from_numpy(w.astype(np.int64))


def test_registry_dispatches_to_ours(monkeypatch):
    assert issubclass(sbv.SwiftEplbPolicy, vpolicy.AbstractEplbPolicy)
    assert sbv.SwiftEplbPolicy.contract == "phy2log6"  # this vLLM's contract, detected
    monkeypatch.setitem(vpolicy.EPLB_POLICIES, "default", Default)
    monkeypatch.setenv(sbv.ENV_SWITCH, "1")
    assert "EPLB_POLICIES" in sbv.register()
    policy = vpolicy.EPLB_POLICIES["default"]
    assert policy is sbv.SwiftEplbPolicy
    w = skewed_load(4, 32, 1)
    old = Default.rebalance_experts(w, 48, 4, 2, 8)
    # As eplb_state.rearrange calls it: six positional arguments, CPU tensors.
    for args in ((w, 48, 4, 2, 8, old), (w, 48, 4, 2, 8, None)):
        new = policy.rebalance_experts(*args)
        theirs = Default.rebalance_experts(*args)
        assert new.shape == theirs.shape and new.dtype == theirs.dtype
        assert new.device == theirs.device
        check_as_vllm_uses_it(new, 4, 32, 48)


def test_phy2log_contract_builds_no_tables():
    from swiftbalancer import _core
    w = skewed_load(2, 16, 2).numpy()
    old = np.tile(np.arange(24) % 16, (2, 1))
    only = _core.engine_rebalance(w, 24, 4, 1, 4, old, "swift", -1, 1.0, 9, logical_maps=False)
    full = _core.engine_rebalance(w, 24, 4, 1, 4, old, "swift", -1, 1.0, 9)
    assert isinstance(only, np.ndarray) and np.array_equal(only, full[0])
    none = _core.engine_rebalance(w, 24, 4, 1, 4, None, "swift", -1, 1.0, 9, logical_maps=False)
    assert np.array_equal(none, _core.engine_rebalance(w, 24, 4, 1, 4, None, "swift", -1, 1.0,
                                                       9)[0])


def test_errors_where_vllm_asserts():
    w = skewed_load(2, 16, 3)
    for policy in (Default, sbv.SwiftEplbPolicy):
        with pytest.raises(AssertionError):
            policy.rebalance_experts(w, 24, 4, 1, 5)  # 24 replicas over 5 ranks
    with pytest.raises(ValueError, match="num_ranks"):
        sbv.SwiftEplbPolicy.rebalance_experts(w, 24, 4, 1, 5)


def test_from_vllm_maps_with_two_replicas_on_a_rank():
    # vLLM's default policy puts two replicas of a hot expert on one rank; ours starts from
    # such a map, never makes one, and keeps every expert that stays on a rank in its slot.
    layers, experts, ranks, slots = 6, 32, 8, 6
    found = 0
    for seed in range(6):
        a, b = skewed_load(layers, experts, 10 + seed), skewed_load(layers, experts, 50 + seed)
        old = Default.rebalance_experts(a, ranks * slots, 4, 2, ranks)
        found += not no_rank_dup(old, ranks)
        new = sbv.SwiftEplbPolicy.rebalance_experts(b, ranks * slots, 4, 2, ranks, old)
        check_as_vllm_uses_it(new, layers, experts, ranks * slots)
        assert no_rank_dup(new, ranks)
        assert kept_in_place(old, new, slots, ranks)
        budget0 = sbv.SwiftEplbPolicy.variant(max_transfers=0)
        held = budget0.rebalance_experts(b, ranks * slots, 4, 2, ranks, old)
        # Moves from vLLM's map, the repair's included: at most the budget (one per rank per
        # layer), or the repair's alone where that is more.
        assert moves(old, new, slots) <= max(layers * ranks, moves(old, held, slots))
        # With no budget, only the repair: a rank's second replica is replaced, nothing else.
        for l in range(layers):
            for r in range(ranks):
                seg_o = old[l, r * slots:(r + 1) * slots].tolist()
                seg_n = held[l, r * slots:(r + 1) * slots].tolist()
                firsts = [i for i, e in enumerate(seg_o) if e not in seg_o[:i]]
                assert all(seg_n[i] == seg_o[i] for i in firsts)
    assert found > 0  # the case this test is about did occur


def test_small_repair_worked_by_hand():
    # 2 ranks x 3 slots, 4 experts, loads 8, 4, 2, 1. Rank 0 holds 0, 0, 1 (two replicas of 0);
    # rank 1 holds 2, -1, 1. Expert 3 is on no rank. Repair: rank 0 keeps 0 and 1 in slots 0
    # and 2, rank 1 keeps 2 and 1 in slots 3 and 5; holes at slots 1 and 4. Expert 3 goes to
    # the lighter rank with a hole: rank 0 carries 8 + 4/2 = 10, rank 1 2 + 4/2 = 4, so slot 4.
    # The hole left (slot 1, rank 0 holds 0 and 1) takes the replica with the heaviest share:
    # 2 -> 2/2 = 1 against 3 -> 1/2: expert 2. With no budget the policy stops there.
    w = torch.tensor([[8, 4, 2, 1]])
    old = torch.tensor([[0, 0, 1, 2, -1, 1]])
    P = sbv.SwiftEplbPolicy.variant(max_transfers=0)
    assert P.rebalance_experts(w, 6, 1, 1, 2, old).tolist() == [[0, 2, 1, 2, 3, 1]]


@pytest.mark.parametrize("ranks_after", [7, 6])
def test_elastic_scale_down(ranks_after):
    # vLLM passes num_replicas for the remaining ranks and the old map of all ranks.
    layers, experts, slots, ranks = 5, 32, 6, 8
    a, b = skewed_load(layers, experts, 7), skewed_load(layers, experts, 8)
    old = Default.rebalance_experts(a, ranks * slots, 4, 2, ranks)
    replicas = ranks_after * slots
    new = sbv.SwiftEplbPolicy.rebalance_experts(b, replicas, 4, 1, ranks_after, old)
    check_as_vllm_uses_it(new, layers, experts, replicas)
    assert no_rank_dup(new, ranks_after)
    assert kept_in_place(old, new, slots, ranks_after)
    # vLLM's own policy takes the same arguments.
    assert Default.rebalance_experts(b, replicas, 4, 1, ranks_after, old).shape == new.shape


def test_elastic_scale_up():
    # reconfigure_physical_expert_slots widens the map with -1 before the rebalance.
    layers, experts, slots, ranks, ranks_after = 5, 32, 6, 6, 8
    a, b = skewed_load(layers, experts, 17), skewed_load(layers, experts, 18)
    old = Default.rebalance_experts(a, ranks * slots, 4, 2, ranks)
    padded = torch.nn.functional.pad(old, (0, (ranks_after - ranks) * slots), value=-1)
    replicas = ranks_after * slots
    for start in (old, padded):  # the -1 form, and the narrower map itself
        new = sbv.SwiftEplbPolicy.rebalance_experts(b, replicas, 4, 2, ranks_after, start)
        check_as_vllm_uses_it(new, layers, experts, replicas)
        assert no_rank_dup(new, ranks_after)
        assert kept_in_place(old, new, slots, ranks)
    assert Default.rebalance_experts(b, replicas, 4, 2, ranks_after, padded).shape == new.shape


def test_all_empty_old_map_and_bad_ids():
    w = skewed_load(2, 16, 4)
    empty = torch.full((2, 24), -1)
    new = sbv.SwiftEplbPolicy.rebalance_experts(w, 24, 4, 1, 4, empty)
    check_as_vllm_uses_it(new, 2, 16, 24)
    assert no_rank_dup(new, 4)
    bad = empty.clone()
    bad[1, 5] = 16
    with pytest.raises(ValueError, match=r"old_global_expert_indices\[1\]\[5\] is 16"):
        sbv.SwiftEplbPolicy.rebalance_experts(w, 24, 4, 1, 4, bad)


# The side-by-side cases (bench/python_vllm_bench.py): ranks, slots, nodes, workload A -> B.
CASES = [(32, 9, 4, "prefill_in1024.json", "decode_in1000out1000.json"),
         (64, 5, 8, "decode_in2000out100.json", "prefill_in2048.json"),
         (16, 17, 2, "prefill_in4096.json", "decode_in500out1500.json"),
         (64, 6, 8, "prefill_in2000out100.json", "decode_in1800out100.json")]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "%dx%d" % c[:2])
def test_deepseek_v3_from_vllms_own_map(case):
    ranks, slots, nodes, name_a, name_b = case
    a = torch.from_numpy(load_trace(name_a).astype(np.int64))
    b = torch.from_numpy(load_trace(name_b).astype(np.int64))
    replicas = ranks * slots
    start = Default.rebalance_experts(a, replicas, 8, nodes, ranks)
    theirs = Default.rebalance_experts(b, replicas, 8, nodes, ranks, start)
    ours = sbv.SwiftEplbPolicy.rebalance_experts(b, replicas, 8, nodes, ranks, start)
    check_as_vllm_uses_it(ours[:3], 3, b.shape[1], replicas)
    assert no_rank_dup(ours, ranks)
    assert imbalance(ours, b, ranks) <= 1.05
    assert moves(start, ours, slots) * 4 <= moves(start, theirs, slots)
