"""swiftbalancer.VllmAscendPolicy: vllm-ascend's EplbPolicy.rebalance_experts interface."""

import numpy as np
import pytest

import swiftbalancer as sb

from conftest import load_trace


def swift_or_skip():
    try:
        sb.VllmAscendPolicy(policy="swift").rebalance_experts([[[0, 1], [2, 3]]],
                                                              [[[5, 1], [1, 1]]])
    except ValueError as e:
        if "not built yet" in str(e):
            pytest.skip("swift policy not built yet")
        raise


def trace_tables(weight, topo):
    """Contiguous placement as [L][ranks][slots] and per-slot workload (even split)."""
    cur = sb.contiguous_placement(topo, weight.shape[0], weight.shape[1])
    _, cnt = sb.dense_log2phy(cur)
    work = np.take_along_axis(weight, cur, 1) / np.take_along_axis(cnt, cur, 1)
    shape = (weight.shape[0], topo.ranks, topo.slots_per_rank)
    return cur.reshape(shape), work.reshape(shape)


def test_hand_worked_layer():
    # Rank 0 holds the two hot experts (20 tokens), rank 1 the cold ones (2): global packing
    # puts one hot expert on each rank; 0 and 3 stay in their slots.
    policy = sb.VllmAscendPolicy(policy="deepseek-global")
    changed, priority, new = policy.rebalance_experts([[[0, 1], [2, 3]]], [[[10, 10], [1, 1]]])
    assert changed == 1 and isinstance(changed, int)
    assert priority.dtype == np.int64 and priority.tolist() == [0]
    assert new == [[[0, 2], [1, 3]]]
    np.testing.assert_allclose(policy.last_max_load_before, [20.0])
    np.testing.assert_allclose(policy.last_max_load_after, [11.0])


def test_balanced_layer_is_kept_and_priority_orders_by_gain():
    table = [[[0, 1], [2, 3]], [[0, 1], [2, 3]], [[0, 1], [2, 3]]]
    work = [[[5, 5], [5, 5]],      # balanced: unchanged
            [[10, 10], [1, 1]],    # 20 -> 11
            [[10, 4], [1, 1]]]     # 14 -> 11
    changed, priority, new = sb.VllmAscendPolicy(policy="deepseek-global").rebalance_experts(
        table, work)
    assert changed == 1
    assert priority.tolist() == [1, 2, 0]
    assert new[0] == table[0]


def test_nothing_to_gain_reports_unchanged():
    table = np.array([[[0, 1], [2, 3]]])
    changed, priority, new = sb.VllmAscendPolicy(policy="deepseek-global").rebalance_experts(
        table, np.ones((1, 2, 2)))
    assert changed == 0 and new == table.tolist() and priority.tolist() == [0]


def test_min_improvement_gate():
    table, work = [[[0, 1], [2, 3]]], [[[6, 5], [5, 5]]]  # 11 -> 11: no layer gains
    assert sb.VllmAscendPolicy(policy="deepseek-global").rebalance_experts(table, work)[0] == 0
    work = [[[10, 10], [1, 1]]]  # 20 -> 11 is 45 %: below a 50 % requirement
    p = sb.VllmAscendPolicy(policy="deepseek-global", min_improvement=0.5)
    changed, _, new = p.rebalance_experts(table, work)
    assert changed == 0 and new != table


def test_config_gives_ranks_per_node():
    class DynamicConfig:
        num_die_per_host = 3

    p = sb.VllmAscendPolicy(DynamicConfig(), policy="deepseek-global")
    assert p.ranks_per_node == 3
    with pytest.raises(ValueError, match="divisible by ranks per node"):
        p.rebalance_experts([[[0, 1], [2, 3]]], [[[1, 1], [1, 1]]])


@pytest.mark.parametrize("policy", ["deepseek-global", "swift"])
def test_trace_improves_and_keeps_slots(policy):
    if policy == "swift":
        swift_or_skip()
    weight = load_trace("decode_in1000out1000.json")
    topo = sb.Topology(32, 9, 8)
    table, work = trace_tables(weight, topo)
    changed, priority, new = sb.VllmAscendPolicy(policy=policy, ranks_per_node=8)\
        .rebalance_experts(table, work)
    new = np.array(new)
    assert changed == 1 and new.shape == table.shape
    assert sorted(priority.tolist()) == list(range(58))
    flat_old, flat_new = table.reshape(58, -1), new.reshape(58, -1)
    sb.validate_placement(flat_new, topo, 256)
    before = sb.balance_summary(flat_old, weight, topo)
    after = sb.balance_summary(flat_new, weight, topo)
    assert (after.imbalance <= before.imbalance + 1e-12).all()
    assert after.mean_imbalance < 1.05 < before.mean_imbalance
    # An expert that stays on a rank stays in its slot.
    for l in range(58):
        for r in range(32):
            for s in range(9):
                e = new[l, r, s]
                if e in table[l, r]:
                    assert table[l, r, s] == e


def test_swift_respects_transfer_budget():
    swift_or_skip()
    weight = load_trace("decode_in1000out1000.json")
    topo = sb.Topology(32, 9, 8)
    table, work = trace_tables(weight, topo)
    _, _, new = sb.VllmAscendPolicy(max_transfers=500, ranks_per_node=8).rebalance_experts(
        table, work)
    moved = sb.transfer_summary(table.reshape(58, -1), np.array(new).reshape(58, -1), topo)
    assert 0 < moved.total <= 500


def test_threads_change_nothing():
    # The swift policy's per-layer searches on 1 or 4 threads: the same deployment, priority and
    # loads; a thread count outside 1 .. 256 is refused naming `threads`.
    swift_or_skip()
    weight = load_trace("decode_in1000out1000.json")
    topo = sb.Topology(32, 9, 8)
    table, work = trace_tables(weight, topo)
    outs = []
    for threads in (1, 4, None):
        policy = sb.VllmAscendPolicy(max_transfers=800, ranks_per_node=8, threads=threads)
        assert policy.threads == (threads or sb.default_threads())
        outs.append((policy.rebalance_experts(table, work), policy.last_max_load_after))
    for (changed, priority, new), after in outs[1:]:
        assert changed == outs[0][0][0] and new == outs[0][0][2]
        assert priority.tolist() == outs[0][0][1].tolist()
        np.testing.assert_array_equal(after, outs[0][1])
    for bad in (0, -2, 2.5):
        with pytest.raises(ValueError, match="threads"):
            sb.VllmAscendPolicy(threads=bad)
    with pytest.raises(ValueError, match="threads"):
        sb.VllmAscendPolicy(threads=1000).rebalance_experts(table, work)


BAD = [
    ([[0, 1], [2, 3]], [[1, 1], [1, 1]], "3-D"),
    ([[[0, 1], [2, 3]]], [[[1, 1]]], "shape"),
    ([[[0, 1], [2, 3]]], [[[1, np.nan], [1, 1]]], "non-negative"),
    ([[[0, 1], [2, 3]]], [[[1, -1], [1, 1]]], r"expert_workload\[0\]\[0\]\[1\]"),
    ([[[0.0, 1], [2, 3]]], [[[1, 1], [1, 1]]], "integer"),
    ([[[0, 1], [2, 7]]], [[[1, 1], [1, 1]]], "current_expert_table"),
    ([[[0, 1], [2, 3]], [[0, 0], [2, 3]]], np.ones((2, 2, 2)), "current_expert_table"),
    ([[[0, 1], [2, 3]]], [[["a", "b"], ["c", "d"]]], "dtype"),
]


@pytest.mark.parametrize("table,work,message", BAD)
def test_bad_input_raises_value_error(table, work, message):
    with pytest.raises(ValueError, match=message):
        sb.VllmAscendPolicy(policy="deepseek-global").rebalance_experts(table, work)


def test_unknown_policy_names_known_ones():
    with pytest.raises(ValueError, match="known: deepseek"):
        sb.VllmAscendPolicy(policy="nope").rebalance_experts([[[0, 1]]], [[[1, 1]]])


def test_torch_inputs():
    torch = pytest.importorskip("torch")
    table = torch.tensor([[[0, 1], [2, 3]]])
    work = torch.tensor([[[10, 10], [1, 1]]], dtype=torch.int32)
    changed, priority, new = sb.VllmAscendPolicy(policy="deepseek-global").rebalance_experts(
        table, work)
    assert changed == 1 and new == [[[0, 2], [1, 3]]]
