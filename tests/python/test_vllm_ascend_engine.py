"""swiftbalancer.vllm_ascend against the installed vllm-ascend's policy factory (issue 18).

vllm-ascend (scripts/install-deps.sh builds its pure-Python wheel from the released sdist,
without its NPU kernels) imports ``torch_npu`` at module level in its SwiftBalanceEplb policy;
``torch_npu`` cannot load without an Ascend NPU, so this test puts an empty stand-in module in
its place when it is absent (it is the only stub). Everything else (PolicyFactory, EplbPolicy,
the factory's no-argument construction) is the installed package's own. Skips without
vllm-ascend.
"""

import importlib.machinery
import importlib.util
import sys
import types

import numpy as np
import pytest

if importlib.util.find_spec("vllm_ascend") is None:
    pytest.skip("vllm-ascend is not installed (scripts/install-deps.sh)", allow_module_level=True)
_stub = None
if "torch_npu" not in sys.modules and importlib.util.find_spec("torch_npu") is None:
    _stub = types.ModuleType("torch_npu")  # no Ascend NPU here
    _stub.__spec__ = importlib.machinery.ModuleSpec("torch_npu", None)
    sys.modules["torch_npu"] = _stub
try:
    factory = pytest.importorskip("vllm_ascend.eplb.core.policy.policy_factory")
finally:
    if _stub is not None and sys.modules.get("torch_npu") is _stub:
        del sys.modules["torch_npu"]  # only the factory's import needed it

import swiftbalancer as sb  # noqa: E402
from swiftbalancer import vllm_ascend as sba  # noqa: E402


@pytest.fixture
def installed(monkeypatch):
    for name in sba.POLICY_NAMES.values():
        monkeypatch.setattr(factory, name, getattr(factory, name))
    monkeypatch.delenv(sb.RANKS_PER_NODE_ENV, raising=False)
    return monkeypatch


def table_and_load(layers=3, ranks=4, slots=5, experts=16, seed=0):
    rng = np.random.default_rng(seed)
    table = np.stack([np.arange(ranks * slots) % experts for _ in range(layers)])
    load = rng.zipf(1.5, size=(layers, ranks * slots)).clip(max=500).astype(np.float64)
    return table.reshape(layers, ranks, slots), load.reshape(layers, ranks, slots)


def test_factory_builds_ours_with_no_arguments(installed):
    assert sba.install(2).endswith("SwiftBalanceEplb")
    policy = factory.PolicyFactory.generate_policy(2)
    assert isinstance(policy, sb.VllmAscendPolicy)
    assert policy.ranks_per_node == 0  # no env, no NPU: one node
    table, load = table_and_load()
    changed, priority, new = policy.rebalance_experts(table, load)
    assert changed in (0, 1) and sorted(priority.tolist()) == [0, 1, 2]
    assert np.asarray(new).shape == table.shape
    # The other factory types stay vllm-ascend's own.
    assert not isinstance(factory.PolicyFactory.generate_policy(1), sb.VllmAscendPolicy)


def test_ranks_per_node_from_the_environment(installed):
    sba.install(2)
    installed.setenv(sb.RANKS_PER_NODE_ENV, "2")
    assert factory.PolicyFactory.generate_policy(2).ranks_per_node == 2
    installed.setenv(sb.RANKS_PER_NODE_ENV, "two")
    with pytest.raises(ValueError, match=sb.RANKS_PER_NODE_ENV):
        factory.PolicyFactory.generate_policy(2)


def test_flashlb_four_dimensional_load(installed):
    sba.install(3)
    policy = factory.PolicyFactory.generate_policy(3)
    table, load = table_and_load(seed=1)
    stages = np.stack([load * 0.25, load * 0.75])  # [stages, layers, ranks, slots]
    four = policy.rebalance_experts(table, stages)
    three = sb.VllmAscendPolicy().rebalance_experts(table, load)
    assert four[0] == three[0] and np.array_equal(four[1], three[1]) and four[2] == three[2]


def test_switch_and_bad_type(installed):
    installed.delenv(sba.ENV_SWITCH, raising=False)
    assert sba.register() is None
    assert factory.SwiftBalanceEplb is not sb.VllmAscendPolicy
    installed.setenv(sba.ENV_SWITCH, "1")
    assert sba.register().endswith("SwiftBalanceEplb")
    with pytest.raises(ValueError, match="policy_type"):
        sba.install(7)
