"""swiftbalancer.sglang: SGLang's EPLB calls (restated; these tests do not need SGLang;
test_sglang_engine.py runs the adapter against the installed SGLang) and its recorder dumps."""

import enum
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import swiftbalancer as sb

torch = pytest.importorskip("torch")
from swiftbalancer import sglang as sbs  # noqa: E402

from conftest import README_PHY2LOG, README_WEIGHT  # noqa: E402


class EplbAlgorithm(enum.Enum):  # as SGLang declares it
    deepseek = enum.auto()
    deepseek_hierarchical = enum.auto()
    deepseek_vec = enum.auto()
    deepseek_vec_hierarchical = enum.auto()
    elasticity_aware = enum.auto()
    elasticity_aware_hierarchical = enum.auto()


def test_algorithm_level_call_with_buffer_and_no_groups():
    # [buffer, layers, experts]: the buffer sums to the README load; num_groups=None -> global.
    w = torch.tensor(README_WEIGHT, dtype=torch.int64)
    buffered = torch.stack([w // 2, w - w // 2])
    phy, l2p, cnt = sbs.rebalance_experts(buffered, 16, 2, None, 2, None)
    ref = sbs.deepseek_rebalance_experts(w, 16, 4, 2, 8, enable_hierarchical=False)
    for a, b in zip((phy, l2p, cnt), ref):
        assert a.dtype == torch.int64 and torch.equal(a, b)
    assert l2p.shape == (2, 12, 16 - 12 + 1)
    assert (cnt.sum(dim=1) == 16).all()


@pytest.mark.parametrize("algorithm", [EplbAlgorithm.deepseek_hierarchical,
                                       "elasticity_aware_hierarchical", None])
def test_hierarchical_matches_readme(algorithm):
    w = torch.tensor(README_WEIGHT, dtype=torch.int32)
    phy, _, cnt = sbs.rebalance_experts(w, 16, 2, 4, 2, algorithm)
    np.testing.assert_array_equal(phy.numpy(), README_PHY2LOG)
    dl = sbs.deepseek_rebalance_experts(w, 16, 4, 2, 8, enable_hierarchical=True)
    assert torch.equal(dl[0], phy)


def test_bad_arguments():
    w = torch.tensor(README_WEIGHT)
    with pytest.raises(AssertionError, match="num_groups"):
        sbs.deepseek_rebalance_experts(w, 16, 3, 2, 8, enable_hierarchical=True)
    with pytest.raises(ValueError, match="num_groups"):
        sbs.deepseek_rebalance_experts(w, 16, None, 2, 8, enable_hierarchical=True)
    with pytest.raises(ValueError, match="num_local_physical_experts"):
        sbs.rebalance_experts(w, 16, 3, 4, 2, "deepseek")
    with pytest.raises(ValueError, match="algorithm"):
        sbs.rebalance_experts(w, 16, 2, 4, 2, "lplb")
    for name in ("deepseek_vec", EplbAlgorithm.deepseek_vec_hierarchical):
        with pytest.raises(ValueError, match="is not served: .* each step of the"):
            sbs.rebalance_experts(w, 16, 2, 4, 2, name)
    with pytest.raises(ValueError, match="tokens_per_expert|weight"):
        sbs.rebalance_experts(w[None, None], 16, 2, 4, 2, "deepseek")


def test_recorder_dump_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    count = torch.from_numpy(rng.integers(0, 1000, size=(7, 3, 16)))  # [steps][layers][experts]
    dump = tmp_path / "expert_distribution_recorder_1.pt"
    torch.save({"rank": 0, "logical_count": count,
                "average_utilization_rate_over_window": 0.9}, dump)
    load = sbs.read_recorder_dump(dump)
    np.testing.assert_array_equal(load, count.sum(dim=0).double().numpy())
    npy, js = tmp_path / "load.npy", tmp_path / "load.json"
    assert sbs.convert(dump, npy) == (3, 16)
    np.testing.assert_array_equal(np.load(npy), load)
    # From the command line, then read back by the library and by `swiftbalancer plan`'s reader.
    proc = subprocess.run([sys.executable, "-m", "swiftbalancer.sglang", "convert", str(dump),
                           str(js)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(json.loads(js.read_text())["logical_count"], load)
    np.testing.assert_array_equal(sb.read_load(js), load)
    cli = os.environ.get("SWIFTBALANCER_CLI")  # set by CTest
    if cli and os.path.exists(cli):
        for path in (js, npy):
            out = tmp_path / ("placement_%s.json" % path.suffix[1:])
            proc = subprocess.run([cli, "plan", "--load", str(path), "--ranks", "4",
                                   "--slots-per-rank", "5", "--out", str(out)],
                                  capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, proc.stderr
            placement = sb.read_placement(out, sb.Topology(4, 5), 16)
            sb.validate_placement(placement, sb.Topology(4, 5), 16)


def test_bad_dumps(tmp_path):
    torch.save({"rank": 0}, tmp_path / "a.pt")
    with pytest.raises(ValueError, match="logical_count"):
        sbs.read_recorder_dump(tmp_path / "a.pt")
    torch.save({"logical_count": torch.zeros(4)}, tmp_path / "b.pt")
    with pytest.raises(ValueError, match="shape"):
        sbs.read_recorder_dump(tmp_path / "b.pt")
    (tmp_path / "c.pt").write_text("not a torch file")
    with pytest.raises(ValueError, match="not a torch file"):
        sbs.read_recorder_dump(tmp_path / "c.pt")
    proc = subprocess.run([sys.executable, "-m", "swiftbalancer.sglang", "convert",
                           str(tmp_path / "missing.pt"), str(tmp_path / "o.npy")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no such file" in proc.stderr
