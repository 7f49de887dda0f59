"""Expert-parallel serving of DeepSeek-V3's MoE block on torch.distributed, balanced by
SwiftBalancer while it serves.

    torchrun --nproc-per-node 4 examples/torch_ep/serve.py --steps 200 --report out.json

One process per rank (gloo, CPU). Every rank builds the same `transformers` DeepseekV3MoE blocks
(one per MoE layer, seeded random weights, nothing downloaded) and keeps only the experts of its
own slots, slot as the leading dimension, as `swiftbalancer.torch.Balancer` wants them. Each step
every rank draws its tokens, routes them with the block's own router, sends them to the ranks
holding their experts' slots (all_to_all), runs the expert MLPs there, sends the outputs back and
combines them. The balancer sees the per-slot token counts (the layers add them into one
tensor bound to it once, which after_forward takes and zeroes; or --record per-step: one
record_step call per step; or --record per-layer: one record call per layer), moves experts
between ranks in the background and
swaps the routing tables; the run checks every token against the unsharded block's own forward
and every served token against the weights it should have met.

The skew comes from the router's own per-expert bias (`gate.e_score_correction_bias`, the buffer
DeepSeek-V3 uses for aux-loss-free balancing), set from a real expert-load trace in
../shared/traces (a seeded Zipf profile when that folder is absent); --switch-at permutes it.
See README.md in this folder for the options and the report.
"""

import argparse
import csv
import datetime
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import DeepseekV3Config
from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3MoE

try:
    import swiftbalancer
    import swiftbalancer.torch as sbt
    from swiftbalancer.runtime import FaultInjection, make_config
except ImportError as e:
    sys.exit("error: cannot import swiftbalancer (%s); build the package and run with "
             "PYTHONPATH=build/python" % e)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TRACES = REPO.parent / "shared" / "traces"
DEFAULT_TRACE = "deepseek_v3r1/prefill_in1024.json"
MODES = ("async", "sync", "off")
FAULTS = ("none", "transfer-timeout", "worker-exception", "bad-placement")
GROUP_TIMEOUT = datetime.timedelta(seconds=60)
TOLERANCE = 1e-5  # fp32: the sharded sum differs from the module's only in summation order


class UsageError(Exception):
    """A bad option: reported on one line, exit status 2."""


# ---------------------------------------------------------------------------------------------
# Options


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Serve DeepSeek-V3 MoE blocks with expert parallelism over torch.distributed "
        "(gloo, CPU), balanced by swiftbalancer.torch.Balancer. Launch with torchrun.")
    p.add_argument("--mode", type=modes_list, default=["async"],
                   help="balancer mode, or several comma-separated (async,sync): each served in "
                   "turn in the same run, with the same weights and tokens, and compared")
    p.add_argument("--policy", choices=("swift", "deepseek"), default="swift")
    p.add_argument("--record", choices=("bound", "per-step", "per-layer"), default="bound",
                   help="how the counts reach the balancer: the layers add into one "
                   "[layers, slots] tensor bound to it once (bind_counts; after_forward takes and "
                   "zeroes it), or that tensor recorded with one record_step call per step, or "
                   "one record call per layer")
    p.add_argument("--inject-fault", choices=FAULTS, default="none",
                   help="fault the balancer injects (on --fault-rank, in --fault-cycle)")
    p.add_argument("--fault-rank", type=int, default=1)
    p.add_argument("--fault-cycle", type=int, default=0, help="decision cycle, 0-based")
    p.add_argument("--worker-poll-ms", type=int, default=2,
                   help="the decision worker looks for its job this often instead of being woken "
                        "by the serving thread (BalancerConfig worker_poll; 0: woken): with more "
                        "ranks than cores a wake-up can cost the serving thread its core "
                        "(default 2)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--tokens", type=int, default=64, help="tokens per rank per step")
    p.add_argument("--interval", type=int, default=20, help="steps between count gathers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report", help="write the JSON report here (rank 0)")
    p.add_argument("--verbose", action="store_true", help="every balancer log line on stderr")
    p.add_argument("--ranks", type=int, default=4, help="expected world size")
    p.add_argument("--slots-per-rank", type=int, default=5)
    p.add_argument("--layers", type=int, default=4, help="MoE layers")
    p.add_argument("--experts", type=int, default=16, help="routed experts per layer")
    p.add_argument("--top-k", type=int, default=4)
    p.add_argument("--groups", type=int, default=4, help="expert groups of the router (n_group)")
    p.add_argument("--topk-groups", type=int, default=2, help="groups a token may pick")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--intermediate", type=int, default=32, help="expert intermediate size")
    p.add_argument("--skew", type=float, default=1.0,
                   help="scale of the router bias (0: the router's own, unskewed choice)")
    p.add_argument("--switch-at", type=int, default=-1,
                   help="step at which the workload shifts (the bias is permuted); -1: never")
    p.add_argument("--traces", default=str(DEFAULT_TRACES), help="the shared traces folder")
    p.add_argument("--trace", default=DEFAULT_TRACE,
                   help="file under --traces: SGLang JSON (logical_count) or CSV "
                   "(layer,expert,tokens[,step])")
    return p.parse_args(argv)


def modes_list(text):
    modes = [m.strip() for m in text.split(",")]
    bad = [m for m in modes if m not in MODES]
    if bad or len(set(modes)) != len(modes):
        raise argparse.ArgumentTypeError("modes are %s, each at most once (got %r)"
                                         % ("|".join(MODES), text))
    return modes


def check_args(a, world_size):
    """Raises UsageError naming the first bad option."""
    positive = ("steps", "tokens", "interval", "ranks", "slots_per_rank", "layers", "experts",
                "top_k", "groups", "topk_groups", "hidden", "intermediate")
    for name in positive:
        if getattr(a, name) < 1:
            raise UsageError("--%s must be at least 1" % name.replace("_", "-"))
    if world_size != a.ranks:
        raise UsageError("world size %d does not match --ranks %d (the topology); launch with "
                         "torchrun --nproc-per-node %d" % (world_size, a.ranks, a.ranks))
    slots = a.ranks * a.slots_per_rank
    if slots < a.experts:
        raise UsageError("%d ranks x %d slots hold fewer than --experts %d"
                         % (a.ranks, a.slots_per_rank, a.experts))
    if a.slots_per_rank > a.experts:
        raise UsageError("--slots-per-rank %d exceeds --experts %d (a rank holds at most one "
                         "replica of an expert)" % (a.slots_per_rank, a.experts))
    if a.experts % a.groups:
        raise UsageError("--experts %d is not a multiple of --groups %d" % (a.experts, a.groups))
    if a.topk_groups > a.groups:
        raise UsageError("--topk-groups exceeds --groups")
    if a.top_k > a.topk_groups * (a.experts // a.groups):
        raise UsageError("--top-k %d exceeds the experts of %d groups" % (a.top_k, a.topk_groups))
    if a.skew < 0 or not math.isfinite(a.skew):
        raise UsageError("--skew must be a finite number >= 0")
    if a.inject_fault != "none" and not 0 <= a.fault_rank < a.ranks:
        raise UsageError("--fault-rank must be in [0, %d)" % a.ranks)
    if a.fault_cycle < -1:
        raise UsageError("--fault-cycle must be >= -1 (-1: every cycle)")
    if a.switch_at >= a.steps:
        raise UsageError("--switch-at must be below --steps")


# ---------------------------------------------------------------------------------------------
# The model: DeepSeek-V3 MoE blocks from their config, seeded random weights


def model_config(a):
    config = DeepseekV3Config(
        hidden_size=a.hidden, moe_intermediate_size=a.intermediate, n_routed_experts=a.experts,
        num_experts_per_tok=a.top_k, n_group=a.groups, topk_group=a.topk_groups,
        n_shared_experts=1, norm_topk_prob=True, hidden_act="silu")
    # The blocks are standalone modules (no from_pretrained to pick an implementation): name
    # the experts' own per-expert loop as the reference.
    config._experts_implementation = "eager"
    return config


def build_blocks(a):
    """One DeepseekV3MoE per layer, identical on every rank: each parameter is drawn from a
    generator seeded by (seed, layer), with std 1/sqrt(fan_in) so activations stay O(1)."""
    config = model_config(a)
    blocks = []
    for layer in range(a.layers):
        block = DeepseekV3MoE(config).float().eval()
        gen = torch.Generator().manual_seed(a.seed * 7919 + layer)
        with torch.no_grad():
            for _, param in sorted(block.named_parameters()):
                param.normal_(0.0, param.shape[-1] ** -0.5, generator=gen)
        blocks.append(block)
    return blocks


# ---------------------------------------------------------------------------------------------
# The workload: a router bias from a real trace, tokens drawn per rank and step


def read_trace(path):
    """Expert loads [layers][experts] (lists of floats) from an SGLang JSON dump ([L][E] or
    [T][L][E], summed over T) or a CSV with columns layer, expert, tokens (other columns, such
    as step, are summed over)."""
    if path.suffix == ".json":
        with open(path) as f:
            counts = json.load(f)["logical_count"]
        t = torch.tensor(counts, dtype=torch.float64)
        return t.sum(0) if t.dim() == 3 else t
    rows = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            key = (int(row["layer"]), int(row["expert"]))
            rows[key] = rows.get(key, 0.0) + float(row["tokens"])
    layers = 1 + max(l for l, _ in rows)
    experts = 1 + max(e for _, e in rows)
    t = torch.zeros(layers, experts, dtype=torch.float64)
    for (l, e), v in rows.items():
        t[l, e] = v
    return t


def load_profiles(a):
    """Per model layer, a standardised log-frequency profile [layers, experts] (mean 0, std 1)
    and a line saying where it came from. Trace layers without load (DeepSeek's dense layers)
    are skipped; model layer l takes the l-th loaded trace layer (cycling) and its first
    `experts` experts."""
    path = Path(a.traces) / a.trace
    if path.is_file():
        loads = read_trace(path)
        if loads.shape[1] < a.experts:
            raise UsageError("trace %s has %d experts per layer, fewer than --experts %d"
                             % (path, loads.shape[1], a.experts))
        loaded = (loads.sum(1) > 0).nonzero().squeeze(1).tolist()
        if not loaded:
            raise UsageError("trace %s has no load" % path)
        rows = [loaded[l % len(loaded)] for l in range(a.layers)]
        picked = loads[rows, :a.experts]
        source = "trace %s, layers %s, experts 0..%d" % (
            path, ",".join(map(str, rows)), a.experts - 1)
    else:
        # No shared traces (they are not part of the repository): a Zipf(1) popularity per
        # layer, its ranking a seeded permutation.
        gen = torch.Generator().manual_seed(a.seed + 104729)
        ranks = torch.stack([torch.randperm(a.experts, generator=gen) for _ in range(a.layers)])
        picked = 1.0 / (ranks.double() + 1.0)
        source = "seeded Zipf profile (no trace at %s)" % path
    # Frequencies floored at 1e-6 so that an expert the trace never saw has a finite log.
    logf = (picked / picked.sum(1, keepdim=True)).clamp_min(1e-6).log()
    logf = logf - logf.mean(1, keepdim=True)
    std = logf.std(1, keepdim=True)
    return (logf / torch.where(std > 0, std, torch.ones_like(std))).float(), source


def shifted_profiles(profiles, seed):
    """The workload after --switch-at: the same popularity shape landing on other experts (a
    seeded permutation per layer), as when the served traffic changes domain."""
    gen = torch.Generator().manual_seed(seed + 15485863)
    return torch.stack([p[torch.randperm(p.numel(), generator=gen)] for p in profiles])


# The router's choice scores are sigmoids in (0, 1); one unit of --skew shifts a one-sigma hot
# expert by this much, enough to decide most of its top-k contests.
BIAS_PER_SKEW = 0.25


def set_router_bias(blocks, profiles, skew):
    with torch.no_grad():
        for block, prof in zip(blocks, profiles):
            block.gate.e_score_correction_bias.copy_(prof * (skew * BIAS_PER_SKEW))


def draw_tokens(a, rank, step):
    gen = torch.Generator().manual_seed(((a.seed * 1009 + rank) << 32) + step)
    return torch.randn(a.tokens, a.hidden, generator=gen)


# ---------------------------------------------------------------------------------------------
# Placement and this rank's expert tensors


def initial_placement(a):
    """phy2log [layers, ranks * slots_per_rank]: the experts round-robin over the slots, so the
    slots past the first `experts` hold replicas of experts 0, 1, ... (a rank never holds two
    replicas of one expert as slots_per_rank <= experts)."""
    slots = a.ranks * a.slots_per_rank
    return (torch.arange(slots, dtype=torch.int64) % a.experts).repeat(a.layers, 1)


def local_experts(blocks, phy2log, rank, slots_per_rank):
    """Per layer [w13 [S, 2I, H], w2 [S, H, I]]: the block's fused expert tensors at the
    experts this rank's slots hold, copied (the balancer writes into them in place)."""
    mine = phy2log[:, rank * slots_per_rank:(rank + 1) * slots_per_rank]
    out = []
    for block, ids in zip(blocks, mine):
        w13 = block.experts.gate_up_proj.detach()[ids].clone().contiguous()
        w2 = block.experts.down_proj.detach()[ids].clone().contiguous()
        out.append([w13, w2])
    return out


FINGERPRINT_ELEMS = 4


def fingerprint(w13, w2):
    """[n, 2 * FINGERPRINT_ELEMS + 2] per expert: a few leading elements and the sum of each of
    its tensors, so that a slot holding another expert, or one tensor of another expert, is
    told apart (weights move bitwise, so equality is exact)."""
    n = w13.shape[0]
    a, b = w13.reshape(n, -1), w2.reshape(n, -1)
    return torch.cat([a[:, :FINGERPRINT_ELEMS], b[:, :FINGERPRINT_ELEMS],
                      a.sum(1, keepdim=True), b.sum(1, keepdim=True)], dim=1)


# ---------------------------------------------------------------------------------------------
# The balancer


def make_balancer(a, phy2log, experts):
    # log=None: the library's sink (warnings and errors on stderr); --verbose: every line.
    cfg = make_config(mode=a.mode, interval_steps=a.interval, worker_poll_ms=a.worker_poll_ms,
                      log=True if a.verbose else None)
    if a.inject_fault != "none":
        fault = FaultInjection()
        fault.kind = a.inject_fault
        fault.rank = a.fault_rank
        fault.cycle = a.fault_cycle
        cfg.fault = fault
    # The balancer gets a group of its own (as vLLM keeps one for EPLB): its transfers and
    # votes then never queue behind, or interleave with, the dispatch all_to_alls.
    group = dist.new_group(backend="gloo")
    return sbt.Balancer(
        topology=swiftbalancer.Topology(ranks=a.ranks, slots_per_rank=a.slots_per_rank),
        phy2log=phy2log, experts=experts, config=cfg, policy=a.policy, cpu_group=group)


def REFERENCE_WORK():
    return sum(range(1000))


class RunQueueClock:
    """How long this thread has waited on a run queue, ready but not running (the kernel's
    schedstat, Linux): the time the host's other threads took the core from it. Always 0 where
    the file cannot be read."""

    def __init__(self):
        try:
            self.fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
            self.ns()
        except (OSError, ValueError, IndexError):
            self.fd = None

    def ns(self):
        if self.fd is None:
            return 0
        return int(os.pread(self.fd, 128, 0).split()[1])

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class TimedBalancer:
    """The balancer's serving-thread calls, timed per step with Python and the binding included:
    record (per layer) or record_step, before_forward and after_forward (what the runtime costs
    the serving thread; the runtime reports its bounded waits and weight copies apart, in the
    step's stats), and route apart (the engine's own top-k -> slot mapping, tensor ops on the
    tables). Beside the wall time of those calls: their CPU time and the time the thread waited
    on a run queue during them (preempted by the host's other threads: 4 ranks on 2 cores)."""

    def __init__(self, bal):
        self.bal = bal
        self.step_ns = 0
        self.route_ns = 0
        self.step_cpu_ns = 0
        self.step_call_ns = []   # per step: record or record_step + before/after_forward
        self.step_call_cpu_ns = []  # the same calls' CPU time on this thread
        self.step_route_ns = []  # per step: route
        self.step_stats = []
        self.step_runq_ns = []   # per step: run-queue wait during the same calls
        self.step_runq_ns_now = 0
        self.reference_ns = []   # per step: REFERENCE_WORK's wall time, after the calls
        self.runq = RunQueueClock()

    def bind_counts(self, counts):
        self.bal.bind_counts(counts)

    def before_forward(self):
        self.step_ns = self.route_ns = self.step_cpu_ns = self.step_runq_ns_now = 0
        q0 = self.runq.ns()
        c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
        self.bal.before_forward()
        self.step_ns += time.perf_counter_ns() - t0
        self.step_cpu_ns += time.thread_time_ns() - c0
        self.step_runq_ns_now += self.runq.ns() - q0

    def route(self, layer, ids):
        t0 = time.perf_counter_ns()
        out = self.bal.route(layer, ids)
        self.route_ns += time.perf_counter_ns() - t0
        return out

    def record(self, layer, counts):
        q0 = self.runq.ns()
        c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
        self.bal.record(layer, counts)
        self.step_ns += time.perf_counter_ns() - t0
        self.step_cpu_ns += time.thread_time_ns() - c0
        self.step_runq_ns_now += self.runq.ns() - q0

    def record_step(self, counts):
        q0 = self.runq.ns()
        c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
        self.bal.record_step(counts)
        self.step_ns += time.perf_counter_ns() - t0
        self.step_cpu_ns += time.thread_time_ns() - c0
        self.step_runq_ns_now += self.runq.ns() - q0

    def after_forward(self):
        q0 = self.runq.ns()
        c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
        stats = self.bal.after_forward()
        self.step_ns += time.perf_counter_ns() - t0
        self.step_cpu_ns += time.thread_time_ns() - c0
        self.step_runq_ns_now += self.runq.ns() - q0
        self.step_runq_ns.append(self.step_runq_ns_now)
        # The same place in the step, a fixed piece of pure Python of about the calls' cost: how
        # much wall time this host adds to such a piece by itself (preemption of the thread).
        t0 = time.perf_counter_ns()
        REFERENCE_WORK()
        self.reference_ns.append(time.perf_counter_ns() - t0)
        self.step_call_ns.append(self.step_ns)
        self.step_call_cpu_ns.append(self.step_cpu_ns)
        self.step_route_ns.append(self.route_ns)
        self.step_stats.append(stats)
        return stats


# ---------------------------------------------------------------------------------------------
# Expert-parallel forward of one layer


def exchange(tensor, send_splits, recv_splits):
    """all_to_all_single with row splits: rows for rank r go out as send_splits[r] rows."""
    out = tensor.new_empty((sum(recv_splits),) + tuple(tensor.shape[1:]))
    dist.all_to_all_single(out, tensor, output_split_sizes=recv_splits,
                           input_split_sizes=send_splits)
    return out


def expert_mlp(x, w13, w2, act_fn):
    """What DeepseekV3Experts computes for one expert: act(gate) * up, then down; the gate and
    up rows fused in w13 in that order. act_fn is the module's own activation object."""
    gate, up = torch.nn.functional.linear(x, w13).chunk(2, dim=-1)
    return torch.nn.functional.linear(act_fn(gate) * up, w2)


class Check:
    """Served (token, k) pairs whose slot held other weights than their expert's, and the time
    the check took (kept out of the step time)."""

    def __init__(self):
        self.wrong = 0
        self.ns = 0


def serve_layer(layer, x, block, slots_w, ref_fp, bal, a, check, step_counts):
    """The block's routed experts over the ranks plus its shared expert locally; returns
    ([tokens, hidden], tokens received by this rank). This rank's tokens per local slot go to
    bal.record, or (--record bound or per-step) into row `layer` of step_counts, which the
    balancer takes at after_forward (bound) or run() records once for the step (per-step)."""
    S, R = a.slots_per_rank, a.ranks
    _, weights, ids = block.gate(x)                        # the module's own routing
    slots = bal.route(layer, ids).reshape(-1)              # pair i*k+j: token i's j-th choice
    # Pairs sorted by destination rank (stable: the source can undo it), so that each rank's
    # rows are contiguous, as all_to_all_single sends them.
    dest = torch.div(slots, S, rounding_mode="floor")
    order = torch.argsort(dest, stable=True)
    send = torch.bincount(dest, minlength=R)
    recv = torch.empty_like(send)
    dist.all_to_all_single(recv, send)                     # how many rows each rank gets
    send_splits, recv_splits = send.tolist(), recv.tolist()

    tokens = x.repeat_interleave(a.top_k, dim=0)[order]
    # The logical expert travels with the pair only for the wrong-expert check.
    meta = torch.stack([slots[order] % S, ids.reshape(-1)[order]], dim=1)
    x_in = exchange(tokens, send_splits, recv_splits)
    meta_in = exchange(meta, send_splits, recv_splits)
    local, expert = meta_in[:, 0], meta_in[:, 1]
    counts = torch.bincount(local, minlength=S)
    if step_counts is None:
        bal.record(layer, counts)
    else:
        step_counts[layer] += counts

    w13, w2 = slots_w
    t0 = time.perf_counter_ns()
    check.wrong += int((fingerprint(w13, w2)[local] != ref_fp[expert]).any(1).sum())
    check.ns += time.perf_counter_ns() - t0

    y_in = torch.empty_like(x_in)
    for s in torch.unique(local).tolist():
        rows = (local == s).nonzero().squeeze(1)
        y_in[rows] = expert_mlp(x_in[rows], w13[s], w2[s], block.experts.act_fn)

    y = exchange(y_in, recv_splits, send_splits)
    routed = torch.empty_like(y)
    routed[order] = y
    routed = (routed.view(-1, a.top_k, a.hidden) * weights.unsqueeze(-1)).sum(1)
    return routed + block.shared_experts(x), int(local.numel())


# ---------------------------------------------------------------------------------------------
# The run


def run(a, rank):
    torch.set_num_threads(1)  # R processes share the host's cores
    blocks = build_blocks(a)
    profiles, source = load_profiles(a)
    set_router_bias(blocks, profiles, a.skew)
    phy2log = initial_placement(a)
    experts = local_experts(blocks, phy2log, rank, a.slots_per_rank)
    ref_fp = [fingerprint(b.experts.gate_up_proj.detach(), b.experts.down_proj.detach())
              for b in blocks]

    bal = TimedBalancer(make_balancer(a, phy2log, experts))
    # Open gloo's pairwise connections before the first timed step.
    warm = torch.zeros(a.ranks, dtype=torch.int64)
    dist.all_to_all_single(torch.empty_like(warm), warm)
    dist.barrier()

    check, max_diff = Check(), 0.0
    # Allocated once: the layers add into it, as they write vLLM's expert-load tensor. Bound to
    # the balancer, which takes and zeroes it at after_forward; per-step: zeroed here each step
    # and handed over with record_step.
    step_counts = (torch.zeros(a.layers, a.slots_per_rank, dtype=torch.int64)
                   if a.record in ("bound", "per-step") else None)
    if a.record == "bound":
        bal.bind_counts(step_counts)
    step_ns, received = [], torch.zeros(a.steps, a.layers, dtype=torch.int64)
    # The next step's before_forward follows this step's after_forward at once: the first call
    # after the forward's tensor work runs on cold caches, the one right behind it does not.
    bal.before_forward()
    with torch.no_grad():
        for step in range(a.steps):
            if step == a.switch_at:
                set_router_bias(blocks, shifted_profiles(profiles, a.seed), a.skew)
            x = draw_tokens(a, rank, step)
            check_ns0 = check.ns
            # Untimed: the step's clock starts with every rank ready, not behind a peer still
            # checking the step before against the unsharded module.
            dist.barrier()
            t0 = time.perf_counter_ns()
            if a.record == "per-step":
                step_counts.zero_()
            outputs = []
            for layer, block in enumerate(blocks):
                y, n = serve_layer(layer, x, block, experts[layer], ref_fp[layer], bal, a, check,
                                   step_counts)
                outputs.append(y)
                received[step, layer] = n
            if a.record == "per-step":
                bal.record_step(step_counts)
            bal.after_forward()
            if step + 1 < a.steps:
                bal.before_forward()
            step_ns.append(time.perf_counter_ns() - t0 - (check.ns - check_ns0))
            for block, y in zip(blocks, outputs):  # the unsharded module on the same tokens
                ref = block(x.unsqueeze(0)).squeeze(0)
                max_diff = max(max_diff, float((y - ref).abs().max()))

    local = {
        "rank": rank, "wrong": check.wrong, "max_diff": max_diff, "step_ns": step_ns,
        "call_ns": bal.step_call_ns, "call_cpu_ns": bal.step_call_cpu_ns,
        "route_ns": bal.step_route_ns, "reference_ns": bal.reference_ns,
        "runq_ns": bal.step_runq_ns,
        "received": received.tolist(),
        "stats": [stats_dict(s) for s in bal.step_stats], "counters": dict(bal.bal.counters()),
    }
    gathered = [None] * a.ranks
    dist.all_gather_object(gathered, local)
    bal.bal.close()
    bal.runq.close()
    if rank != 0:
        return None
    return make_report(a, gathered, source)


STAT_FIELDS = ("step", "serving_ns", "copy_ns", "wait_ns", "bytes_sent", "bytes_received",
               "layers_committed", "layers_failed", "gathered", "cycle_agreed",
               "rebalance_finished", "errors")


def stats_dict(s):
    return {f: getattr(s, f) for f in STAT_FIELDS}


# ---------------------------------------------------------------------------------------------
# Report


def percentile(values, q):
    """Nearest-rank percentile of a non-empty list."""
    v = sorted(values)
    return v[min(len(v) - 1, max(0, math.ceil(q / 100.0 * len(v)) - 1))]


def imbalance(received, steps):
    """Mean over layers of max/mean rank load, rank load = tokens a rank served in `steps`.
    received: [ranks, steps, layers]."""
    load = received[:, steps, :].sum(1).double()           # [ranks, layers]
    mean = load.mean(0)
    per_layer = torch.where(mean > 0, load.max(0).values / mean, torch.ones_like(mean))
    return float(per_layer.mean())


def make_report(a, ranks, source):
    received = torch.tensor([r["received"] for r in ranks], dtype=torch.int64)
    # A step lasts as long as its slowest rank; the all_to_alls keep the ranks in step.
    step_ms = [max(r["step_ns"][s] for r in ranks) / 1e6 for s in range(a.steps)]
    median = percentile(step_ms, 50)
    rebalance_steps = [s for s in range(a.steps)
                       if any(r["stats"][s]["layers_committed"] for r in ranks)]
    # What a rebalance costs serving: its worst step over the median step. Async spreads the
    # moves over layers_per_step layers a step; sync moves every layer in one step.
    stall = max((step_ms[s] for s in rebalance_steps), default=median) - median
    # The typical rebalance step: the median of those steps over the median of the others (the
    # worst one above is mostly this host's step-to-step noise when there are many).
    quiet = [step_ms[s] for s in range(a.steps) if s not in set(rebalance_steps)]
    cost = (percentile([step_ms[s] for s in rebalance_steps], 50) - percentile(quiet, 50)
            if rebalance_steps and quiet else 0.0)
    # The balancer's own calls at those steps (waits and copies included), slowest rank.
    call_ms = max((max(r["call_ns"][s] for r in ranks) / 1e6 for s in rebalance_steps),
                  default=0.0)
    # The runtime's own time on the serving thread: the calls less the bounded waits and the
    # weight copies, which its stats report apart (as the C++ demo does).
    call_us = [(ns - st["wait_ns"] - st["copy_ns"]) / 1e3
               for r in ranks for ns, st in zip(r["call_ns"], r["stats"])]
    total_us = [ns / 1e3 for r in ranks for ns in r["call_ns"]]
    runtime_us = [st["serving_ns"] / 1e3 for r in ranks for st in r["stats"]]
    route_us = [ns / 1e3 for r in ranks for ns in r["route_ns"]]
    wait_us = [st["wait_ns"] / 1e3 for r in ranks for st in r["stats"]]
    cpu_nocopy_us = [max(0, ns - st["copy_ns"]) / 1e3
                     for r in ranks for ns, st in zip(r["call_cpu_ns"], r["stats"])]
    reference_us = [ns / 1e3 for r in ranks for ns in r["reference_ns"]]
    # The calls less waits, copies and the time the thread sat on a run queue (preempted by the
    # host's other threads). A wait's own run-queue time is in both the wait and the run-queue
    # figure: taken off twice, so this errs low by that much at steps preempted inside a wait.
    running_us = [max(0, ns - st["wait_ns"] - st["copy_ns"] - q) / 1e3
                  for r in ranks for ns, st, q in zip(r["call_ns"], r["stats"], r["runq_ns"])]
    runq_us = [q / 1e3 for r in ranks for q in r["runq_ns"]]
    finished = [s for s in range(a.steps) if any(r["stats"][s]["rebalance_finished"]
                                                  and r["stats"][s]["layers_committed"]
                                                  for r in ranks)]
    after_first = (range(finished[0] + 1, min(finished[0] + 1 + a.interval, a.steps))
                   if finished and finished[0] + 1 < a.steps else None)
    counters = [r["counters"] for r in ranks]
    intervals = [range(i, min(i + a.interval, a.steps)) for i in range(0, a.steps, a.interval)]
    return {
        "mode": a.mode, "record": a.record, "policy": a.policy, "fault": a.inject_fault,
        "ranks": a.ranks, "slots_per_rank": a.slots_per_rank, "layers": a.layers,
        "experts": a.experts, "top_k": a.top_k, "steps": a.steps, "tokens": a.tokens,
        "interval": a.interval, "worker_poll_ms": a.worker_poll_ms, "seed": a.seed, "skew": a.skew,
        "switch_at": a.switch_at,
        "workload": source,
        "wrong_expert_tokens": sum(r["wrong"] for r in ranks),
        "max_abs_diff": max(r["max_diff"] for r in ranks),
        "imbalance_first": imbalance(received, intervals[0]),
        "imbalance_last": imbalance(received, intervals[-1]),
        "imbalance_by_interval": [round(imbalance(received, iv), 4) for iv in intervals],
        # The interval right after the first rebalance's last layer committed.
        "imbalance_after_first_rebalance": (imbalance(received, after_first)
                                            if after_first else None),
        "first_rebalance_step": finished[0] if finished else None,
        "rebalances": max(c.get("rebalances", 0) for c in counters),
        "layers_committed": max(c.get("layers_committed", 0) for c in counters),
        "failed_layers": max(c.get("layers_failed", 0) for c in counters),
        "errors": sum(st["errors"] for r in ranks for st in r["stats"]),
        "bytes_moved": sum(c.get("bytes_sent", 0) for c in counters),
        "rebalance_steps": rebalance_steps,
        "serving_us_p50": percentile(call_us, 50),
        "serving_us_p99": percentile(call_us, 99),
        "serving_with_waits_us_p99": percentile(total_us, 99),
        "serving_cpu_us_p50": percentile([ns / 1e3 for r in ranks for ns in r["call_cpu_ns"]], 50),
        "serving_cpu_us_p99": percentile([ns / 1e3 for r in ranks for ns in r["call_cpu_ns"]], 99),
        # CPU time less the weight copies (installs: memcpy on CPU tensors, a side stream's
        # queue on CUDA), the part that is the runtime's bookkeeping and Python.
        "serving_cpu_nocopy_us_p50": percentile(cpu_nocopy_us, 50),
        "serving_cpu_nocopy_us_p99": percentile(cpu_nocopy_us, 99),
        # REFERENCE_WORK at the same point of every step: this host's noise on such a piece.
        "reference_us_p50": percentile(reference_us, 50),
        "reference_us_p99": percentile(reference_us, 99),
        # Run-queue time of the serving thread during the calls (Linux schedstat; 0 elsewhere),
        # and the calls without it: what the balancer itself costs the thread.
        "serving_runq_us_p99": percentile(runq_us, 99),
        "serving_runq_us_max": max(runq_us),
        "serving_running_us_p50": percentile(running_us, 50),
        "serving_running_us_p99": percentile(running_us, 99),
        # The C++ runtime alone (its StepStats.serving_ns): what the calls cost without Python.
        "runtime_serving_us_p50": percentile(runtime_us, 50),
        "runtime_serving_us_p99": percentile(runtime_us, 99),
        "route_us_p50": percentile(route_us, 50),
        "route_us_p99": percentile(route_us, 99),
        "serving_wait_us_p50": percentile(wait_us, 50),
        "serving_wait_us_p99": percentile(wait_us, 99),
        "step_ms_median": median,
        "step_ms_max": max(step_ms),
        "slowest_step": step_ms.index(max(step_ms)),
        "rebalance_stall_ms": stall,
        "rebalance_cost_ms": cost,
        "rebalance_call_ms": call_ms,
        "step_ms": [round(v, 3) for v in step_ms],
        "counters_rank0": counters[0],
    }


def write_json(path, obj):
    """Written whole or not at all: a temporary next to the target, then renamed over it."""
    path = Path(path)
    tmp = path.with_name(".%s.tmp%d" % (path.name, os.getpid()))
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def print_summary(r):
    print("swiftbalancer torch_ep: mode=%s ranks=%d steps=%d tokens/rank/step=%d"
          % (r["mode"], r["ranks"], r["steps"], r["tokens"]))
    print("  workload: %s" % r["workload"])
    after = r["imbalance_after_first_rebalance"]
    print("  imbalance first interval %.3f -> after the first rebalance (step %s) %s, last "
          "interval %.3f" % (r["imbalance_first"], r["first_rebalance_step"],
                             "%.3f" % after if after is not None else "-", r["imbalance_last"]))
    print("  rebalances %d, layers committed %d, failed %d, %d bytes moved"
          % (r["rebalances"], r["layers_committed"], r["failed_layers"], r["bytes_moved"]))
    print("  balancer on the serving thread per step: p50 %.1f us, p99 %.1f us (waits and copies "
          "apart: with them p99 %.1f us); of it the C++ runtime p50 %.1f us, p99 %.1f us; "
          "route p50 %.1f us"
          % (r["serving_us_p50"], r["serving_us_p99"], r["serving_with_waits_us_p99"],
             r["runtime_serving_us_p50"], r["runtime_serving_us_p99"], r["route_us_p50"]))
    print("  of those calls' wall time, the thread sat on a run queue (preempted) p99 %.1f us, "
          "max %.1f us; without it: p50 %.1f us, p99 %.1f us"
          % (r["serving_runq_us_p99"], r["serving_runq_us_max"], r["serving_running_us_p50"],
             r["serving_running_us_p99"]))
    print("  CPU time of those calls p50 %.1f us, p99 %.1f us (copies apart); a fixed piece of "
          "Python at the same point: p50 %.1f us, p99 %.1f us wall"
          % (r["serving_cpu_nocopy_us_p50"], r["serving_cpu_nocopy_us_p99"],
             r["reference_us_p50"], r["reference_us_p99"]))
    print("  step median %.2f ms, max %.2f ms; rebalance stall %.2f ms (worst step), %.2f ms "
          "(median rebalance step over the median other step)"
          % (r["step_ms_median"], r["step_ms_max"], r["rebalance_stall_ms"],
             r["rebalance_cost_ms"]))
    verdict = "ok" if r["wrong_expert_tokens"] == 0 and r["max_abs_diff"] <= TOLERANCE else "FAIL"
    print("  check %s: wrong-expert tokens %d, max |diff| vs the module %.2e"
          % (verdict, r["wrong_expert_tokens"], r["max_abs_diff"]))


def compare(reports):
    """What a rebalance costs serving in each mode of one run, and async's cost over sync's."""
    by_mode = {r["mode"]: r for r in reports}
    out = {m: {"rebalance_stall_ms": r["rebalance_stall_ms"],
               "rebalance_cost_ms": r["rebalance_cost_ms"],
               "rebalance_call_ms": r["rebalance_call_ms"]} for m, r in by_mode.items()}
    if "async" in by_mode and "sync" in by_mode:
        for key in ("rebalance_stall_ms", "rebalance_cost_ms", "rebalance_call_ms"):
            sync = by_mode["sync"][key]
            out["async_over_sync_" + key[len("rebalance_"):]] = (
                by_mode["async"][key] / sync if sync > 0 else None)
    return out


def print_comparison(c):
    if "async_over_sync_stall_ms" not in c:
        return
    def ratio(key):
        v = c["async_over_sync_" + key]
        return "%.2f" % v if v is not None else "-"
    print("comparison: async's worst rebalance step costs %+.2f ms over the median step = %s of "
          "sync's stall %+.2f ms; the median rebalance step %+.2f ms = %s of sync's %+.2f ms; the "
          "balancer's own calls at those steps: async %.2f ms, sync %.2f ms"
          % (c["async"]["rebalance_stall_ms"], ratio("stall_ms"), c["sync"]["rebalance_stall_ms"],
             c["async"]["rebalance_cost_ms"], ratio("cost_ms"), c["sync"]["rebalance_cost_ms"],
             c["async"]["rebalance_call_ms"], c["sync"]["rebalance_call_ms"]))


def main(argv=None):
    a = parse_args(argv)
    a.modes = a.mode
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        print("error: launch with torchrun --nproc-per-node %d %s" % (a.ranks, sys.argv[0]),
              file=sys.stderr)
        return 2
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    try:
        check_args(a, world)
    except UsageError as e:  # every rank sees the same options: each exits before any collective
        if rank == 0:
            print("error: %s" % e, file=sys.stderr)
        return 2
    # A finite timeout (gloo's default is 30 minutes): gloo cannot abort a collective, so one a
    # peer never joined (a rank that stopped answering) holds the group's worker thread until
    # this timeout, and destroy_process_group() waits for it at exit.
    dist.init_process_group("gloo", timeout=GROUP_TIMEOUT)
    try:
        reports = []
        for mode in a.modes:
            a.mode = mode
            reports.append(run(a, rank))
        if rank != 0:
            return 0
        for r in reports:
            print_summary(r)
        out = reports[0]
        if len(reports) > 1:
            out = {"runs": reports, "comparison": compare(reports)}
            print_comparison(out["comparison"])
        if a.report:
            write_json(a.report, out)
        ok = all(r["wrong_expert_tokens"] == 0 and r["max_abs_diff"] <= TOLERANCE
                 for r in reports)
        return 0 if ok else 1
    except UsageError as e:  # a bad trace: found by every rank alike, before any collective
        if rank == 0:
            print("error: %s" % e, file=sys.stderr)
        return 2
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
