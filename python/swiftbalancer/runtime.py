"""The asynchronous balancer, one object per rank, over in-process ranks (threads).

    world = InProcessWorld(ranks)
    b = Balancer(world, topology, rank, initial_phy2log, policy="swift", interval_steps=50)
    for (layer, slot) in local slots: b.register_expert(layer, slot, [weights, scales, ...])
    every step (each rank in its own Python thread):
        b.before_forward()
        for layer: slot = b.select(layer, expert, token_index, src_rank); ...;
                   b.record(layer, per_slot_counts)
        stats = b.after_forward()

Expert buffers are writeable C-contiguous numpy arrays or CPU torch tensors that stay owned by
the caller; the balancer writes arriving weights into them in place (only slots whose expert
changes). before_forward / after_forward release the GIL: they wait, bounded, for the other
ranks. See src/swiftbalancer/runtime/balancer.h for the protocol and its guarantees.
"""

import sys

from ._core import Topology  # noqa: F401  (the topology type the balancer takes)
from ._runtime import InProcessWorld
from ._runtime import Balancer as _Balancer

__all__ = ["InProcessWorld", "Balancer"]


def _buffer(t):
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(t, torch.Tensor):
        if t.device.type != "cpu" or not t.is_contiguous():
            raise ValueError("expert tensors must be contiguous CPU tensors")
        return t.detach().numpy()  # shares the memory
    return t


class Balancer(_Balancer):
    """One rank's balancer. Options as runtime::BalancerConfig (timeouts in milliseconds;
    background_worker runs the policy thread at the lowest CPU priority)."""

    def __init__(self, world, topology, rank, initial, *, policy="swift", mode="async",
                 interval_steps=50, window_intervals=4, window_decay=0.0, layers_per_step=1,
                 decision_poll_steps=2, worker_timeout_ms=5000, transfer_timeout_ms=1000,
                 collective_timeout_ms=5000, num_groups=0, max_transfers=-1, threshold=1.0,
                 log=False, background_worker=True):
        super().__init__(world, topology, rank, policy, initial, mode, interval_steps,
                         window_intervals, window_decay, layers_per_step, decision_poll_steps,
                         worker_timeout_ms, transfer_timeout_ms, collective_timeout_ms,
                         num_groups, max_transfers, threshold, bool(log),
                         bool(background_worker))

    def register_expert(self, layer, slot, tensors):
        super().register_expert(layer, slot, [_buffer(t) for t in tensors])
