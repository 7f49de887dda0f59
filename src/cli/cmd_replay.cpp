// `swiftbalancer replay`: trace-driven simulation of several policies and modes at once (see
// swiftbalancer/replay/replay.h for the rules and docs/replay.md for the cost model).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/cli_options.h"
#include "cli/commands.h"
#include "cli/option_checks.h"
#include "swiftbalancer/core/limits.h"
#include "swiftbalancer/core/resource.h"
#include "swiftbalancer/core/status.h"
#include "swiftbalancer/exec/thread_pool.h"
#include "swiftbalancer/io/atomic_file.h"
#include "swiftbalancer/replay/replay.h"
#include "swiftbalancer/replay/svg.h"

namespace swiftbalancer::cli {

namespace {

struct ReplayOpts {
  replay::TraceOptions trace;
  std::vector<std::string> trace_files;
  int ranks = 64, slots = 5, ranks_per_node = 8;
  std::string policies = "off,static,deepseek-global:sync,swift:async";
  replay::ReplayConfig cfg;
  std::string policy_ms = "auto";
  int policy_threads = 1;
  std::string start = "static";
  std::string json, plot, title;
};

// --policy-ms: 'auto' (negative in the config: the measured wall time) or a finite number >= 0.
double parse_policy_ms(const std::string& text) {
  if (text == "auto") return -1.0;
  double v = 0.0;
  try {
    std::size_t used = 0;
    v = std::stod(text, &used);
    if (used != text.size() || !std::isfinite(v) || v < 0) throw std::invalid_argument("");
  } catch (const std::exception&) {
    throw InputError("--policy-ms must be 'auto' or a finite non-negative number, got '" + text +
                     "'");
  }
  return v;
}

// The configuration from the options; every check that needs no file comes first.
replay::ReplayConfig make_config(const ReplayOpts& o) {
  replay::ReplayConfig cfg = o.cfg;
  cfg.topo = make_topology(o.ranks, o.slots, o.ranks_per_node,
                           "--ranks, --slots-per-rank, --ranks-per-node");
  cfg.policies = replay::parse_policy_list(o.policies);
  cfg.start_static = o.start == "static";
  cfg.policy_ms = parse_policy_ms(o.policy_ms);
  return cfg;
}

// The trace, streamed from --trace or generated; `what` describes it for the summary.
std::unique_ptr<replay::TraceSource> open_trace(const ReplayOpts& o, replay::ReplayConfig& cfg,
                                                std::string& what) {
  if (!o.trace_files.empty()) {
    // Several files play one after the other; unless the user says otherwise, the workload
    // switches where each file begins.
    std::vector<std::unique_ptr<replay::TraceSource>> parts;
    std::vector<std::int64_t> starts;
    std::int64_t at = 0;
    for (const std::string& f : o.trace_files) {
      parts.push_back(replay::open_trace_file(f));
      if (at > 0) starts.push_back(at);
      at += parts.back()->steps();
      what += (what.empty() ? "" : " + ") + f;
    }
    cfg.switch_at = o.trace.switch_at.empty() ? starts : o.trace.switch_at;
    cfg.switch_blend = o.trace.blend;
    return replay::concat_traces(std::move(parts));
  }
  // The bases and the generator's inclusion probabilities (two doubles a cell), within
  // limits::kMaxTraceBaseCells; an allocation that fails anyway names them (exit 3).
  const std::int64_t base_cells =
      replay::trace_workloads(o.trace) * o.trace.layers * o.trace.experts;
  return allocating(o.trace.base_files.empty() ? "the generated trace's base distributions (" +
                                                     std::to_string(base_cells) + " cells)"
                                               : std::string("the --base distributions"),
                    base_cells * 16, [&] {
                      replay::TraceSpec spec = o.trace.make_spec();
                      cfg.switch_at = spec.switch_at;
                      cfg.switch_blend = spec.blend;
                      what = "generated trace (seed " + std::to_string(spec.seed) + ", " +
                             std::to_string(spec.bases.size()) + " workloads)";
                      return replay::generated_trace(std::move(spec));
                    });
}

void print_replay(const ReplayOpts& o, const replay::ReplayResult& r, const std::string& what) {
  std::printf(
      "replay of %s: %lld steps x %d layers x %d experts on %d ranks x %d slots "
      "(%d nodes); interval %d, %s, %d layer(s)/step, start %s\n",
      what.c_str(), static_cast<long long>(r.steps), r.layers, r.experts, r.config.topo.ranks,
      r.config.topo.slots_per_rank, r.config.topo.nodes(), r.config.interval,
      r.config.decay > 0 ? ("decay " + std::to_string(r.config.decay)).c_str()
                         : ("window " + std::to_string(r.config.window)).c_str(),
      r.config.layers_per_step, o.start.c_str());
  std::fputs(replay::format_table(r).c_str(), stdout);
  std::printf(
      "(imbalance: per step, mean over layers of max/mean rank load; step ms: modelled; "
      "stall: sync stops + exposed async transfer; %.2f s wall, %.1f MB trace memory)\n",
      r.wall_s, static_cast<double>(r.peak_window_bytes) / 1e6);
}

void write_replay_outputs(const ReplayOpts& o, const replay::ReplayResult& r) {
  // All or none: both files are written and closed before either is renamed into place.
  OutputGroup group;
  if (!o.json.empty()) write_file_atomically(o.json, replay::to_json_text(r) + "\n");
  if (o.plot.empty()) {
    group.commit();
    return;
  }
  const std::string title =
      o.title.empty() ? "Replay: " + std::to_string(r.config.topo.ranks) + " ranks x " +
                            std::to_string(r.config.topo.slots_per_rank) + " slots, " +
                            std::to_string(r.layers) + " layers x " + std::to_string(r.experts) +
                            " experts, " + std::to_string(r.steps) + " steps"
                      : o.title;
  replay::write_replay_svg(o.plot, r, title);
  group.commit();
}

int run_replay(const ReplayOpts& o) {
  replay::ReplayConfig cfg = make_config(o);
  // The simulated worker's threads: the policy calls run on them, and with --policy-ms auto
  // their measured time is the decision's.
  std::optional<ThreadPool> pool;
  if (o.policy_threads > 1) pool.emplace(o.policy_threads);
  cfg.executor = pool ? &*pool : nullptr;
  for (const std::string& f : o.trace_files) check_inputs({{"--trace", f}});
  for (const std::string& f : o.trace.base_files) check_inputs({{"--base", f}});
  check_outputs({{"--json", o.json}, {"--plot", o.plot}});
  std::string what;
  std::unique_ptr<replay::TraceSource> src = open_trace(o, cfg, what);
  // What replay keeps grows with these (core/limits.h); refused before the replay allocates.
  const std::int64_t cells = std::int64_t{src->layers()} * src->experts();
  if (cells > limits::kMaxReplayCells)
    throw InputError(what + ": " + std::to_string(src->layers()) + " layers x " +
                     std::to_string(src->experts()) + " experts = " + std::to_string(cells) +
                     " cells exceed replay's limit of " + std::to_string(limits::kMaxReplayCells));
  if (src->steps() > limits::kMaxReplaySteps)
    throw InputError(what + ": " + std::to_string(src->steps()) +
                     " steps exceed replay's limit of " + std::to_string(limits::kMaxReplaySteps) +
                     " (replay keeps figures of every step)");
  replay::ProgressBar bar("replay");
  cfg.progress = [&bar](std::int64_t done, std::int64_t total) { bar.update(done, total); };
  // Per policy: windows and placements of one step's shape, and figures of every step (within
  // the limits above); an allocation that fails anyway names them (exit 3).
  const auto policies = static_cast<std::int64_t>(std::max<std::size_t>(1, cfg.policies.size()));
  replay::ReplayResult r = allocating(
      "replay's windows, placements and series (" + std::to_string(policies) + " policies, " +
          std::to_string(cells) + " cells, " + std::to_string(src->steps()) + " steps)",
      policies * (8 * cells * 8 + src->steps() * 16),
      [&] { return replay::run_replay(*src, std::move(cfg)); });
  bar.finish();
  r.config.progress = nullptr;
  print_replay(o, r, what);
  write_replay_outputs(o, r);
  return 0;
}

// Topology, policies and the balancer's cadence.
void add_policy_options(CLI::App* sub, ReplayOpts& o) {
  sub->add_option("--ranks", o.ranks, "EP ranks")->capture_default_str();
  sub->add_option("--slots-per-rank,--slots", o.slots, "Expert slots per rank")
      ->capture_default_str();
  sub->add_option("--ranks-per-node", o.ranks_per_node, "Ranks per node (0: one node)")
      ->capture_default_str()
      ->check(CLI::Range(0, std::numeric_limits<int>::max()));
  sub->add_option("--policy", o.policies,
                  "Comma list of POLICY[:MODE]; modes async (default), shift (async with shift "
                  "detection), sync, static; 'off' is contiguous, 'static' is "
                  "deepseek-global:static")
      ->capture_default_str();
  sub->add_option("--start", o.start,
                  "Where sync/async policies start: 'static' (deepseek-global on the first "
                  "window, like a profiled deployment) or 'off' (contiguous)")
      ->check(CLI::IsMember({"static", "off"}))
      ->capture_default_str();
  sub->add_option("--interval", o.cfg.interval, "Steps between gathers")
      ->capture_default_str()
      ->check(CLI::Range(1, std::numeric_limits<int>::max()));
  sub->add_option("--window", o.cfg.window,
                  "Statistics window in steps, a whole number of intervals (the runtime's "
                  "LoadWindow)")
      ->capture_default_str()
      ->check(CLI::Range(1, std::numeric_limits<int>::max()));
  sub->add_option("--decay", o.cfg.decay,
                  "Decayed sum instead of a window, per interval: sum = decay * sum + interval "
                  "counts (0: window)")
      ->capture_default_str()
      ->check(finite_range(0.0, 0.999999));
  sub->add_option("--layers-per-step", o.cfg.layers_per_step, "Layers committed per step (async)")
      ->capture_default_str()
      ->check(CLI::Range(1, std::numeric_limits<int>::max()));
  sub->add_option("--poll-steps", o.cfg.poll_steps,
                  "Async: the worker's result is picked up every this many steps")
      ->capture_default_str()
      ->check(CLI::Range(1, std::numeric_limits<int>::max()));
  sub->add_option("--policy-ms", o.policy_ms,
                  "Policy time per call in ms, or 'auto' for the measured wall time")
      ->capture_default_str();
  sub->add_option("--policy-threads", o.policy_threads,
                  "Threads of the simulated worker the policy spreads its per-layer work over")
      ->capture_default_str()
      ->check(CLI::Range(1, static_cast<int>(limits::kMaxPoolThreads)));
  sub->add_option("--policy-steps", o.cfg.policy_steps,
                  "Async policy delay in steps (default: policy time / modelled step time)")
      ->check(CLI::Range(0, std::numeric_limits<int>::max()));
  sub->add_option("--threshold", o.cfg.options.threshold,
                  "Layers at or below this imbalance are left alone (swift)")
      ->capture_default_str()
      ->check(finite_non_negative());
  sub->add_option("--max-transfers", o.cfg.options.max_transfers,
                  "Transfer budget per rebalance (swift; negative: unlimited)")
      ->capture_default_str();
  sub->add_option("--groups", o.cfg.options.num_groups, "Expert groups (deepseek hierarchical)")
      ->capture_default_str()
      ->check(CLI::Range(0, std::numeric_limits<int>::max()));
}

// Bounds of the cost model's options (docs/replay.md). With loads at most 2^53 per cell
// (limits::kMaxLoadValue), 2^27 cells and 2^40 steps, every modelled time stays below 1e80 us:
// no figure replay prints can be infinite. The bounds are far beyond any real machine (a
// second per token-to-expert assignment; 1 PB experts; 1 kB/s to 1 EB/s links).
constexpr double kMaxCostUs = 1e6;
constexpr double kMaxExpertMb = 1e9;
constexpr double kMinGbps = 1e-6, kMaxGbps = 1e9;

// The step-time and transfer cost model, and the recovery figure.
void add_cost_options(CLI::App* sub, ReplayOpts& o) {
  sub->add_option("--token-us", o.cfg.cost.token_us,
                  "Cost model: us per token-to-expert assignment on a rank")
      ->capture_default_str()
      ->check(finite_range(0.0, kMaxCostUs));
  sub->add_option("--layer-us", o.cfg.cost.layer_us, "Cost model: fixed us per layer per step")
      ->capture_default_str()
      ->check(finite_range(0.0, kMaxCostUs));
  sub->add_option("--expert-mb", o.cfg.cost.expert_mb, "Cost model: MB per expert moved")
      ->capture_default_str()
      ->check(finite_range(0.0, kMaxExpertMb));
  sub->add_option("--intra-gbps", o.cfg.cost.intra_gbps, "Cost model: GB/s per rank in a node")
      ->capture_default_str()
      ->check(finite_range(kMinGbps, kMaxGbps));
  sub->add_option("--inter-gbps", o.cfg.cost.inter_gbps, "Cost model: GB/s per rank across nodes")
      ->capture_default_str()
      ->check(finite_range(kMinGbps, kMaxGbps));
  sub->add_option("--recover-window", o.cfg.recover_window,
                  "Recovery: steps averaged before the switch and after it")
      ->capture_default_str()
      ->check(CLI::Range(1, std::numeric_limits<int>::max()));
  sub->add_option("--recover-tol", o.cfg.recover_tol,
                  "Recovery: back within (1 + tol) x the imbalance before the switch")
      ->capture_default_str()
      ->check(finite_non_negative());
  sub->add_option("--shift-check", o.cfg.shift.check_steps,
                  "POLICY:shift: steps between shift checks (an all-gather of one int64 per layer)")
      ->capture_default_str()
      ->check(CLI::Range(1, std::numeric_limits<int>::max()));
  sub->add_option("--shift-trigger", o.cfg.shift.trigger_ratio,
                  "POLICY:shift: gather early above this x the level the last rebalance reached")
      ->capture_default_str()
      ->check(finite_positive());
  sub->add_option("--shift-rearm", o.cfg.shift.rearm_ratio,
                  "POLICY:shift: re-armed below this x that level (hysteresis)")
      ->capture_default_str()
      ->check(finite_positive());
  sub->add_option("--shift-gap", o.cfg.shift.min_gap_steps,
                  "POLICY:shift: at least this many steps between early gathers")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{0}, std::numeric_limits<std::int64_t>::max()));
  sub->add_option("--shift-layers-per-step", o.cfg.shift.layers_per_step,
                  "POLICY:shift: layers committed per step by a cycle a shift started (0: "
                  "--layers-per-step)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  sub->add_option("--shift-skip", o.cfg.shift.skip_below,
                  "POLICY:shift: layers whose check imbalance is under this are not moved (0: all)")
      ->capture_default_str()
      ->check(finite_non_negative());
  sub->add_option("--check-us", o.cfg.cost.check_us, "Cost model: us per shift check")
      ->capture_default_str()
      ->check(finite_range(0.0, kMaxCostUs));
}

}  // namespace

CommandRunner add_replay_command(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "replay",
      "Replay a per-step expert-count trace (.npy, CSV, or generated on the fly) under several "
      "policies and modes; print imbalance, transfers, stalls and modelled step time");
  auto o = std::make_shared<ReplayOpts>();
  sub->add_option("--trace", o->trace_files,
                  "Trace files played one after the other: .npy [steps][layers][experts] "
                  "(streamed), or a per-step CSV (step,layer,expert,tokens) or JSON dump; the "
                  "workload switches where each file begins (unless --switch-at). Without it the "
                  "trace is generated on the fly from the generation options");
  o->trace.add_to(sub);
  add_policy_options(sub, *o);
  add_cost_options(sub, *o);
  sub->add_option("--json", o->json, "Write the results (summary, events, series) as JSON");
  sub->add_option("--plot", o->plot, "Write an SVG picture (imbalance over time, rank heatmaps)");
  sub->add_option("--title", o->title, "Title of the picture");
  return [o]() -> int { return run_replay(*o); };
}

}  // namespace swiftbalancer::cli
