"""swiftbalancer.sglang against the installed SGLang (issue 18).

Imported from the SGLang package (scripts/install-deps.sh pins it, installed without its heavy
dependencies): ``sglang.srt.eplb.eplb_algorithms`` (``EplbAlgorithm``, ``rebalance_experts``,
``elasticity_aware``) and ``sglang.srt.plugins.hook_registry.HookRegistry``. Nothing is stubbed;
one test stands in for SGLang's serving state (``get_global_expert_location_metadata``, which
holds a map only once a server runs) with a plain object carrying ``physical_to_logical_map``.
The module skips when SGLang is not installed.
"""

import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
algos = pytest.importorskip("sglang.srt.eplb.eplb_algorithms",
                            reason="SGLang is not installed (scripts/install-deps.sh)")
hooks = pytest.importorskip("sglang.srt.plugins.hook_registry",
                            reason="SGLang is not installed (scripts/install-deps.sh)")

from swiftbalancer import sglang as sbs  # noqa: E402

from conftest import README_WEIGHT  # noqa: E402


def skewed(steps, layers, experts, seed):
    rng = np.random.default_rng(seed)
    return torch.from_numpy((rng.zipf(1.6, size=(steps, layers, experts)).clip(max=2000) * 10)
                            .astype(np.int64))


def check_maps(phy2log, log2phy, count, experts, physical, usable_slots=None):
    layers = phy2log.shape[0]
    assert phy2log.shape == (layers, physical) and phy2log.dtype == torch.int64
    assert log2phy.shape[:2] == (layers, experts) and count.shape == (layers, experts)
    assert (count >= 1).all()
    for l in range(layers):
        for e in range(experts):
            slots = log2phy[l, e][log2phy[l, e] >= 0]
            assert len(slots) == count[l, e] and (phy2log[l, slots] == e).all()
            if usable_slots is not None:
                assert all(int(s) in usable_slots for s in slots)


@pytest.fixture
def hook_registry(monkeypatch):
    """SGLang's registry, emptied before and after; the patched function put back."""
    monkeypatch.setattr(algos, "rebalance_experts", algos.rebalance_experts)
    hooks.HookRegistry.reset()
    yield hooks.HookRegistry
    hooks.HookRegistry.reset()


def test_every_algorithm_of_the_installed_release():
    w = skewed(3, 2, 16, 1)
    for algorithm in algos.EplbAlgorithm:
        if algorithm.name in sbs.REFUSED:
            with pytest.raises(ValueError, match="%s is not served" % algorithm.name):
                sbs.rebalance_experts(w, 24, 4, 4, 2, algorithm)
            continue
        assert algorithm.name in sbs.ALGORITHMS, algorithm  # a new value: decide what to do
        phy, l2p, cnt = sbs.rebalance_experts(w, 24, 4, 4, 2, algorithm)
        check_maps(phy, l2p, cnt, 16, 24)
        # SGLang's own answer has the same shapes, but for log2phy's width: this release's is
        # the most replicas of an expert, ours num_physical - experts + 1; both fit what
        # ExpertLocationMetadata._init_raw pads them to (num_physical).
        if not algorithm.name.startswith("elasticity"):
            theirs = algos.rebalance_experts(w, 24, 4, 4, 2, algorithm)
            assert theirs[0].shape == phy.shape and theirs[2].shape == cnt.shape
            assert theirs[1].shape[:2] == l2p.shape[:2]
            assert int(cnt.max()) <= l2p.shape[2] <= 24


def test_elasticity_aware_with_an_inactive_rank():
    # SGLang's elasticity_aware module, given the same mask: both put expert 0 in the inactive
    # rank's slots and route nothing there.
    from sglang.srt.eplb.eplb_algorithms import elasticity_aware
    w = skewed(2, 3, 16, 2)
    active = torch.tensor([1, 0, 1, 1], dtype=torch.int32)
    local = 6
    usable = {r * local + s for r in (0, 2, 3) for s in range(local)}
    for name in ("elasticity_aware", "elasticity_aware_hierarchical"):
        ours = sbs.rebalance_experts(w, 24, local, 4, 2, name, active_ranks=active)
        theirs = elasticity_aware.rebalance_experts(w.sum(0), 24, 4, 2, 4, name.endswith("l"),
                                                    active)
        check_maps(*ours, 16, 24, usable)
        assert (ours[0][:, local:2 * local] == 0).all()
        assert (theirs[0][:, local:2 * local] == 0).all()
        assert ours[0].shape == theirs[0].shape and ours[2].shape == theirs[2].shape
    with pytest.raises(ValueError, match="active_ranks"):
        sbs.rebalance_experts(w, 24, local, 4, 2, "elasticity_aware", active_ranks=[1, 1])


def test_plugin_only_under_the_switch(hook_registry, monkeypatch):
    monkeypatch.delenv(sbs.ENV_SWITCH, raising=False)
    assert sbs.register() is None
    assert not hook_registry._hooks.get(sbs.HOOK_TARGET)


def test_hook_registry_dispatches_to_ours(hook_registry, monkeypatch):
    monkeypatch.setenv(sbs.ENV_SWITCH, "1")
    assert sbs.register() == sbs.HOOK_TARGET
    hook_registry.apply_hooks()
    w = skewed(2, 2, 16, 3)
    # As ExpertLocationMetadata.init_by_eplb calls it (keywords), with no server state.
    kwargs = dict(tokens_per_expert=w, num_physical_experts=24, num_local_physical_experts=6,
                  num_groups=4, num_nodes=2, algorithm=algos.EplbAlgorithm.deepseek)
    got = algos.rebalance_experts(**kwargs)
    mine = sbs.rebalance_experts(**kwargs)
    assert all(torch.equal(a, b) for a, b in zip(got, mine))
    with pytest.raises(ValueError, match="deepseek_vec is not served"):
        algos.rebalance_experts(**dict(kwargs, algorithm=algos.EplbAlgorithm.deepseek_vec))


def test_hook_reads_the_placement_in_service(hook_registry, monkeypatch):
    # The placement in service comes from SGLang's expert-location metadata: the swift policy
    # then moves at most one expert per rank per layer from it.
    from sglang.srt.eplb import expert_location
    layers, experts, ranks, local = 3, 16, 4, 6
    w = skewed(2, layers, experts, 4)
    start = sbs.rebalance_experts(skewed(2, layers, experts, 5), 24, local, 4, 2, "deepseek")[0]
    monkeypatch.setattr(expert_location, "get_global_expert_location_metadata",
                        lambda: types.SimpleNamespace(physical_to_logical_map=start))
    monkeypatch.setenv(sbs.ENV_SWITCH, "1")
    sbs.register()
    hook_registry.apply_hooks()
    phy, l2p, cnt = algos.rebalance_experts(w, 24, local, 4, 2, algos.EplbAlgorithm.deepseek)
    check_maps(phy, l2p, cnt, experts, 24)
    moved = 0
    for l in range(layers):
        for r in range(ranks):
            seg = slice(r * local, (r + 1) * local)
            moved += len(set(phy[l, seg].tolist()) - set(start[l, seg].tolist()))
    assert moved <= layers * ranks
    scratch = sbs.rebalance_experts(w, 24, local, 4, 2, "deepseek")[0]
    assert not torch.equal(phy, scratch)  # the old map was used
