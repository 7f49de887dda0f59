"""swiftbalancer.prometheus: the collector's exposition parses and equals counters()."""

import numpy as np
import pytest

import swiftbalancer as sb

prom = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from swiftbalancer.prometheus import BalancerCollector  # noqa: E402


def scrape(collector):
    registry = prom.CollectorRegistry()
    registry.register(collector)
    text = prom.generate_latest(registry).decode()
    samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, text


def test_hand_worked_counters():
    counters = {"steps": 12, "gathers": 3, "cycles_started": 2, "cycles_agreed": 1,
                "cycles_dropped": 1, "rebalances": 1, "layers_committed": 4, "layers_failed": 1,
                "transfer_failures": 1, "worker_failures": 0, "invalid_placements": 0,
                "collective_failures": 0, "bytes_sent": 4096, "bytes_received": 2048,
                "errors": 1, "last_error": "layer 3: transfer timed out", "peak_staging": 7}
    samples, text = scrape(BalancerCollector(lambda: counters, labels={"rank": "0"}))
    r = (("rank", "0"),)
    assert samples[("swiftbalancer_steps_total", r)] == 12
    assert samples[("swiftbalancer_cycles_total", (("outcome", "dropped"), ("rank", "0")))] == 1
    assert samples[("swiftbalancer_layers_total", (("outcome", "committed"), ("rank", "0")))] == 4
    assert samples[("swiftbalancer_failures_total", (("kind", "transfer"), ("rank", "0")))] == 1
    assert samples[("swiftbalancer_bytes_total", (("direction", "sent"), ("rank", "0")))] == 4096
    assert samples[("swiftbalancer_peak_staging", r)] == 7  # a counter the table does not know
    assert "timed out" not in text  # strings are not exported
    assert "# TYPE swiftbalancer_layers_total counter" in text or \
        "# TYPE swiftbalancer_layers counter" in text


def test_equals_a_real_balancers_counters():
    runtime = pytest.importorskip("swiftbalancer.runtime")
    topo = sb.Topology(1, 4)
    balancers = [runtime.Balancer(runtime.InProcessWorld(1), topo, 0,
                                  sb.contiguous_placement(topo, 2, 4), mode="off")]
    for _ in range(5):
        balancers[0].before_forward()
        balancers[0].record(0, np.ones(4, dtype=np.int64))
        balancers[0].after_forward()
    samples, _ = scrape(BalancerCollector.of_ranks(balancers))
    c = balancers[0].counters()
    assert c["steps"] == 5
    assert samples[("swiftbalancer_steps_total", (("rank", "0"),))] == c["steps"]
    assert samples[("swiftbalancer_layers_total", (("outcome", "failed"), ("rank", "0")))] == \
        c["layers_failed"]
    assert samples[("swiftbalancer_bytes_total", (("direction", "received"), ("rank", "0")))] == \
        c["bytes_received"]
    exported = {k for k, v in c.items() if isinstance(v, (int, float))}
    assert len(exported) == len(samples)  # every numeric counter, once


def test_cpp_exposition_parses_and_matches_the_collector():
    runtime = pytest.importorskip("swiftbalancer.runtime")
    topo = sb.Topology(1, 4)
    b = runtime.Balancer(runtime.InProcessWorld(1), topo, 0, sb.contiguous_placement(topo, 2, 4),
                         mode="off")
    for _ in range(3):
        b.before_forward()
        b.after_forward()
    cpp = {}
    for fam in text_string_to_metric_families(b.metrics_text()):
        for s in fam.samples:
            cpp[(s.name, tuple(sorted(s.labels.items())))] = s.value
    py, _ = scrape(BalancerCollector(b, labels={"rank": "0"}))
    # The families both expose carry the same values under the same names and labels.
    for key in [("swiftbalancer_steps_total", (("rank", "0"),)),
                ("swiftbalancer_cycles_total", (("outcome", "started"), ("rank", "0"))),
                ("swiftbalancer_layers_total", (("outcome", "failed"), ("rank", "0"))),
                ("swiftbalancer_failures_total", (("kind", "worker"), ("rank", "0"))),
                ("swiftbalancer_bytes_total", (("direction", "sent"), ("rank", "0")))]:
        assert cpp[key] == py[key], key
    assert cpp[("swiftbalancer_steps_total", (("rank", "0"),))] == 3
    assert cpp[("swiftbalancer_rebalance_duration_seconds_count", (("rank", "0"),))] == 0


def test_bad_source():
    with pytest.raises(ValueError, match="source"):
        BalancerCollector(42)


def test_every_counter_field_is_in_the_dict_and_the_cpp_text():
    """Every row of the C++ counter table (runtime/report_fields.h) is a key of counters() and a
    sample of metrics_text() with the same value, for a balancer that ran."""
    runtime = pytest.importorskip("swiftbalancer.runtime")
    topo = sb.Topology(1, 4)
    b = runtime.Balancer(runtime.InProcessWorld(1), topo, 0, sb.contiguous_placement(topo, 2, 4),
                         mode="off")
    for _ in range(4):
        b.before_forward()
        b.record(0, np.ones(4, dtype=np.int64))
        b.after_forward()
    c = b.counters()
    cpp = {}
    for fam in text_string_to_metric_families(b.metrics_text()):
        for s in fam.samples:
            cpp[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert len(runtime.COUNTER_FIELDS) >= 28
    assert c["steps"] == 4
    for field, family, label in runtime.COUNTER_FIELDS:
        labels = {"rank": "0"}
        if label:
            k, v = label.split("=", 1)
            labels[k] = v.strip('"')
        key = ("swiftbalancer_" + family, tuple(sorted(labels.items())))
        assert field in c, field
        assert key in cpp, key
        assert cpp[key] == c[field], (field, cpp[key], c[field])
    # The dict holds the table's rows and the figures outside it, nothing else.
    table = {f for f, _, _ in runtime.COUNTER_FIELDS}
    assert set(c) - table == {"rebalance_seconds_sum", "last_error", "stall_reason"}
