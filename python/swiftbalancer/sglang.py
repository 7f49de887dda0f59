"""SGLang's EPLB calls, backed by SwiftBalancer, and its expert-distribution recorder dumps.

* ``rebalance_experts(tokens_per_expert, num_physical_experts, num_local_physical_experts,
  num_groups, num_nodes, algorithm=None)``: SGLang's algorithm-level call
  (``sglang.srt.eplb.eplb_algorithms``). ``tokens_per_expert`` is ``[buffer, layers, experts]``
  (summed over the buffer) or ``[layers, experts]``; ``num_groups`` may be None. ``algorithm``:
  an SGLang ``EplbAlgorithm`` or its name (``deepseek``, ``deepseek_hierarchical`` and their
  ``_vec`` forms); None picks as SGLang does (hierarchical when ``num_groups`` is given and
  divisible by ``num_nodes``).
* ``deepseek_rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus,
  enable_hierarchical)``: the DeepSeek-level call (``eplb_algorithms.deepseek``).

Both return ``(physical_to_logical_map [layers, num_physical], logical_to_physical_map [layers,
experts, num_physical - experts + 1] padded with -1, expert_count [layers, experts])``, int64,
CPU torch tensors when the input is a tensor. Bad arguments raise ValueError naming them;
where SGLang asserts, the error is also an AssertionError.

* ``read_recorder_dump(path)``: the ``logical_count`` of a ``.pt`` file written by SGLang's
  expert-distribution recorder in ``stat`` mode, summed to ``[layers, experts]`` float64.
* ``convert(dump, out, format="auto")``: writes it as ``.npy``, CSV or the SGLang JSON
  ``{"logical_count": ...}`` that ``--init-expert-location`` and ``swiftbalancer plan`` read.
  From the command line: ``python3 -m swiftbalancer.sglang convert DUMP.pt OUT.json``.
"""

import argparse
import sys

import numpy as np

from . import EplbAssertionError, _as_tensor, _core, _count, _host, _is_tensor, write_load

__all__ = ["rebalance_experts", "deepseek_rebalance_experts", "read_recorder_dump", "convert",
           "ALGORITHMS"]

# SGLang's algorithm names -> hierarchical or not (the _vec forms compute the same placement).
ALGORITHMS = {"deepseek": False, "deepseek_hierarchical": True, "deepseek_vec": False,
              "deepseek_vec_hierarchical": True}


def _algorithm_name(algorithm, num_groups, num_nodes):
    if algorithm is None:  # SGLang's compute_algorithm
        hierarchical = num_groups is not None and num_groups % num_nodes == 0
        return "deepseek_hierarchical" if hierarchical else "deepseek"
    name = getattr(algorithm, "name", algorithm)
    if name not in ALGORITHMS:
        raise ValueError("algorithm must be one of %s, got %r" % (sorted(ALGORITHMS), algorithm))
    return name


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
                      num_groups, num_nodes, algorithm=None):
    """SGLang's ``eplb_algorithms.rebalance_experts`` (see the module docstring)."""
    physical = _count(num_physical_experts, "num_physical_experts")
    local = _count(num_local_physical_experts, "num_local_physical_experts")
    nodes = _count(num_nodes, "num_nodes")
    if physical % local:
        raise EplbAssertionError("num_physical_experts (%d) must be divisible by "
                                 "num_local_physical_experts (%d)" % (physical, local))
    groups = None if num_groups is None else _count(num_groups, "num_groups")
    name = _algorithm_name(algorithm, groups, nodes)
    return deepseek_rebalance_experts(tokens_per_expert, physical, groups, nodes,
                                      physical // local, ALGORITHMS[name])


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
