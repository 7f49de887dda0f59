"""SwiftBalancer: expert-parallel load balancing (EPLB) for MoE inference, from Python.

Drop-ins for the calls engines already make:

* ``rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus)`` -- the signature
  and return values of deepseek-ai/EPLB (vLLM, SGLang), for numpy arrays and torch tensors;
* ``VllmAscendPolicy(...).rebalance_experts(current_expert_table, expert_workload)`` -- the
  policy interface of vllm-ascend's dynamic EPLB.

Engine adapters in submodules: ``swiftbalancer.vllm`` (vLLM's policy class and plugin),
``swiftbalancer.sglang`` (SGLang's calls and recorder dumps), ``swiftbalancer.torch`` (the weight
mover on torch.distributed), ``swiftbalancer.prometheus`` (a metrics collector),
``swiftbalancer.runtime`` (the asynchronous balancer).

And the library itself: ``rebalance`` (any policy, from the placement in service, with a transfer
budget), ``make_transfer_plan``, the metrics (``balance_summary``, ``transfer_summary``,
``rank_loads``), placement helpers and the file readers and writers.

Conventions: a placement is ``phy2log[layer][p]`` (int64) with ``p = rank * slots_per_rank +
slot``; loads are ``[layer][expert]``. Arrays may be numpy arrays, nested lists or (CPU or GPU)
torch tensors; functions given a torch tensor return torch tensors. Bad input raises
``ValueError`` naming the problem. The C++ work runs with the GIL released, so other Python
threads keep running.
"""

import operator
import os
import sys

import numpy as np

from . import _core
from ._core import (BalanceSummary, LayerPlan, Topology, TransferOp, TransferPlan,
                    TransferSummary, policy_names)

__version__ = "0.1.0"

__all__ = [
    "Topology", "BalanceSummary", "TransferSummary", "TransferPlan", "LayerPlan", "TransferOp",
    "policy_names", "rebalance_experts", "VllmAscendPolicy", "SwiftAscendPolicy", "rebalance",
    "align_to_current", "make_transfer_plan", "make_layer_plan", "apply_layer_plan",
    "balance_summary", "transfer_summary", "rank_loads", "dense_log2phy", "validate_placement",
    "contiguous_placement", "read_load", "write_load", "read_placement", "write_placement",
    "EplbAssertionError", "default_threads",
]

_INT_MAX = 2**31 - 1


class EplbAssertionError(ValueError, AssertionError):
    """A bad argument that the engine's own policy rejects with an assertion (vLLM, SGLang):
    both a ValueError and an AssertionError, so code written against either sees it."""


def _torch_module():
    # A tensor can only reach us if torch is already imported: never import it here (slow).
    return sys.modules.get("torch")


def _is_tensor(x):
    torch = _torch_module()
    return torch is not None and isinstance(x, torch.Tensor)


def _host(x, name):
    """A tensor as a numpy view on the CPU in its own dtype (no widening copy: the C++ side reads
    int32, int64, float32 and float64 in place); other inputs go to C++ unchanged."""
    if not _is_tensor(x):
        return x
    torch = _torch_module()
    if x.dtype == torch.bool or x.is_complex():
        raise ValueError("%s must have a real numeric dtype, got %s" % (name, x.dtype))
    x = x.detach()
    if x.device.type != "cpu":
        x = x.cpu()
    if x.dtype in (torch.float16, torch.bfloat16):  # numpy has no bfloat16
        x = x.float()
    return x.numpy()


def _as_tensor(a):
    return _torch_module().from_numpy(np.ascontiguousarray(a))


def _count(v, name, minimum=1):
    """An integer argument: ints, numpy ints, integral floats; ValueError otherwise."""
    try:
        n = operator.index(v)
    except TypeError:
        if isinstance(v, float) and v.is_integer():
            n = int(v)
        else:
            raise ValueError("%s must be an integer, got %r" % (name, v)) from None
    if isinstance(v, bool):
        raise ValueError("%s must be an integer, got %r" % (name, v))
    if n < minimum or n > _INT_MAX:
        raise ValueError("%s must be in [%d, %d], got %d" % (name, minimum, _INT_MAX, n))
    return n


def _real(v, name):
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ValueError("%s must be a number, got %r" % (name, v)) from None
    if x != x:
        raise ValueError("%s must not be NaN" % name)
    return x


def _experts_arg(num_experts):
    return 0 if num_experts is None else _count(num_experts, "num_experts")


MAX_DEFAULT_THREADS = 8


def default_threads():
    """Threads a policy call spreads its per-layer work over when ``threads`` is None: the CPUs
    this process may run on (its affinity mask, so ``taskset`` and cgroup pinning are honoured),
    at most 8; beyond that the 58 layers of DeepSeek-V3 leave little to gain."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_DEFAULT_THREADS))


def _threads_arg(threads):
    return default_threads() if threads is None else _count(threads, "threads")


# ---------------------------------------------------------------------------------------------
# Drop-in: deepseek-ai/EPLB


def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    """deepseek-ai/EPLB's ``rebalance_experts``, backed by the C++ DeepSeek policy.

    Parameters (as the reference):
        weight: [layers, num_logical_experts] load of each expert (numpy array, torch tensor or
            nested lists; ints or floats; finite and non-negative)
        num_replicas: physical expert slots per layer, a multiple of num_gpus
        num_groups: expert groups; hierarchical balancing (groups -> nodes -> GPUs) when
            num_groups % num_nodes == 0, global otherwise
        num_nodes: server nodes; num_gpus must be a multiple of it
        num_gpus: GPUs (ranks); each holds num_replicas // num_gpus slots

    Returns (int64; torch tensors on the CPU when weight is a tensor, as the reference):
        phy2log: [layers, num_replicas], the logical expert of each slot
        log2phy: [layers, num_logical_experts, max_replicas], the slots of each expert in the
            reference's replica order, padded with -1
        logcnt: [layers, num_logical_experts], replicas per expert

    One difference from the reference: a GPU never gets two replicas of one expert (the
    reference may do so when replicas outnumber a node's GPUs); the result is then still a
    valid, balanced placement but not the reference's. Raises ValueError on bad arguments.
    """
    tensor_in = _is_tensor(weight)
    phy2log, log2phy, logcnt = _core.deepseek_rebalance_experts(
        _host(weight, "weight"), _count(num_replicas, "num_replicas"),
        _count(num_groups, "num_groups"), _count(num_nodes, "num_nodes"),
        _count(num_gpus, "num_gpus"))
    if tensor_in:
        return _as_tensor(phy2log), _as_tensor(log2phy), _as_tensor(logcnt)
    return phy2log, log2phy, logcnt


# ---------------------------------------------------------------------------------------------
# Drop-in: vllm-ascend's EplbPolicy


class VllmAscendPolicy:
    """vllm-ascend's dynamic-EPLB policy interface (``EplbPolicy.rebalance_experts``).

    ``rebalance_experts(current_expert_table, expert_workload)`` takes, for every layer, the
    expert id held by each slot of each rank, ``[layers][ranks][slots]``, and the tokens each of
    those slots processed, same shape (numpy, torch or lists), or FlashLB's
    ``[stages, layers, ranks, slots]`` (summed over the stages). The logical load of an expert
    is the sum over its slots. It returns ``(changed, priority, new_deployment)``:

    * ``changed``: 1 when the new deployment differs and lowers the busiest rank's load summed
      over layers by more than ``min_improvement`` (vllm-ascend's rule: 5 %), else 0;
    * ``priority``: int64 array of layer ids, the most improved layer first (ratio of the new to
      the old busiest-rank load; ties by layer id) -- the order to move layers in;
    * ``new_deployment``: ``[layers][ranks][slots]`` nested lists of expert ids. A layer keeps
      its current deployment unless the policy lowers its busiest rank; an expert that stays on
      a rank keeps its slot there, so only slots whose expert changes need new weights.

    Parameters:
        config: vllm-ascend's ``DynamicConfig`` (optional); ``num_die_per_host`` is read from it
            as the ranks per node when ``ranks_per_node`` is not given. vllm-ascend's policy
            factory constructs policies with no arguments: then the ranks per node come from
            ``SWIFTBALANCER_RANKS_PER_NODE``, else the device count where ``torch_npu`` is
            loaded with a working ``torch.npu``, else all ranks are on one node.
        policy: a name from ``policy_names()``; ``swift`` (the default) starts from the current
            deployment and moves few experts.
        ranks_per_node: ranks on one node (0: all on one node).
        num_experts: logical experts (default: the distinct ids in the first layer, as
            vllm-ascend counts them).
        num_groups, max_transfers, threshold: the policy options (see ``rebalance``).
        min_improvement: fraction, see ``changed``.
        threads: threads the policy spreads its per-layer work over, the calling one included
            (None: ``default_threads()``); the result is the same for any count.
    """

    def __init__(self, config=None, *, policy="swift", ranks_per_node=None, num_experts=None,
                 num_groups=0, max_transfers=-1, threshold=1.0, min_improvement=0.05,
                 threads=None):
        if ranks_per_node is None and config is not None:
            ranks_per_node = getattr(config, "num_die_per_host", None)
        if ranks_per_node is None:
            ranks_per_node = _default_ranks_per_node()
        self.config = config
        self.policy = str(policy)
        self.ranks_per_node = _count(ranks_per_node, "ranks_per_node", minimum=0)
        self.num_experts = num_experts
        self.num_groups = _count(num_groups, "num_groups", minimum=0)
        self.max_transfers = int(max_transfers)
        self.threshold = _real(threshold, "threshold")
        self.min_improvement = _real(min_improvement, "min_improvement")
        self.threads = _threads_arg(threads)
        # Busiest-rank load per layer before and after the last call (diagnostics).
        self.last_max_load_before = None
        self.last_max_load_after = None

    def rebalance_experts(self, current_expert_table, expert_workload):
        workload = _host(expert_workload, "expert_workload")
        if np.ndim(workload) == 4:  # FlashLB's [stages, layers, ranks, slots]
            workload = np.asarray(workload, dtype=np.float64).sum(axis=0)
        changed, priority, table, before, after = _core.ascend_rebalance(
            _host(current_expert_table, "current_expert_table"), workload, self.ranks_per_node,
            _experts_arg(self.num_experts), self.policy, self.num_groups, self.max_transfers,
            self.threshold, self.min_improvement, self.threads)
        self.last_max_load_before, self.last_max_load_after = before, after
        return int(changed), priority, table.tolist()


RANKS_PER_NODE_ENV = "SWIFTBALANCER_RANKS_PER_NODE"


def _default_ranks_per_node():
    """Ranks per node for a policy built with no arguments (see VllmAscendPolicy)."""
    text = os.environ.get(RANKS_PER_NODE_ENV, "").strip()
    if text:
        try:
            value = int(text)
        except ValueError:
            value = -1
        if value < 0:
            raise ValueError("%s must be a non-negative integer, got %r"
                             % (RANKS_PER_NODE_ENV, text))
        return value
    if "torch_npu" in sys.modules:
        try:
            import torch
            return int(torch.npu.device_count())
        except Exception:  # a torch_npu without a usable device API
            pass
    return 0


# The same class under a name of its own: vllm-ascend ships a policy called SwiftBalanceEplb that
# is not this one, so that name is not used here (see __getattr__ below).
SwiftAscendPolicy = VllmAscendPolicy


def __getattr__(name):
    if name == "SwiftBalanceEplb":
        raise AttributeError("swiftbalancer.SwiftBalanceEplb was renamed SwiftAscendPolicy (it is "
                             "not vllm-ascend's own SwiftBalanceEplb policy)")
    raise AttributeError("module 'swiftbalancer' has no attribute %r" % name)


# ---------------------------------------------------------------------------------------------
# The library


def rebalance(load, topology, policy="swift", current=None, *, num_groups=0, max_transfers=-1,
              threshold=1.0):
    """A new placement ``phy2log [layers][ranks * slots_per_rank]`` (int64) for ``load``.

    policy: a name from ``policy_names()``. current: the placement in service (policies that
    start from it -- swift -- move few experts; the others ignore it). num_groups: expert groups
    for DeepSeek's hierarchical mode. max_transfers: whole-model budget of cross-rank expert
    copies (negative: unlimited). threshold: layers whose imbalance (max/mean rank load) is at
    most this are left as they are. Returns a torch tensor when ``load`` is one.
    """
    tensor_in = _is_tensor(load)
    out = _core.rebalance(_host(load, "load"), topology, str(policy),
                          None if current is None else _host(current, "current"),
                          _count(num_groups, "num_groups", minimum=0), int(max_transfers),
                          _real(threshold, "threshold"))
    return _as_tensor(out) if tensor_in else out


def align_to_current(current, new, topology, num_experts=None):
    """``new`` with every expert that stays on a rank moved back to its slot in ``current``."""
    return _core.align_to_current(_host(current, "current"), _host(new, "new"), topology,
                                  _experts_arg(num_experts))


def make_transfer_plan(old, new, topology, *, intra_node=1.0, inter_node=4.0, num_experts=None):
    """The expert copies that turn placement ``old`` into ``new`` (a ``TransferPlan``).

    ``plan.layers[l].ops`` lists ``TransferOp(expert, src_rank, src_slot, dst_rank, dst_slot)``
    (``ops_array()`` gives them as an int64 array [n][5]); sources refer to ``old``.
    """
    return _core.make_transfer_plan(_host(old, "old"), _host(new, "new"), topology,
                                    _real(intra_node, "intra_node"),
                                    _real(inter_node, "inter_node"), _experts_arg(num_experts))


def make_layer_plan(old_layer, new_layer, topology, *, layer=0, num_experts=None, intra_node=1.0,
                    inter_node=4.0):
    """The plan of one layer (``LayerPlan``) from phy2log ``old_layer`` to ``new_layer`` (both
    ``[ranks * slots_per_rank]``, valid placements): the C++ ``make_layer_plan``, the one the
    runtime and ``swiftbalancer.torch`` execute. ``layer`` only labels the plan."""
    return _core.make_layer_plan(_host(old_layer, "old_layer"), _host(new_layer, "new_layer"),
                                 topology, _count(layer, "layer", minimum=0),
                                 _experts_arg(num_experts), _real(intra_node, "intra_node"),
                                 _real(inter_node, "inter_node"))


def apply_layer_plan(old_layer, plan, topology):
    """Applies a ``LayerPlan`` to one layer's phy2log; returns the new layer (int64)."""
    return _core.apply_layer_plan(_host(old_layer, "old_layer"), plan, topology)


def balance_summary(placement, load, topology):
    """Imbalance (max / mean rank load, even split over replicas) per layer and over layers."""
    return _core.balance_summary(_host(placement, "placement"), _host(load, "load"), topology)


def transfer_summary(old, new, topology, num_experts=None):
    """Cross-rank expert copies from ``old`` to ``new``: ``.total`` and ``.per_layer``."""
    return _core.transfer_summary(_host(old, "old"), _host(new, "new"), topology,
                                  _experts_arg(num_experts))


def rank_loads(placement, load, topology):
    """Load of every rank, ``[layers][ranks]`` float64 (even split over replicas)."""
    return _core.rank_loads(_host(placement, "placement"), _host(load, "load"), topology)


def dense_log2phy(phy2log, num_experts=None):
    """``(log2phy [L][E][max_replicas] padded with -1, logcnt [L][E])``, slots in slot order."""
    tensor_in = _is_tensor(phy2log)
    log2phy, logcnt = _core.dense_log2phy(_host(phy2log, "phy2log"), _experts_arg(num_experts))
    if tensor_in:
        return _as_tensor(log2phy), _as_tensor(logcnt)
    return log2phy, logcnt


def validate_placement(placement, topology, num_experts=None):
    """Raises ValueError naming the first fault (unknown id, missing expert, two replicas of an
    expert on one rank, wrong slot count); returns None for a valid placement."""
    _core.validate_placement(_host(placement, "placement"), topology, _experts_arg(num_experts))


def contiguous_placement(topology, layers, experts):
    """The placement with no balancing: slot p holds expert p % experts."""
    return _core.contiguous_placement(topology, _count(layers, "layers"),
                                      _count(experts, "experts"))


def read_load(path, format="auto"):
    """Loads ``[layers][experts]`` float64 from SGLang JSON, CSV or .npy (by extension)."""
    return _core.read_load(str(path), str(format))


def write_load(path, load, format="auto"):
    _core.write_load(str(path), _host(load, "load"), str(format))


def read_placement(path, topology, num_experts):
    """Reads and validates a placement (SGLang or vllm-ascend JSON, detected from the keys)."""
    return _core.read_placement(str(path), topology, _count(num_experts, "num_experts"))


def write_placement(path, placement, topology, format="sglang", num_experts=None):
    """Writes a placement as SGLang (``physical_to_logical_map``) or vllm-ascend JSON."""
    _core.write_placement(str(path), _host(placement, "placement"), topology, str(format),
                          _experts_arg(num_experts))
