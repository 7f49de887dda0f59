"""Issue 12 from Python: sizes over core/limits.h and loads that overflow raise ValueError
(the C++ InputError), before anything large is allocated."""

import os

import numpy as np
import pytest

import swiftbalancer as sb


def test_topology_over_the_limits_raises():
    with pytest.raises(ValueError, match="ranks \\(16777217\\) exceed the limit"):
        sb.Topology(16777217, 256, 1)
    with pytest.raises(ValueError, match="16777216 slots\\) exceed the limit"):
        sb.Topology(65536, 256, 1)


def test_placement_over_the_limits_raises():
    topo = sb.Topology(1, 16, 1)
    with pytest.raises(ValueError, match="1073741824 layers"):
        sb.contiguous_placement(topo, 1 << 30, 16)


def test_read_load_sum_overflow_raises(tmp_path):
    p = tmp_path / "inf.json"
    p.write_text('{"logical_count": [[[1e308, 1]], [[1e308, 1]]]}')
    with pytest.raises(ValueError, match="overflows to infinity"):
        sb.read_load(str(p))


def test_read_load_fifo_raises(tmp_path):
    p = tmp_path / "f.json"
    os.mkfifo(p)
    with pytest.raises(ValueError, match="FIFO"):
        sb.read_load(str(p))
