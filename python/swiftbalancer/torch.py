"""swiftbalancer.torch: SwiftBalancer's asynchronous runtime inside a torch engine.

One process per rank on ``torch.distributed``; each MoE layer's experts are tensors whose leading
dimension is the local slot (``w13[slots, 2I, H]``, ``w2[slots, H, I]``, scales, biases). The
engine adds a dozen lines::

    import swiftbalancer, swiftbalancer.torch as sbt
    bal = sbt.Balancer(swiftbalancer.Topology(ranks, slots_per_rank), phy2log,
                       experts=[[w13[l], w2[l]] for l in range(layers)],
                       interval_steps=50, cpu_group=eplb_gloo_group)
    # every step:
    bal.before_forward()                          # post this step's weight moves
    for layer in range(layers):
        slots = bal.route(layer, topk_ids)        # logical top-k ids -> physical slots
        counts = dispatch(hidden, slots)          # tokens per local slot, after dispatch
        bal.record(layer, counts)
        ...expert MLP on the local slots, combine...
    stats = bal.after_forward()                   # bounded wait, install, swap tables

or, one call per step instead of one per layer: the layers write their counts into rows of one
integer tensor ``step_counts[layers, slots_per_rank]`` (zeroed each step) and the engine calls
``bal.record_step(step_counts)`` right before ``bal.after_forward()``.
Or no call at all for the counts: the engine binds that tensor once,
``bal.bind_counts(step_counts)`` (as vLLM keeps its expert-load tensor), its layers only add into
it, and every ``after_forward()`` takes it and zeroes it in place.

Everything else is the C++ runtime (``swiftbalancer._torch``, built where torch 2.x is found):
counts gathered every ``interval_steps`` over the CPU group, the policy and the transfer plan on
a worker thread (no Python runs there), transfers posted before a forward and waited after it
(``layers_per_step`` layers per step) on the weight group, every rank agreeing per layer, the
weights written in place (only slots whose expert changes) and then the routing tables. A
failure (a transfer that fails or times out, a peer that stops answering, a worker exception)
leaves the layer on its old placement and serving goes on; every wait is bounded.

Groups: ``cpu_group`` carries counts, votes and hashes (a gloo group, as vLLM keeps one for
EPLB; default: the default group); ``device_group`` carries the weights (gloo for CPU tensors,
NCCL for CUDA tensors; default: ``cpu_group``). One group may serve both; when it is an NCCL
group only, the collectives run on CUDA tensors.

Tables (int64, on the experts' device, updated in place at each layer's commit, so a captured
CUDA graph keeps reading them): ``phy2log[L, P]``, ``log2phy[L, E, max_replicas]`` (-1 padded,
replicas in slot order) and ``replica_count[L, E]``, as vLLM's EPLB state lays them out.

Threading: one serving thread per rank calls record / record_step / bind_counts /
before_forward / after_forward / route; ``before_forward``, ``after_forward`` and ``close`` release the GIL while
they wait. ``counters()`` and ``metrics_text()`` may be called from any thread.
"""

import torch
import torch.distributed as dist

from . import runtime as _runtime

try:
    from . import _torch
except ImportError as e:  # built only where CMake found torch 2.x for the module's interpreter
    _torch = None
    _IMPORT_ERROR = e

__all__ = ["Balancer", "StepStats", "route_topk"]

# What after_forward() returns (None where the extension is not built).
StepStats = _torch.StepStats if _torch is not None else None


def route_topk(log2phy, replica_count, topk_ids, offset=0):
    """Physical slots for logical top-k ids of one layer: ``log2phy[E, R]`` and
    ``replica_count[E]`` are that layer's rows of the balancer's tables, ``topk_ids`` any-shape
    integer ids. The (token, k) pair at flat position i goes to replica ``(i + offset) % count``
    of its expert, so tokens spread evenly over replicas. Pure tensor ops on the tables' device
    (no host sync, safe to capture in a CUDA graph). Returns int64 ids shaped like topk_ids."""
    ids = topk_ids.long()
    pick = torch.arange(offset, offset + ids.numel(), device=ids.device).view_as(ids)
    pick.remainder_(replica_count[ids])
    # One flat gather: log2phy[e, r] sits at e * R + r.
    return log2phy.take(pick.add_(ids, alpha=log2phy.shape[-1]))


def _process_group(group):
    if group is None:
        if not dist.is_initialized():
            raise ValueError("torch.distributed is not initialized and no group was given")
        group = dist.group.WORLD
    return group


def _control_device(group, experts_device):
    """Where the control group's collectives take their tensors: the CPU unless the group has
    no CPU backend (an NCCL-only group)."""
    backend = str(dist.get_backend(group))
    if "gloo" in backend or "mpi" in backend or "ucc" in backend:
        return "cpu"
    if experts_device.type == "cpu":
        raise ValueError("the control group (%s) cannot run collectives on CPU tensors; give a "
                         "gloo cpu_group" % backend)
    return str(experts_device)


def _config(config, overrides):
    if isinstance(config, dict):
        overrides = {**config, **overrides}
        config = None
    return _runtime.make_config(config, **overrides)


class Balancer:
    """One rank's balancer over a torch engine: ``Balancer(topology, phy2log, experts, *,
    config=None, policy="swift", cpu_group=None, device_group=None, max_ops_in_flight=512,
    **overrides)``.

    ``topology``: a ``swiftbalancer.Topology`` whose ranks equal the groups' size.
    ``phy2log``: the placement in service, integer ``[layers, ranks * slots_per_rank]``.
    ``experts``: ``experts[layer]`` = this rank's tensors of that layer, each contiguous with
    ``slots_per_rank`` as leading dimension, all on one device (CPU or CUDA).
    ``config`` / ``overrides``: ``BalancerConfig`` fields (``swiftbalancer.runtime.make_config``).
    ``max_ops_in_flight``: the most point-to-point operations this rank has outstanding.
    """

    def __init__(self, topology, phy2log, experts, *, config=None, policy="swift",
                 cpu_group=None, device_group=None, max_ops_in_flight=512, **overrides):
        if _torch is None:
            raise ImportError("swiftbalancer._torch is not built (%s): build the package with "
                              "torch 2.x importable (scripts/install-deps.sh)" % _IMPORT_ERROR)
        experts = [list(layer) for layer in experts]
        if not experts or not experts[0]:
            raise ValueError("experts must hold at least one tensor per layer")
        cpu_group = _process_group(cpu_group)
        device_group = cpu_group if device_group is None else device_group
        device = experts[0][0].device
        cfg = _config(config, overrides)
        if not isinstance(phy2log, torch.Tensor):
            phy2log = torch.as_tensor(phy2log)
        self.topology = topology
        self._b = _torch.Balancer(
            ranks=topology.ranks, slots_per_rank=topology.slots_per_rank,
            ranks_per_node=topology.ranks_per_node, control_group=cpu_group,
            weight_group=device_group, policy=str(policy), phy2log=phy2log, experts=experts,
            config=cfg._capsule(), max_ops_in_flight=int(max_ops_in_flight),
            control_device=_control_device(cpu_group, device))
        self.rank = self._b.rank
        # The per-layer and per-step calls go straight to the extension: no Python frame of ours
        # on the serving path (the methods below document them).
        self.record = self._b.record
        self.record_step = self._b.record_step
        self.route = self._b.route
        self.before_forward = self._b.before_forward
        self.after_forward = self._b.after_forward
        # Stable tensors: the C++ side writes their rows in place.
        self.phy2log = self._b.phy2log
        self.log2phy = self._b.log2phy
        self.replica_count = self._b.replica_count

    def record(self, layer, counts):
        """Adds this rank's tokens per local slot of ``layer`` (integer tensor
        ``[slots_per_rank]``, on the CPU or the experts' device)."""
        self._b.record(layer, counts)

    def record_step(self, counts):
        """Adds this rank's tokens per local slot of every layer for one step (integer tensor
        ``[layers, slots_per_rank]``, on the CPU or the experts' device): the same as
        ``record(layer, counts[layer])`` for each layer, in one call. A CPU tensor is read at
        once (in place when int64 and contiguous); a device tensor is added on the device with
        no host sync."""
        self._b.record_step(counts)

    def bind_counts(self, counts):
        """Binds the engine's own count tensor (integer ``[layers, slots_per_rank]``, on the CPU
        or the experts' device; ``None`` unbinds): every ``after_forward()`` then adds it as
        ``record_step`` would and zeroes it in place (on a device: a kernel, no host sync). The
        engine's layers only add into it, and the step needs no counting call. The tensor is
        kept until the next ``bind_counts``; it must keep its storage (add in place)."""
        self._b.bind_counts(counts)

    def before_forward(self):
        self._b.before_forward()

    def after_forward(self):
        """Ends the step; returns its figures as a ``StepStats`` (a struct sequence: by name or,
        as a tuple, in this order): ``step``, ``serving_ns``, ``copy_ns``, ``wait_ns``,
        ``bytes_sent``, ``bytes_received``, ``layers_committed``, ``layers_failed``,
        ``gathered``, ``cycle_agreed``, ``rebalance_finished``, ``errors``."""
        return self._b.after_forward()

    def route(self, layer, topk_ids):
        """Physical slot ids for logical ``topk_ids`` of ``layer``: what
        ``route_topk(self.log2phy[layer], self.replica_count[layer], topk_ids, offset=self.rank)``
        returns, computed in the extension (CPU tables: a loop over the host rows, each id
        checked, ValueError out of range; a device: route_topk's tensor ops, no host sync)."""
        return self._b.route(layer, topk_ids)

    @property
    def step(self):
        return self._b.step

    @property
    def transport(self):
        """The transport's name, e.g. ``torch-gloo``."""
        return self._b.transport

    def placement(self):
        """The placement in service as a CPU int64 tensor ``[layers, P]`` (a copy)."""
        return self._b.placement()[0]

    def counters(self):
        return self._b.counters()

    def metrics_text(self):
        """``counters()`` in Prometheus text exposition, labelled with this rank."""
        return self._b.metrics_text()

    def close(self):
        """Stops the worker (waits for a running policy) and releases the groups and tensors."""
        self._b.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
