"""swiftbalancer._torch._Transport, the balancer's transport over torch.distributed groups: four
processes on gloo (torch_transport_worker.py), each check on a group of its own."""

import json
import os

import pytest
from torch_ranks import require_torch, spawn_ranks

require_torch()

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_transport_worker.py")
RANKS = 4


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    out = tmp_path_factory.mktemp("transport")
    spawn_ranks([WORKER, str(out)], RANKS, timeout=90)
    return [json.load(open(out / ("rank%d.json" % r))) for r in range(RANKS)]


def test_collectives_run_in_the_order_asked_whatever_order_they_are_waited_in(reports):
    for r in reports:
        got = r["ordered"]
        assert got["blocking"] == [[6 + RANKS * i, RANKS] for i in (2, 5, 8, 11)]
        for i in range(0, 12, 3):
            assert got["started"]["gather%d" % i] == [x for rank in range(RANKS)
                                                      for x in (rank * 100 + i, -i)]
        for i in range(1, 12, 3):
            assert got["started"]["max%d" % i] == [(RANKS - 1) * 10 + i]
        assert got["broken"] is False
        assert got["name"] == "torch-gloo"


def test_a_started_collective_starts_with_nobody_waiting_on_it(reports):
    for r in reports:
        assert r["nobody_waits"] == {"ok": [0 + 1 + 2 + 3]}


def test_a_thread_that_waits_on_a_queued_collective_starts_it(reports):
    for r in reports:
        got = r["waiter_wakes"]
        assert got["reduced"] == [0, 0]
        assert got["gathered"] == [0, 1, 2, 3]
        assert got["seconds"] < 10


def test_a_collective_not_started_by_its_deadline_fails_and_breaks_the_transport(reports):
    for r in reports:
        got = r["not_started"]
        assert got["first"]["error"] == "RuntimeError"
        assert "all-reduce on gloo was not started within its timeout" in got["first"]["message"]
        assert got["broken"] is True
        assert got["later"]["error"] == "RuntimeError"
        assert "broken since: all-reduce on gloo was not started" in got["later"]["message"]


def test_closing_with_a_collective_still_queued_does_not_wait_for_it(reports):
    for r in reports:
        assert r["dropped"]["seconds"] < 5


def test_bad_arguments_raise_value_errors(reports):
    got = reports[0]["bad_arguments"]
    assert got["poll"] == {"error": "ValueError", "message": "poll_interval must be at least 1 ms"}
    assert got["op"] == {"error": "ValueError",
                         "message": "op must be 'sum', 'min' or 'max', not 'avg'"}
    assert got["timeout"] == {"error": "ValueError", "message": "timeout_ms must be at least 1"}
