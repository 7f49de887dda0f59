"""A prometheus_client collector over the balancer's counters.

    from prometheus_client import REGISTRY, start_http_server
    REGISTRY.register(BalancerCollector(balancer))                 # one rank
    REGISTRY.register(BalancerCollector.of_ranks(balancers))       # several, label rank="i"
    start_http_server(9400, addr="127.0.0.1")

Reads ``counters()`` (a ``swiftbalancer.runtime.Balancer``, a ``swiftbalancer.torch.Balancer``,
or any callable returning such a dict) at every scrape; nothing
is cached. Families (all counters; labels of bounded cardinality, no per-layer label):

  swiftbalancer_steps_total, swiftbalancer_gathers_total, swiftbalancer_rebalances_total,
  swiftbalancer_errors_total,
  swiftbalancer_cycles_total{outcome="started"|"agreed"|"dropped"},
  swiftbalancer_layers_total{outcome="committed"|"failed"},
  swiftbalancer_failures_total{kind="transfer"|"worker"|"invalid_placement"|"collective"|"timeout"},
  swiftbalancer_bytes_total{direction="sent"|"received"}

plus the constant labels given (e.g. ``rank``). A numeric counter this table does not know yet
(the runtime may grow new ones) is exported as ``swiftbalancer_<name>`` untyped; strings
(``last_error``) are not exported.
"""

from prometheus_client.core import CounterMetricFamily, UntypedMetricFamily

__all__ = ["BalancerCollector", "FAMILIES"]

# counters() key -> (family, help, {label: value})
FAMILIES = {
    "steps": ("steps", "Serving steps the balancer saw.", {}),
    "gathers": ("gathers", "All-gathers of the per-slot counts.", {}),
    "rebalances": ("rebalances", "Decision cycles that committed at least one layer.", {}),
    "errors": ("errors", "Failures reported (all kinds).", {}),
    "cycles_started": ("cycles", "Decision cycles by outcome.", {"outcome": "started"}),
    "cycles_agreed": ("cycles", "Decision cycles by outcome.", {"outcome": "agreed"}),
    "cycles_dropped": ("cycles", "Decision cycles by outcome.", {"outcome": "dropped"}),
    "layers_committed": ("layers", "Layer moves by outcome.", {"outcome": "committed"}),
    "layers_failed": ("layers", "Layer moves by outcome.", {"outcome": "failed"}),
    "transfer_failures": ("failures", "Failures by kind.", {"kind": "transfer"}),
    "transfer_errors": ("failures", "Failures by kind.", {"kind": "transfer"}),
    "worker_failures": ("failures", "Failures by kind.", {"kind": "worker"}),
    "invalid_placements": ("failures", "Failures by kind.", {"kind": "invalid_placement"}),
    "collective_failures": ("failures", "Failures by kind.", {"kind": "collective"}),
    "agreement_failures": ("failures", "Failures by kind.", {"kind": "collective"}),
    "timeouts": ("failures", "Failures by kind.", {"kind": "timeout"}),
    "bytes_sent": ("bytes", "Expert bytes moved by this rank.", {"direction": "sent"}),
    "bytes_received": ("bytes", "Expert bytes moved by this rank.", {"direction": "received"}),
}
_PREFIX = "swiftbalancer_"


def _reader(source):
    if callable(getattr(source, "counters", None)):
        return source.counters
    if isinstance(getattr(source, "counters", None), dict):
        return lambda: dict(source.counters)
    if callable(source):
        return source
    raise ValueError("source must have counters() (or a counters dict), or be a callable")


class BalancerCollector:
    """Collector for prometheus_client; see the module docstring."""

    def __init__(self, source, labels=None):
        self._sources = [(dict(labels or {}), _reader(source))]

    @classmethod
    def of_ranks(cls, sources, label="rank"):
        """One collector over several ranks' balancers, labelled label="0", "1", ..."""
        c = cls.__new__(cls)
        c._sources = [({label: str(i)}, _reader(s)) for i, s in enumerate(sources)]
        return c

    def collect(self):
        families = {}  # family name -> metric, in first-seen order (deterministic)
        for const, read in self._sources:
            for key, value in read().items():
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                name, doc, extra = FAMILIES.get(key, (key, "Balancer counter %s." % key, None))
                labels = dict(const, **(extra or {}))
                fam = families.get(name)
                if fam is None:
                    kind = CounterMetricFamily if extra is not None else UntypedMetricFamily
                    fam = kind(_PREFIX + name, doc, labels=sorted(labels))
                    families[name] = fam
                fam.add_metric([labels[k] for k in sorted(labels)], value)
        return list(families.values())
