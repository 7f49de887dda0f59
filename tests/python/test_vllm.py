"""swiftbalancer.vllm: vLLM's EPLB policy contracts, restated (these tests do not need vLLM;
test_vllm_engine.py checks the adapter against the installed vLLM's own modules).

vLLM calls ``policy.rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_ranks
[, old_global_expert_indices])`` with ``weight`` an int32/int64 CPU tensor (the summed window) and
expects int64 CPU tensors: phy2log [layers, num_replicas], log2phy [layers, experts,
num_replicas - experts + 1] padded with -1, logcnt [layers, experts]. The properties below are the
ones vLLM's own EPLB tests assert of its policy.
"""

import importlib
import sys
import types

import numpy as np
import pytest

import swiftbalancer as sb

torch = pytest.importorskip("torch")
from swiftbalancer import vllm as sbv  # noqa: E402

from conftest import README_PHY2LOG, README_WEIGHT  # noqa: E402

# The tuple contract whatever vLLM is installed (an installed vLLM makes phy2log6 the default).
T6 = sbv.SwiftEplbPolicy.variant(contract="tuple6")


def check_vllm_properties(phy2log, log2phy, logcnt, layers, experts, replicas):
    assert phy2log.shape == (layers, replicas) and phy2log.dtype == torch.int64
    assert log2phy.shape == (layers, experts, replicas - experts + 1)
    assert logcnt.shape == (layers, experts)
    assert log2phy.dtype == torch.int64 and logcnt.dtype == torch.int64
    for t in (phy2log, log2phy, logcnt):
        assert t.device.type == "cpu"
    assert (logcnt >= 1).all() and (logcnt.sum(dim=1) == replicas).all()
    for l in range(layers):
        for e in range(experts):
            slots = log2phy[l, e]
            valid = slots[slots >= 0]
            assert len(valid) == logcnt[l, e]
            assert (slots[len(valid):] == -1).all()  # padding at the end only
            assert (phy2log[l, valid] == e).all()
        assert sorted(phy2log[l].tolist()) == sorted(
            e for e in range(experts) for _ in range(int(logcnt[l, e])))


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.float32])
def test_tuple5_readme_example(dtype):
    # deepseek-ai/EPLB's README example, as vLLM's default policy computes it.
    P = sbv.SwiftEplbPolicy.variant(contract="tuple5")
    w = torch.tensor(README_WEIGHT, dtype=dtype)
    phy2log, log2phy, logcnt = P.rebalance_experts(w, 16, 4, 2, 8)
    check_vllm_properties(phy2log, log2phy, logcnt, 2, 12, 16)
    np.testing.assert_array_equal(phy2log.numpy(), README_PHY2LOG)


def test_contracts_and_windowed_weight():
    rng = np.random.default_rng(3)
    w = torch.from_numpy(rng.integers(0, 500, size=(6, 5, 16)).astype(np.int32))  # [window][L][E]
    old = torch.arange(24).remainder(16).repeat(5, 1)
    six = sbv.SwiftEplbPolicy.variant(contract="tuple6")
    p, l2p, cnt = six.rebalance_experts(w, 24, 4, 1, 4, old)
    check_vllm_properties(p, l2p, cnt, 5, 16, 24)
    # The window sums to the same answer as the summed load.
    p2, _, _ = six.rebalance_experts(w.sum(dim=0), 24, 4, 1, 4, old)
    assert torch.equal(p, p2)
    only = sbv.SwiftEplbPolicy.variant(contract="phy2log6").rebalance_experts(w, 24, 4, 1, 4, old)
    assert isinstance(only, torch.Tensor) and torch.equal(only, p)
    assert only.dtype == torch.int64 and only.shape == (5, 24)
    with pytest.raises(ValueError, match="contract"):
        sbv.SwiftEplbPolicy.variant(contract="tuple7")


def test_old_map_budget_is_honoured(decode_load):
    w = torch.from_numpy(decode_load.astype(np.int64))
    layers = w.shape[0]
    topo = sb.Topology(32, 9, 8)
    old = torch.arange(288).remainder(256).repeat(layers, 1)
    before = sb.balance_summary(old, decode_load, topo).mean_imbalance
    for budget in (0, 100, 1000):
        P = T6.variant(max_transfers=budget)
        phy2log, log2phy, logcnt = P.rebalance_experts(w, 288, 8, 4, 32, old)
        check_vllm_properties(phy2log[:2], log2phy[:2], logcnt[:2], 2, 256, 288)
        moved = sb.transfer_summary(old, phy2log, topo).total
        assert moved <= budget
        after = sb.balance_summary(phy2log, decode_load, topo).mean_imbalance
        assert after <= before + 1e-12
        if budget == 0:
            assert torch.equal(phy2log, old)
    # The default budget: one arrival per rank per layer.
    phy2log = T6.rebalance_experts(w, 288, 8, 4, 32, old)[0]
    assert sb.transfer_summary(old, phy2log, topo).total <= layers * 32


def test_target_option(decode_load):
    # Swift's per-layer goal, as a class option: a coarser goal stops each layer's search
    # sooner; the budget and vLLM's properties hold whatever it is, and a finer goal never
    # balances worse than a coarser one by more than rounding.
    w = torch.from_numpy(decode_load.astype(np.int64))
    layers = w.shape[0]
    topo = sb.Topology(32, 9, 8)
    old = torch.arange(288).remainder(256).repeat(layers, 1)
    results = {}
    for target in (0.0, 1.05, 1.5):
        P = T6.variant(target=target)
        phy2log, log2phy, logcnt = P.rebalance_experts(w, 288, 8, 4, 32, old)
        check_vllm_properties(phy2log[:2], log2phy[:2], logcnt[:2], 2, 256, 288)
        assert sb.transfer_summary(old, phy2log, topo).total <= layers * 32
        results[target] = sb.balance_summary(phy2log, decode_load, topo).mean_imbalance
    assert results[0.0] <= results[1.5] + 1e-9
    # At 1.5 a layer stops as soon as it is within 1.5: balance visibly coarser than the default.
    assert results[1.5] > results[0.0] + 0.01
    with pytest.raises(ValueError, match="target"):
        T6.variant(target=0.5).rebalance_experts(w, 288, 8, 4, 32, old)
    with pytest.raises(ValueError, match="target"):
        T6.variant(target=float("nan")).rebalance_experts(w, 288, 8, 4, 32, old)


def test_threads_option(decode_load):
    # The per-layer searches spread over threads: the same placement for any count, and the
    # GIL is released, so calls from two Python threads at once agree with a serial one.
    w = torch.from_numpy(decode_load.astype(np.int64))
    old = torch.arange(288).remainder(256).repeat(w.shape[0], 1)
    assert 1 <= sbv.default_threads() <= sbv.MAX_DEFAULT_THREADS
    assert sbv.SwiftEplbPolicy.threads is None and T6.threads is None
    serial = T6.variant(threads=1).rebalance_experts(w, 288, 8, 4, 32, old)
    for n in (2, 3, 8, None):
        got = T6.variant(threads=n).rebalance_experts(w, 288, 8, 4, 32, old)
        for a, b in zip(serial, got):
            assert torch.equal(a, b), n
    import threading
    out = [None, None]

    def call(i):
        out[i] = T6.variant(threads=2).rebalance_experts(w, 288, 8, 4, 32, old)

    ts = [threading.Thread(target=call, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for got in out:
        assert all(torch.equal(a, b) for a, b in zip(serial, got))
    for bad in (0, -1, 1.5, "2", 100000):
        with pytest.raises(ValueError, match="threads"):
            T6.variant(threads=bad).rebalance_experts(w, 288, 8, 4, 32, old)


def test_numpy_in_numpy_out():
    p, l2p, cnt = T6.rebalance_experts(README_WEIGHT, 16, 4, 2, 8)
    assert isinstance(p, np.ndarray) and p.dtype == np.int64 and l2p.shape == (2, 12, 5)


def test_bad_input():
    P = T6
    w = torch.tensor(README_WEIGHT)
    with pytest.raises(AssertionError, match="num_ranks"):  # as vLLM's own policy asserts
        P.rebalance_experts(w, 16, 4, 2, 6)
    with pytest.raises(ValueError, match="num_ranks"):
        P.rebalance_experts(w, 16, 4, 2, 6)
    with pytest.raises(ValueError, match="weight"):
        P.rebalance_experts(w[0], 16, 4, 2, 8)
    with pytest.raises(ValueError, match="weight"):
        P.rebalance_experts(-w, 16, 4, 2, 8)
    nan = w.double()
    nan[1, 3] = float("nan")
    with pytest.raises(ValueError, match="weight"):
        P.rebalance_experts(nan, 16, 4, 2, 8)
    old = torch.arange(16).remainder(12).repeat(2, 1)
    with pytest.raises(ValueError, match="old_global_expert_indices"):
        P.rebalance_experts(w, 16, 4, 2, 8, old[:1])  # one layer of two
    bad = old.clone()
    for v, where in ((40, r"\[0\]\[3\]"), (12, r"\[0\]\[3\]"), (-2, " holds -2")):
        bad[0, 3] = v
        with pytest.raises(ValueError, match="old_global_expert_indices" + where):
            P.rebalance_experts(w, 16, 4, 2, 8, bad)


def fake_vllm(monkeypatch, with_registry):
    """Installs a stand-in for vLLM's module layout (registry or the older function hook)."""
    names = ["vllm", "vllm.distributed", "vllm.distributed.eplb"]
    mods = {n: types.ModuleType(n) for n in names}
    if with_registry:
        mods["vllm.distributed.eplb.policy"] = types.ModuleType("vllm.distributed.eplb.policy")
        mods["vllm.distributed.eplb.policy"].EPLB_POLICIES = {"default": object}
    else:
        mods["vllm.distributed.eplb.policy"] = None  # an installed vLLM's registry: hidden
        for n in ("rebalance_algo", "eplb_state"):
            m = types.ModuleType("vllm.distributed.eplb." + n)
            m.rebalance_experts = None
            mods[m.__name__] = m
    for n, m in mods.items():
        monkeypatch.setitem(sys.modules, n, m)
    return mods


def test_plugin_installs_only_when_asked(monkeypatch):
    mods = fake_vllm(monkeypatch, with_registry=True)
    monkeypatch.delenv(sbv.ENV_SWITCH, raising=False)
    assert sbv.register() is None
    assert mods["vllm.distributed.eplb.policy"].EPLB_POLICIES["default"] is object
    monkeypatch.setenv(sbv.ENV_SWITCH, "1")
    assert "EPLB_POLICIES" in sbv.register()
    assert mods["vllm.distributed.eplb.policy"].EPLB_POLICIES["default"] is sbv.SwiftEplbPolicy


def test_plugin_on_the_function_hook(monkeypatch):
    mods = fake_vllm(monkeypatch, with_registry=False)
    monkeypatch.setenv(sbv.ENV_SWITCH, "on")
    sbv.register()
    fn = mods["vllm.distributed.eplb.eplb_state"].rebalance_experts
    phy2log, _, _ = fn(torch.tensor(README_WEIGHT), 16, 4, 2, 8)
    np.testing.assert_array_equal(phy2log.numpy(), README_PHY2LOG)


def test_contract_detected_from_vllm_abstract_class(monkeypatch):
    import abc

    class Abstract6(abc.ABC):
        @classmethod
        @abc.abstractmethod
        def rebalance_experts(cls, weight, num_replicas, num_groups, num_nodes, num_ranks,
                              old_global_expert_indices=None) -> "torch.Tensor":
            raise NotImplementedError

    fake_vllm(monkeypatch, with_registry=True)
    abstract = types.ModuleType("vllm.distributed.eplb.policy.abstract")
    abstract.AbstractEplbPolicy = Abstract6
    monkeypatch.setitem(sys.modules, abstract.__name__, abstract)
    try:
        mod = importlib.reload(sbv)
        assert issubclass(mod.SwiftEplbPolicy, Abstract6)
        assert mod.SwiftEplbPolicy.contract == "phy2log6"
        out = mod.SwiftEplbPolicy.rebalance_experts(torch.tensor(README_WEIGHT), 16, 4, 2, 8)
        assert isinstance(out, torch.Tensor)
    finally:
        monkeypatch.undo()
        importlib.reload(sbv)
    base = sbv._vllm_abstract_policy()
    assert sbv.SwiftEplbPolicy.contract == ("tuple6" if base is None else
                                            sbv.detect_contract(base))


def test_ascend_alias_renamed():
    assert sb.SwiftAscendPolicy is sb.VllmAscendPolicy
    with pytest.raises(AttributeError, match="SwiftAscendPolicy"):
        sb.SwiftBalanceEplb
