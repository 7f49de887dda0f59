"""SGLang's EPLB calls, backed by SwiftBalancer, and its expert-distribution recorder dumps.

* ``rebalance_experts(tokens_per_expert, num_physical_experts, num_local_physical_experts,
  num_groups, num_nodes, algorithm=None, *, old_map=None, active_ranks=None)``: SGLang's
  algorithm-level call (``sglang.srt.eplb.eplb_algorithms``). ``tokens_per_expert`` is
  ``[buffer, layers, experts]`` (summed over the buffer) or ``[layers, experts]``; ``num_groups``
  may be None. ``algorithm``: an SGLang ``EplbAlgorithm`` or its name; None picks as SGLang does
  (hierarchical when ``num_groups`` is given and divisible by ``num_nodes``). Served:
  ``deepseek``, ``deepseek_hierarchical``, ``elasticity_aware`` and
  ``elasticity_aware_hierarchical`` (SGLang's semantics: with ``active_ranks``, a ``[ranks]``
  0/1 mask, short of all ranks, the experts are balanced over the active ranks alone, globally,
  and an inactive rank's slots hold expert 0 and are never routed to; ``active_ranks`` None:
  SGLang's ``ElasticEPStateManager`` when it has one, else every rank). Refused with a
  ValueError: the ``_vec`` forms, which score every step of the window separately
  (``[steps, layers, experts]``, not its sum) and return int32 maps; this adapter sums the
  window, so it would return another placement under their name. ``old_map``: the placement in
  service ``[layers, num_physical_experts]``; with it the swift policy runs from there under at
  most ``layers x ranks`` cross-rank copies (the maps SGLang may hold are accepted as in
  ``swiftbalancer.vllm``).
* ``deepseek_rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus,
  enable_hierarchical)``: the DeepSeek-level call (``eplb_algorithms.deepseek``).

Both return ``(physical_to_logical_map [layers, num_physical], logical_to_physical_map [layers,
experts, num_physical - experts + 1] padded with -1, expert_count [layers, experts])``, int64,
CPU torch tensors when the input is a tensor. Bad arguments raise ValueError naming them;
where SGLang asserts, the error is also an AssertionError.

* ``register()``: the ``sglang.srt.plugins`` entry point ``swiftbalancer``. With
  ``SWIFTBALANCER_SGLANG_EPLB=1`` it registers, through SGLang's ``HookRegistry``, a REPLACE hook
  on ``sglang.srt.eplb.eplb_algorithms.rebalance_experts`` that calls ``rebalance_experts`` with
  the placement in service read from SGLang's expert-location metadata (so swift's bounded-move
  mode is used); otherwise it does nothing.

* ``read_recorder_dump(path)``: the ``logical_count`` of a ``.pt`` file written by SGLang's
  expert-distribution recorder in ``stat`` mode, summed to ``[layers, experts]`` float64.
* ``convert(dump, out, format="auto")``: writes it as ``.npy``, CSV or the SGLang JSON
  ``{"logical_count": ...}`` that ``--init-expert-location`` and ``swiftbalancer plan`` read.
  From the command line: ``python3 -m swiftbalancer.sglang convert DUMP.pt OUT.json``.
"""

import argparse
import os
import sys

import numpy as np

from . import EplbAssertionError, _as_tensor, _core, _count, _host, _is_tensor, write_load

__all__ = ["rebalance_experts", "deepseek_rebalance_experts", "read_recorder_dump", "convert",
           "ALGORITHMS", "REFUSED", "ENV_SWITCH", "HOOK_TARGET", "register"]

# SGLang's algorithm names served here -> hierarchical or not.
ALGORITHMS = {"deepseek": False, "deepseek_hierarchical": True, "elasticity_aware": False,
              "elasticity_aware_hierarchical": True}
# Names refused, with the reason.
REFUSED = {
    name: "SGLang's %s scores each step of the [steps, layers, experts] window separately and "
          "returns int32 maps; swiftbalancer sums the window, so it would return a different "
          "placement under that name (use deepseek%s, or SGLang's own)"
          % (name, "_hierarchical" if name.endswith("hierarchical") else "")
    for name in ("deepseek_vec", "deepseek_vec_hierarchical")}
ENV_SWITCH = "SWIFTBALANCER_SGLANG_EPLB"
HOOK_TARGET = "sglang.srt.eplb.eplb_algorithms.rebalance_experts"


def _algorithm_name(algorithm, num_groups, num_nodes):
    if algorithm is None:  # SGLang's compute_algorithm
        hierarchical = num_groups is not None and num_groups % num_nodes == 0
        return "deepseek_hierarchical" if hierarchical else "deepseek"
    name = getattr(algorithm, "name", algorithm)
    if name in REFUSED:
        raise ValueError("algorithm %s is not served: %s" % (name, REFUSED[name]))
    if name not in ALGORITHMS:
        raise ValueError("algorithm must be one of %s, got %r" % (sorted(ALGORITHMS), algorithm))
    return name


def _sglang_active_ranks(num_gpus):
    """SGLang's active-rank mask, as its elasticity_aware call reads it; None: all active."""
    try:
        from sglang.srt.elastic_ep.elastic_ep import ElasticEPStateManager
    except Exception:
        return None
    inst = ElasticEPStateManager.instance()
    return None if inst is None else inst.active_ranks


def _active_mask(active_ranks, num_gpus):
    mask = np.asarray(_host(active_ranks, "active_ranks")).reshape(-1)
    if mask.shape[0] != num_gpus:
        raise ValueError("active_ranks must have one entry per rank (%d), got %d"
                         % (num_gpus, mask.shape[0]))
    if not np.isin(mask, (0, 1)).all():
        raise ValueError("active_ranks must hold 0 or 1 per rank")
    if not mask.any():
        raise ValueError("active_ranks has no active rank")
    return mask.astype(bool)


def _spread_over_ranks(out, active, local, experts):
    """SGLang's elasticity_aware layout: the maps of the active ranks, packed, spread to all
    ranks; an inactive rank's slots hold expert 0 and no log2phy entry points at them."""
    phy2log, log2phy, count = out
    layers = phy2log.shape[0]
    ranks = active.shape[0]
    full = np.zeros((layers, ranks, local), dtype=np.int64)
    full[:, active, :] = phy2log.reshape(layers, -1, local)
    slot_of = (np.flatnonzero(active)[:, None] * local + np.arange(local)).reshape(-1)
    width = ranks * local - experts + 1
    l2p = np.full((layers, experts, width), -1, dtype=np.int64)
    l2p[:, :, :log2phy.shape[2]] = np.where(log2phy >= 0, slot_of[np.maximum(log2phy, 0)], -1)
    return full.reshape(layers, -1), l2p, count


def _shape(x):
    return tuple(x.shape) if hasattr(x, "shape") else np.shape(x)


def deepseek_rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus,
                               enable_hierarchical):
    """SGLang's ``deepseek.rebalance_experts``; weight ``[layers, experts]`` (or a window
    ``[buffer, layers, experts]``, summed)."""
    num_replicas = _count(num_replicas, "num_replicas")
    num_nodes = _count(num_nodes, "num_nodes")
    num_gpus = _count(num_gpus, "num_gpus")
    if num_replicas % num_gpus:
        raise EplbAssertionError("num_replicas (%d) must be divisible by num_gpus (%d)"
                                 % (num_replicas, num_gpus))
    if enable_hierarchical:
        if num_groups is None:
            raise ValueError("num_groups must be given for the hierarchical algorithm")
        num_groups = _count(num_groups, "num_groups")
        if num_groups % num_nodes:
            raise EplbAssertionError("num_groups (%d) must be divisible by num_nodes (%d)"
                                     % (num_groups, num_nodes))
    else:
        num_groups, num_nodes = 1, 1  # global balancing, as the reference calls it
    shape = _shape(weight)
    width = max(num_replicas - shape[-1] + 1, 0) if shape else 0
    out = _core.engine_rebalance(_host(weight, "weight"), num_replicas, num_groups, num_nodes,
                                 num_gpus, None, "swift", -1, 1.0, width)
    return tuple(_as_tensor(a) for a in out) if _is_tensor(weight) else out


def rebalance_experts(tokens_per_expert, num_physical_experts, num_local_physical_experts,
                      num_groups, num_nodes, algorithm=None, *, old_map=None, active_ranks=None):
    """SGLang's ``eplb_algorithms.rebalance_experts`` (see the module docstring)."""
    physical = _count(num_physical_experts, "num_physical_experts")
    local = _count(num_local_physical_experts, "num_local_physical_experts")
    nodes = _count(num_nodes, "num_nodes")
    if physical % local:
        raise EplbAssertionError("num_physical_experts (%d) must be divisible by "
                                 "num_local_physical_experts (%d)" % (physical, local))
    groups = None if num_groups is None else _count(num_groups, "num_groups")
    name = _algorithm_name(algorithm, groups, nodes)
    gpus = physical // local
    if name.startswith("elasticity_aware"):
        if active_ranks is None:
            active_ranks = _sglang_active_ranks(gpus)
        if active_ranks is not None:
            active = _active_mask(active_ranks, gpus)
            if not active.all():  # SGLang: global balancing over the active ranks
                weight = np.asarray(_host(tokens_per_expert, "tokens_per_expert"))
                experts = weight.shape[-1]
                out = _engine(weight, local * int(active.sum()), None, 1, int(active.sum()),
                              False, None)
                out = _spread_over_ranks(out, active, local, experts)
                return tuple(_as_tensor(a) for a in out) if _is_tensor(tokens_per_expert) \
                    else out
    if old_map is not None:
        out = _engine(tokens_per_expert, physical, groups, nodes, gpus, ALGORITHMS[name],
                      old_map)
        return tuple(_as_tensor(a) for a in out) if _is_tensor(tokens_per_expert) else out
    return deepseek_rebalance_experts(tokens_per_expert, physical, groups, nodes, gpus,
                                      ALGORITHMS[name])


def _engine(weight, num_replicas, num_groups, num_nodes, num_gpus, hierarchical, old_map):
    """The engine call behind both forms; numpy results."""
    if not hierarchical:
        num_groups, num_nodes = 1, 1
    elif num_groups is None:
        raise ValueError("num_groups must be given for the hierarchical algorithm")
    shape = _shape(weight)
    width = max(num_replicas - shape[-1] + 1, 0) if shape else 0
    budget = shape[-2] * num_gpus if len(shape) >= 2 else -1
    return _core.engine_rebalance(
        _host(weight, "tokens_per_expert"), num_replicas, num_groups, num_nodes, num_gpus,
        None if old_map is None else _host(old_map, "old_map"), "swift",
        budget if old_map is not None else -1, 1.0, width)


def _placement_in_service(num_physical_experts):
    """SGLang's physical_to_logical_map in service (CPU), or None where it has none."""
    try:
        from sglang.srt.eplb.expert_location import get_global_expert_location_metadata
        metadata = get_global_expert_location_metadata()
    except Exception:
        return None
    phy2log = getattr(metadata, "physical_to_logical_map", None)
    if phy2log is None or tuple(phy2log.shape)[-1:] != (num_physical_experts,):
        return None
    return phy2log.cpu() if hasattr(phy2log, "cpu") else phy2log


def _hook(tokens_per_expert, num_physical_experts, num_local_physical_experts, num_groups,
          num_nodes, algorithm):
    """The REPLACE hook on SGLang's rebalance_experts: ours, from the placement in service."""
    old = _placement_in_service(num_physical_experts)
    if old is not None and old.shape[0] != _shape(tokens_per_expert)[-2]:
        old = None
    return rebalance_experts(tokens_per_expert, num_physical_experts, num_local_physical_experts,
                             num_groups, num_nodes, algorithm, old_map=old)


def register():
    """SGLang general plugin: with SWIFTBALANCER_SGLANG_EPLB set to 1, true, yes or on,
    registers the hook on HOOK_TARGET in SGLang's HookRegistry and returns the target;
    otherwise does nothing and returns None."""
    if os.environ.get(ENV_SWITCH, "").strip().lower() not in ("1", "true", "yes", "on"):
        return None
    from sglang.srt.plugins.hook_registry import HookRegistry, HookType
    HookRegistry.register(HOOK_TARGET, _hook, HookType.REPLACE)
    return HOOK_TARGET


def _torch_load(torch, path):
    # weights_only first (no code runs); the recorder also saves Python floats, which older
    # torch (1.13) refuses in that mode: then a full load, as SGLang itself reads its dumps.
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # a torch without weights_only
        return torch.load(path, map_location="cpu")
    except FileNotFoundError:
        raise
    except Exception:
        return torch.load(path, map_location="cpu", weights_only=False)


def read_recorder_dump(path):
    """``logical_count`` of an SGLang recorder dump (``.pt``), summed to ``[layers, experts]``
    float64. Needs torch. ValueError when the file holds no usable ``logical_count``. The file
    is unpickled (fully when torch's weights-only mode refuses it): convert dumps you trust."""
    import torch
    try:
        data = _torch_load(torch, str(path))
    except FileNotFoundError:
        raise ValueError("%s: no such file" % path) from None
    except Exception as e:
        raise ValueError("%s: not a torch file (%s)" % (path, e)) from None
    count = data.get("logical_count") if isinstance(data, dict) else data
    if count is None:
        raise ValueError("%s: no 'logical_count' (an SGLang expert-distribution dump in stat "
                         "mode holds one)" % path)
    count = torch.as_tensor(count)
    if count.dim() not in (2, 3) or count.numel() == 0:
        raise ValueError("%s: logical_count must be [layers, experts] or [steps, layers, "
                         "experts], got shape %s" % (path, tuple(count.shape)))
    if count.dim() == 3:
        count = count.sum(dim=0)
    out = count.to(torch.float64).numpy()
    if not np.isfinite(out).all() or (out < 0).any():
        raise ValueError("%s: logical_count holds negative or non-finite counts" % path)
    return out


def convert(dump, out, format="auto"):
    """Writes the dump's load to ``out`` (format from the extension: .npy, .csv, .json)."""
    load = read_recorder_dump(dump)
    write_load(out, load, format)
    return load.shape


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m swiftbalancer.sglang",
                                 description="SGLang expert-distribution dumps")
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("convert", help="a recorder dump (.pt) to .npy, CSV or SGLang JSON")
    c.add_argument("dump", help="the .pt file SGLang's recorder wrote (stat mode)")
    c.add_argument("out", help="output: .npy, .csv or .json ({\"logical_count\": [L][E]})")
    c.add_argument("--format", default="auto", help="auto (from the extension), npy, csv, json")
    args = ap.parse_args(argv)
    try:
        layers, experts = convert(args.dump, args.out, args.format)
    except ValueError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    print("wrote %s: %d layers x %d experts" % (args.out, layers, experts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
