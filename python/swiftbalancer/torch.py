"""swiftbalancer.torch: moves expert weights between ranks on torch.distributed, one layer at a
time, following SwiftBalancer's transfer plan (``make_layer_plan`` of the C++ library).

    mover = WeightMover(topology, rank, experts, phy2log)   # experts[layer][slot] = [tensors]
    move = mover.post(layer, new_layer)    # before the forward: stage local copies, post P2P
    ...forward (the layer keeps serving from its old slots)...
    ok = move.commit()                     # after it: bounded wait, agree, install, swap the map

The same pattern as the C++ runtime: every source is read from the old placement (local copies
are staged at post time; receives land in staging buffers; sends read the old slots, which are
not written before commit), one receive per (expert, destination rank), every tensor of an
expert (weights, scales, biases) moved together. ``commit`` waits at most ``timeout_s`` for this
rank's transfers, then the ranks agree (an all-reduce of a success flag, also bounded): only if
every rank succeeded are the staged experts copied into their slots (only slots whose expert
changes) and the layer's map replaced. Otherwise every rank keeps the layer's bytes and map.

Operations go out with ``batch_isend_irecv`` in batches of at most ``max_ops_per_batch``
point-to-point operations per rank (more than about a thousand in one batch has hung NCCL), one
batch after the other; ``one_peer_rounds=True`` adds rounds in which each rank talks to one peer
only (pairs by the round-robin tournament). Every rank derives the same batches and tags from the
same plan, so no schedule is exchanged.

Waits: gloo completes a P2P operation only inside ``Work.wait()``, and a ``wait(timeout)`` that
expires breaks its connection; so a helper thread waits on the operations and ``commit`` waits
on that thread with the timeout. After a timeout the layer's staging buffers are parked (kept
referenced) until the late operations finish, never reused. The same code runs on gloo with CPU
tensors and on NCCL with CUDA tensors; on NCCL a timed-out layer leaves operations in flight on
the communicator, which the engine should treat as fatal for that communicator.

Threading: one thread drives a mover (post / commit); counters may be read from any thread.
"""

import threading
import time
import numpy as np
import torch
import torch.distributed as dist

from . import make_layer_plan

__all__ = ["WeightMover", "LayerMove", "batches"]

_TAG_SPACE = 1 << 30


def _round_robin(ranks):
    """Rounds of disjoint rank pairs covering every pair once (circle method)."""
    players = list(range(ranks)) + ([None] if ranks % 2 else [])
    n = len(players)
    rounds = []
    for _ in range(n - 1):
        pairs = [(players[i], players[n - 1 - i]) for i in range(n // 2)]
        rounds.append({frozenset(p) for p in pairs if None not in p})
        players = [players[0]] + [players[-1]] + players[1:-1]
    return rounds


def batches(remote_ops, tensors_per_expert, ranks, max_ops_per_batch, one_peer_rounds=False):
    """The batches of (op_index, tensor_index) pairs, in the order every rank posts them: per
    round (one, or the round-robin rounds), plan order, split so that no rank has more than
    max_ops_per_batch operations (sends plus receives) in one batch."""
    if max_ops_per_batch < 1:
        raise ValueError("max_ops_per_batch must be positive, got %r" % max_ops_per_batch)
    rounds = _round_robin(ranks) if one_peer_rounds else [None]
    out = []
    for pairs in rounds:
        batch, load = [], {}
        for i, op in enumerate(remote_ops):
            src, dst = int(op[1]), int(op[3])
            if pairs is not None and frozenset((src, dst)) not in pairs:
                continue
            for t in range(tensors_per_expert):
                if batch and max(load.get(src, 0), load.get(dst, 0)) >= max_ops_per_batch:
                    out.append(batch)
                    batch, load = [], {}
                batch.append((i, t))
                load[src] = load.get(src, 0) + 1
                load[dst] = load.get(dst, 0) + 1
        if batch:
            out.append(batch)
    return out


class _Waiter:
    """Posts this rank's batches one after the other on a helper thread and waits on each
    (``Work.wait`` without a timeout: gloo breaks the pair when a timed wait expires)."""

    def __init__(self, post_batch, count, device, delay_s=0.0):
        self.done = threading.Event()
        self.error = None
        self._thread = threading.Thread(target=self._run,
                                        args=(post_batch, count, device, delay_s), daemon=True)
        self._thread.start()

    def _run(self, post_batch, count, device, delay_s):
        try:
            if device.type == "cuda":
                torch.cuda.set_device(device)  # NCCL issues on this thread's device
            if delay_s:
                time.sleep(delay_s)  # injected fault: this rank is late
            for k in range(count):
                for work in post_batch(k):
                    work.wait()
                    while not work.is_completed():  # NCCL: wait() only orders streams
                        time.sleep(1e-4)
        except Exception as e:  # reported by commit(), never raised on this thread
            self.error = e
        finally:
            self.done.set()


class LayerMove:
    """One layer in flight on this rank (from WeightMover.post); commit() once."""

    def __init__(self, mover, layer, new_layer, plan, tag_base, delay_s):
        self.mover, self.layer, self.plan = mover, layer, plan
        self.new_layer = new_layer
        self.ok = None
        ops = plan.ops_array()
        rank = mover.rank
        self._remote = ops[ops[:, 1] != ops[:, 3]]
        local = ops[ops[:, 1] == ops[:, 3]]
        slots = mover.experts[layer]
        # Local copies first: every source is read before any slot of the layer is written.
        self._staged = [(int(op[4]), [t.clone() for t in slots[int(op[2])]])
                        for op in local if op[3] == rank]
        self._recv = {i: [torch.empty_like(t) for t in slots[int(op[4])]]
                      for i, op in enumerate(self._remote) if op[3] == rank}
        self._staged += [(int(self._remote[i][4]), bufs) for i, bufs in self._recv.items()]
        self._batches = batches(self._remote, mover.tensors_per_expert, mover.topology.ranks,
                                mover.max_ops_per_batch, mover.one_peer_rounds)
        self._tag_base = tag_base
        self._waiter = _Waiter(self._post_batch, len(self._batches), mover.device, delay_s)

    def _post_batch(self, k):
        m, rank = self.mover, self.mover.rank
        p2p = []
        for i, t in self._batches[k]:
            op = self._remote[i]
            tag = (self._tag_base + i * m.tensors_per_expert + t) % _TAG_SPACE
            if op[1] == rank:
                tensor = m.experts[self.layer][int(op[2])][t]
                p2p.append(dist.P2POp(dist.isend, tensor, m._peer(op[3]), m.group, tag))
                m.counters["bytes_sent"] += tensor.numel() * tensor.element_size()
            elif op[3] == rank:
                p2p.append(dist.P2POp(dist.irecv, self._recv[i][t], m._peer(op[1]), m.group,
                                      tag))
        return dist.batch_isend_irecv(p2p) if p2p else []

    def wait(self):
        """This rank's transfers done within the mover's timeout (does not agree)."""
        if not self._waiter.done.wait(self.mover.timeout_s):
            self.mover.counters["timeouts"] += 1
            return False
        if self._waiter.error is not None:
            self.mover.counters["transfer_errors"] += 1
            self.mover.last_error = repr(self._waiter.error)
            return False
        return True

    def commit(self):
        """Bounded wait, agreement of all ranks, then install and swap the map (or nothing)."""
        if self.ok is not None:
            raise RuntimeError("layer move already committed")
        m = self.mover
        self.ok = m._agree(self.wait())
        if not self.ok:
            m.counters["layers_failed"] += 1
            if not self._waiter.done.is_set():
                m._parked.append(self)  # late operations may still write the staging
            return False
        slots = m.experts[self.layer]
        for slot, tensors in self._staged:
            for dst, src in zip(slots[slot], tensors):
                dst.copy_(src)
        for i, bufs in self._recv.items():
            m.counters["bytes_received"] += sum(b.numel() * b.element_size() for b in bufs)
        m._phy2log[self.layer] = self.new_layer
        m.counters["layers_committed"] += 1
        return True


class WeightMover:
    """Executes layer plans on torch.distributed for one rank.

    experts[layer][local_slot]: the tensors of the expert in that slot (same count, shapes and
    dtypes in every slot of a layer, on every rank); owned by the caller, written in place on
    commit. phy2log: the placement in service, [layers][ranks * slots_per_rank]. group: the
    process group (default: the world); topology rank r is rank r of the group. timeout_s
    bounds each wait (transfers, agreement).
    """

    def __init__(self, topology, rank, experts, phy2log, *, group=None, timeout_s=10.0,
                 max_ops_per_batch=256, one_peer_rounds=False, num_experts=None,
                 intra_node=1.0, inter_node=4.0):
        self.topology, self.rank, self.group = topology, int(rank), group
        self.experts = experts
        self._phy2log = np.array(phy2log, dtype=np.int64, copy=True)
        if self._phy2log.ndim != 2 or self._phy2log.shape[1] != topology.num_slots:
            raise ValueError("phy2log must be [layers][%d]" % topology.num_slots)
        if len(experts) != self._phy2log.shape[0]:
            raise ValueError("experts has %d layers, phy2log %d"
                             % (len(experts), self._phy2log.shape[0]))
        if any(len(layer) != topology.slots_per_rank for layer in experts):
            raise ValueError("experts[layer] must hold %d local slots" % topology.slots_per_rank)
        self.tensors_per_expert = len(experts[0][0])
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive, got %r" % timeout_s)
        self.timeout_s = float(timeout_s)
        self.max_ops_per_batch = int(max_ops_per_batch)
        self.one_peer_rounds = bool(one_peer_rounds)
        self.num_experts = int(num_experts or self._phy2log.max() + 1)
        self.link = (float(intra_node), float(inter_node))
        self.device = experts[0][0][0].device
        self.counters = {"layers_committed": 0, "layers_failed": 0, "timeouts": 0,
                         "transfer_errors": 0, "agreement_failures": 0, "bytes_sent": 0,
                         "bytes_received": 0}
        self.last_error = ""
        self._tag = 0
        self._parked = []
        self._delays = {}

    @property
    def phy2log(self):
        """A copy of the placement in service."""
        return self._phy2log.copy()

    @property
    def parked(self):
        """Moves whose late operations may still write their staging buffers."""
        self._parked = [mv for mv in self._parked if not mv._waiter.done.is_set()]
        return len(self._parked)

    def inject_delay(self, layer, seconds):
        """For tests: this rank starts its transfers of the next move of `layer` late."""
        self._delays[int(layer)] = float(seconds)

    def post(self, layer, new_layer):
        """Plans the layer's move from the map in service to new_layer and posts it."""
        layer = int(layer)
        new_layer = np.asarray(new_layer, dtype=np.int64)
        plan = make_layer_plan(self._phy2log[layer], new_layer, self.topology, layer=layer,
                               num_experts=self.num_experts, intra_node=self.link[0],
                               inter_node=self.link[1])
        tag_base = self._tag
        self._tag = (self._tag + plan.remote_ops * self.tensors_per_expert) % _TAG_SPACE
        self.parked  # noqa: B018  (drops finished parked moves)
        return LayerMove(self, layer, new_layer.copy(), plan, tag_base,
                         self._delays.pop(layer, 0.0))

    def move_layer(self, layer, new_layer):
        """post() then commit(): True when the layer now serves new_layer on every rank."""
        return self.post(layer, new_layer).commit()

    def _peer(self, rank):
        """The global rank of topology rank `rank` (P2POp takes global ranks)."""
        if self.group is None:
            return int(rank)
        to_global = (getattr(dist, "get_global_rank", None)  # torch >= 2.0
                     or dist.distributed_c10d._get_global_rank)
        return to_global(self.group, int(rank))

    def _agree(self, ok):
        flag = torch.tensor([1 if ok else 0], dtype=torch.int32, device=self.device)
        done = threading.Event()
        box = {}

        def run():
            try:
                work = dist.all_reduce(flag, op=dist.ReduceOp.MIN, group=self.group,
                                       async_op=True)
                work.wait()
                box["value"] = int(flag.item())
            except Exception as e:
                box["error"] = e
            finally:
                done.set()

        threading.Thread(target=run, daemon=True).start()
        if not done.wait(self.timeout_s) or "error" in box:
            self.counters["agreement_failures"] += 1
            self.last_error = repr(box.get("error", "agreement timed out"))
            return False
        return box["value"] == 1

