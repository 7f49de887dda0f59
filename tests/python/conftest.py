"""Shared fixtures for the swiftbalancer Python tests.

Run by CTest (test `python_tests`) with PYTHONPATH at <build>/python; by hand:
    PYTHONPATH=build/python /usr/bin/python3 -m pytest -q tests/python
Tests that need the shared traces skip when the folder is absent.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]

# vllm-ascend, installed for its policy factory (scripts/install-deps.sh), registers a vLLM
# platform plugin that imports torch_npu (no Ascend NPU here): vLLM loads only the plugins
# VLLM_PLUGINS names, so the tests name none unless the caller chose otherwise.
os.environ.setdefault("VLLM_PLUGINS", "")

# deepseek-ai/EPLB README example: 2 layers x 12 experts, 16 replicas, 4 groups, 2 nodes, 8 GPUs.
README_WEIGHT = np.array([[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
                          [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]])
README_PHY2LOG = np.array([[5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1],
                           [7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1]])


def traces_dir():
    env = os.environ.get("SWIFTBALANCER_TRACES_DIR")
    path = Path(env) if env else REPO.parent / "shared" / "traces"
    return path / "deepseek_v3r1"


def load_trace(name):
    """SGLang {"logical_count": [61][256]} as float64, MoE layers only (rows with load)."""
    path = traces_dir() / name
    if not path.is_file():
        pytest.skip("shared trace %s not present" % path)
    with open(path) as f:
        w = np.asarray(json.load(f)["logical_count"], dtype=np.float64)
    return w[w.sum(axis=1) > 0]


@pytest.fixture
def decode_load():
    return load_trace("decode_in1000out1000.json")


@pytest.fixture
def prefill_load():
    return load_trace("prefill_in1024.json")


def rank_dup(layer, slots_per_rank):
    """True when some rank holds two replicas of one expert."""
    ranks = np.asarray(layer).reshape(-1, slots_per_rank)
    return any(len(set(r.tolist())) < len(r) for r in ranks)
