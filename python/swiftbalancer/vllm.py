"""vLLM's EPLB policy interface, backed by SwiftBalancer, and the plugin that installs it.

``SwiftEplbPolicy.rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_ranks,
old_global_expert_indices=None)`` is the classmethod vLLM calls on its policy class. vLLM has
shipped three contracts of it (``CONTRACTS``):

* ``"tuple5"``: five arguments, returns ``(phy2log, log2phy, logcnt)``;
* ``"tuple6"``: six (the old map last), returns the same tuple;
* ``"phy2log6"``: six, returns ``phy2log`` alone.

The class serves the contract of the installed vLLM's ``AbstractEplbPolicy`` (and derives from
it) when vLLM is importable; otherwise ``"tuple6"``. ``SwiftEplbPolicy.variant(contract=...,
max_transfers=..., policy=..., threshold=..., target=..., threads=...)`` makes a subclass with
other options (vLLM only ever sees the class, so options are class attributes). ``target`` is
swift's per-layer goal (0: the policy's 1.002): under a budget that binds, a coarser goal costs
the same balance and less time (docs/python.md). ``threads`` is how many threads swift spreads
its per-layer searches over, the calling one included (None: the CPUs this process may run on,
at most 8; 1: the calling thread only). The result is the same for any number of threads.

Shapes and dtypes as vLLM's own policy: ``weight`` is ``[layers, experts]`` or a window
``[window, layers, experts]`` (summed), int32/int64/float, read without a widening copy.
``phy2log [layers, num_replicas]``, ``log2phy [layers, experts, num_replicas - experts + 1]``
padded with -1, ``logcnt [layers, experts]``: int64, CPU torch tensors when ``weight`` is a
tensor, numpy arrays otherwise. Without the old map: DeepSeek's policy (hierarchical when
``num_groups % num_nodes == 0``). With it: ``policy`` (``swift``) from that placement, at most
``max_transfers`` cross-rank expert copies (None: ``layers x num_ranks``, one arrival per rank
per layer; negative: unlimited). The C++ work runs with the GIL released.

The old map may be any map vLLM hands over: two replicas of one expert on one rank (vLLM's own
default policy makes them), ``-1`` in empty slots, and a width other than ``num_replicas``
(elastic EP scales the ranks down or up; slot ``p`` of the old map is slot ``p % S`` of rank
``p // S``, ``S = num_replicas // num_ranks``). An expert a remaining rank keeps stays in its
slot; the experts no remaining rank holds, and the empty slots, are filled first, then the policy
runs from there. ``max_transfers`` counts from the map vLLM handed over: the fill's copies come
out of it first (when the fill alone needs more, as on a scale-up, it gets no more than that). Under the ``"phy2log6"`` contract
only phy2log is computed (vLLM derives log2phy and the counts itself).

Errors: ``ValueError`` naming the argument; where vLLM's own policy asserts
(``num_replicas % num_ranks``), ``EplbAssertionError``, both a ValueError and an AssertionError.

Plugin: ``register()`` is the ``vllm.general_plugins`` entry point ``swiftbalancer``. With
``SWIFTBALANCER_VLLM_EPLB=1`` in the environment it puts ``SwiftEplbPolicy`` in place of vLLM's
``"default"`` EPLB policy; otherwise it does nothing.
"""

import inspect
import os

import numpy as np

from . import (MAX_DEFAULT_THREADS, EplbAssertionError, _as_tensor, _core, _count, _host,
               _is_tensor, _real, _threads_arg, default_threads)

__all__ = ["SwiftEplbPolicy", "EplbAssertionError", "CONTRACTS", "ENV_SWITCH", "register",
           "detect_contract", "default_threads"]

CONTRACTS = ("tuple5", "tuple6", "phy2log6")
ENV_SWITCH = "SWIFTBALANCER_VLLM_EPLB"


def _vllm_abstract_policy():
    try:
        from vllm.distributed.eplb.policy.abstract import AbstractEplbPolicy
    except Exception:  # vLLM absent, or a version without the policy classes
        return None
    return AbstractEplbPolicy


def detect_contract(base):
    """The contract of a vLLM policy class: its rebalance_experts' arity and return type."""
    sig = inspect.signature(base.rebalance_experts)
    params = [p for p in sig.parameters if p not in ("cls", "self")]
    if len(params) <= 5:
        return "tuple5"
    ret = sig.return_annotation
    text = ret if isinstance(ret, str) else repr(ret)
    return "tuple6" if "tuple" in text.lower() else "phy2log6"


def _shape(x):
    return tuple(x.shape) if hasattr(x, "shape") else np.shape(x)


def _budget(cls, weight_shape, num_ranks):
    if cls.max_transfers is None:
        return weight_shape[-2] * num_ranks if len(weight_shape) >= 2 else -1
    return int(cls.max_transfers)


_VLLM_BASE = _vllm_abstract_policy()


class SwiftEplbPolicy(*((_VLLM_BASE,) if _VLLM_BASE is not None else ())):
    """vLLM's EPLB policy class, backed by SwiftBalancer (see the module docstring)."""

    contract = detect_contract(_VLLM_BASE) if _VLLM_BASE is not None else "tuple6"
    policy = "swift"
    max_transfers = None
    threshold = 1.0
    target = 0.0
    threads = None

    @classmethod
    def variant(cls, **options):
        """A subclass with other class options (contract, policy, max_transfers, threshold,
        target, threads)."""
        for key in options:
            if key not in ("contract", "policy", "max_transfers", "threshold", "target",
                           "threads"):
                raise TypeError("unknown SwiftEplbPolicy option %r" % key)
        if options.get("contract", cls.contract) not in CONTRACTS:
            raise ValueError("contract must be one of %s, got %r" % (CONTRACTS,
                                                                   options["contract"]))
        return type(cls.__name__, (cls,), dict(options))

    @classmethod
    def rebalance_experts(cls, weight, num_replicas, num_groups, num_nodes, num_ranks,
                          old_global_expert_indices=None):
        maps = cls.contract != "phy2log6"  # vLLM derives log2phy and logcnt itself
        return cls._rebalance(weight, num_replicas, num_groups, num_nodes, num_ranks,
                              old_global_expert_indices, maps)

    @classmethod
    def _rebalance(cls, weight, num_replicas, num_groups, num_nodes, num_ranks, old, maps=True):
        num_replicas = _count(num_replicas, "num_replicas")
        num_ranks = _count(num_ranks, "num_ranks")
        if num_replicas % num_ranks:
            raise EplbAssertionError("num_replicas (%d) must be divisible by num_ranks (%d)"
                                     % (num_replicas, num_ranks))
        tensor_in = _is_tensor(weight)
        shape = _shape(weight)
        width = num_replicas - shape[-1] + 1 if shape else 0
        out = _core.engine_rebalance(
            _host(weight, "weight"), num_replicas, _count(num_groups, "num_groups"),
            _count(num_nodes, "num_nodes"), num_ranks,
            None if old is None else _host(old, "old_global_expert_indices"), str(cls.policy),
            _budget(cls, shape, num_ranks), _real(cls.threshold, "threshold"), max(width, 0),
            _real(cls.target, "target"), _threads_arg(cls.threads), maps)
        if not maps:
            return _as_tensor(out) if tensor_in else out
        return tuple(_as_tensor(a) for a in out) if tensor_in else out


def _install(policy_cls):
    """Puts policy_cls in place of vLLM's default policy; returns where it went."""
    import importlib
    try:
        registry = importlib.import_module("vllm.distributed.eplb.policy")
        policies = getattr(registry, "EPLB_POLICIES")
    except (ImportError, AttributeError):
        policies = None
    if policies is not None:
        policies["default"] = policy_cls
        return "vllm.distributed.eplb.policy.EPLB_POLICIES['default']"
    # Releases before the policy classes: a module-level function (the five-argument contract).
    five = policy_cls.variant(contract="tuple5").rebalance_experts
    where = []
    for name in ("vllm.distributed.eplb.rebalance_algo", "vllm.distributed.eplb.eplb_state"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "rebalance_experts"):
            module.rebalance_experts = five
            where.append(name + ".rebalance_experts")
    if not where:
        raise RuntimeError("swiftbalancer: this vLLM has no EPLB policy hook to replace")
    return ", ".join(where)


def register():
    """vLLM general plugin: installs SwiftEplbPolicy when SWIFTBALANCER_VLLM_EPLB is set to 1,
    true, yes or on; returns where it was installed, or None."""
    if os.environ.get(ENV_SWITCH, "").strip().lower() not in ("1", "true", "yes", "on"):
        return None
    return _install(SwiftEplbPolicy)
