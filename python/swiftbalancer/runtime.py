"""The asynchronous balancer, one object per rank, over in-process ranks (threads).

    world = InProcessWorld(ranks)
    b = Balancer(world, topology, rank, initial_phy2log, policy="swift", interval_steps=50)
    for (layer, slot) in local slots: b.register_expert(layer, slot, [weights, scales, ...])
    every step (each rank in its own Python thread):
        b.before_forward()
        for layer: slot = b.select(layer, expert, token_index, src_rank); ...;
                   b.record(layer, per_slot_counts)
        stats = b.after_forward()

Options are the fields of ``BalancerConfig`` (runtime::BalancerConfig bound once, with the C++
defaults; timeouts as ``<name>_ms``): pass ``config=`` and/or keywords that override single
fields. Keywords may also name a field of ``config.policy_options`` (``num_groups``,
``max_transfers``, ``threshold``, ``target``) or ``config.link_weights``. ``log`` is None (the
C++ sink: warnings and errors on stderr), a callable ``(severity, line)``, or a bool (True: every
line on stderr; False: silent).

``COUNTER_FIELDS``: the rows of the C++ counter table (runtime/report_fields.h), each
(``counters()`` key, Prometheus family after ``swiftbalancer_``, its label or "").

Expert buffers are writeable C-contiguous numpy arrays or CPU torch tensors that stay owned by
the caller; the balancer writes arriving weights into them in place (only slots whose expert
changes). before_forward / after_forward release the GIL: they wait, bounded, for the other
ranks. See src/swiftbalancer/runtime/balancer.h for the protocol and its guarantees.
"""

import sys

from ._core import Topology  # noqa: F401  (the topology type the balancer takes)
from ._runtime import (COUNTER_FIELDS, BalancerConfig, FaultInjection, InProcessWorld,
                       LinkWeights, PolicyOptions, ShiftConfig)
from ._runtime import Balancer as _Balancer

__all__ = ["InProcessWorld", "Balancer", "BalancerConfig", "PolicyOptions", "LinkWeights",
           "FaultInjection", "ShiftConfig", "make_config", "COUNTER_FIELDS"]

_NESTED = (("policy_options", PolicyOptions), ("link_weights", LinkWeights))


def _stderr_sink(severity, line):
    print("swiftbalancer %s: %s" % (severity, line), file=sys.stderr)


def _log_value(v):
    if v is True:
        return _stderr_sink
    if v is False:
        return lambda severity, line: None
    return v


def make_config(config=None, **overrides):
    """A copy of ``config`` (default: ``BalancerConfig()``) with ``overrides`` applied."""
    cfg = BalancerConfig() if config is None else BalancerConfig(config)
    for key, value in overrides.items():
        if key == "log":
            value = _log_value(value)
        if key in BalancerConfig.field_names:
            setattr(cfg, key, value)
            continue
        for field, kind in _NESTED:
            if hasattr(kind, key) and not key.startswith("_"):
                nested = getattr(cfg, field)
                setattr(nested, key, value)
                setattr(cfg, field, nested)
                break
        else:
            raise TypeError("unknown balancer option %r (BalancerConfig fields: %s)"
                            % (key, ", ".join(BalancerConfig.field_names)))
    return cfg


def _buffer(t):
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(t, torch.Tensor):
        if t.device.type != "cpu" or not t.is_contiguous():
            raise ValueError("expert tensors must be contiguous CPU tensors")
        return t.detach().numpy()  # shares the memory
    return t


class Balancer(_Balancer):
    """One rank's balancer: ``Balancer(world, topology, rank, initial, *, policy="swift",
    config=None, **overrides)``; see the module docstring for the options."""

    def __init__(self, world, topology, rank, initial, *, policy="swift", config=None,
                 **overrides):
        super().__init__(world, topology, rank, str(policy), initial,
                         make_config(config, **overrides))

    def register_expert(self, layer, slot, tensors):
        super().register_expert(layer, slot, [_buffer(t) for t in tensors])
