// `swiftbalancer replay`: trace-driven simulation of several policies and modes at once (see
// swiftbalancer/replay/replay.h for the rules and docs/replay.md for the cost model).
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "cli/cli_options.h"
#include "cli/commands.h"
#include "swiftbalancer/core/status.h"
#include "swiftbalancer/replay/replay.h"
#include "swiftbalancer/replay/svg.h"

namespace swiftbalancer::cli {

CommandRunner add_replay_command(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "replay",
      "Replay a per-step expert-count trace (.npy, or generated on the fly) under several "
      "policies and modes; print imbalance, transfers, stalls and modelled step time");
  struct Opts {
    replay::TraceOptions trace;
    std::string trace_file;
    int ranks = 64, slots = 5, ranks_per_node = 8;
    std::string policies = "off,static,deepseek-global:sync,swift:async";
    replay::ReplayConfig cfg;
    std::string policy_ms = "auto";
    std::string start = "static";
    std::string json, plot, title;
    std::vector<std::int64_t> switch_at_metric;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("--trace", o->trace_file,
                  "Trace .npy [steps][layers][experts], streamed; without it the trace is "
                  "generated on the fly from the generation options");
  o->trace.add_to(sub);
  sub->add_option("--ranks", o->ranks, "EP ranks")->capture_default_str();
  sub->add_option("--slots-per-rank,--slots", o->slots, "Expert slots per rank")
      ->capture_default_str();
  sub->add_option("--ranks-per-node", o->ranks_per_node, "Ranks per node (0: one node)")
      ->capture_default_str();
  sub->add_option("--policy", o->policies,
                  "Comma list of POLICY[:MODE]; modes async (default), sync, static; 'off' is "
                  "contiguous, 'static' is deepseek-global:static")
      ->capture_default_str();
  sub->add_option("--start", o->start,
                  "Where sync/async policies start: 'static' (deepseek-global on the first "
                  "window, like a profiled deployment) or 'off' (contiguous)")
      ->check(CLI::IsMember({"static", "off"}))
      ->capture_default_str();
  sub->add_option("--interval", o->cfg.interval, "Steps between gathers")->capture_default_str();
  sub->add_option("--window", o->cfg.window,
                  "Statistics window in steps, a whole number of intervals (the runtime's "
                  "LoadWindow)")
      ->capture_default_str();
  sub->add_option("--decay", o->cfg.decay,
                  "Decayed sum instead of a window, per interval: sum = decay * sum + interval "
                  "counts (0: window)")
      ->capture_default_str();
  sub->add_option("--layers-per-step", o->cfg.layers_per_step, "Layers committed per step (async)")
      ->capture_default_str();
  sub->add_option("--poll-steps", o->cfg.poll_steps,
                  "Async: the worker's result is picked up every this many steps")
      ->capture_default_str();
  sub->add_option("--policy-ms", o->policy_ms,
                  "Policy time per call in ms, or 'auto' for the measured wall time")
      ->capture_default_str();
  sub->add_option("--policy-steps", o->cfg.policy_steps,
                  "Async policy delay in steps (default: policy time / modelled step time)");
  sub->add_option("--threshold", o->cfg.options.threshold,
                  "Layers at or below this imbalance are left alone (swift)")
      ->capture_default_str();
  sub->add_option("--max-transfers", o->cfg.options.max_transfers,
                  "Transfer budget per rebalance (swift; negative: unlimited)")
      ->capture_default_str();
  sub->add_option("--groups", o->cfg.options.num_groups, "Expert groups (deepseek hierarchical)")
      ->capture_default_str();
  sub->add_option("--token-us", o->cfg.cost.token_us,
                  "Cost model: us per token-to-expert assignment on a rank")
      ->capture_default_str();
  sub->add_option("--layer-us", o->cfg.cost.layer_us, "Cost model: fixed us per layer per step")
      ->capture_default_str();
  sub->add_option("--expert-mb", o->cfg.cost.expert_mb, "Cost model: MB per expert moved")
      ->capture_default_str();
  sub->add_option("--intra-gbps", o->cfg.cost.intra_gbps, "Cost model: GB/s per rank in a node")
      ->capture_default_str();
  sub->add_option("--inter-gbps", o->cfg.cost.inter_gbps, "Cost model: GB/s per rank across nodes")
      ->capture_default_str();
  sub->add_option("--recover-window", o->cfg.recover_window,
                  "Recovery: steps averaged before the switch and after it")
      ->capture_default_str();
  sub->add_option("--recover-tol", o->cfg.recover_tol,
                  "Recovery: back within (1 + tol) x the imbalance before the switch")
      ->capture_default_str();
  sub->add_option("--json", o->json, "Write the results (summary, events, series) as JSON");
  sub->add_option("--plot", o->plot, "Write an SVG picture (imbalance over time, rank heatmaps)");
  sub->add_option("--title", o->title, "Title of the picture");
  return [o]() -> int {
    replay::ReplayConfig cfg = o->cfg;
    cfg.topo = Topology::make(o->ranks, o->slots, o->ranks_per_node);
    cfg.policies = replay::parse_policy_list(o->policies);
    cfg.start_static = o->start == "static";
    if (o->policy_ms == "auto") {
      cfg.policy_ms = -1.0;
    } else {
      try {
        std::size_t used = 0;
        cfg.policy_ms = std::stod(o->policy_ms, &used);
        if (used != o->policy_ms.size() || cfg.policy_ms < 0) throw std::invalid_argument("");
      } catch (const std::exception&) {
        throw InputError("--policy-ms must be 'auto' or a non-negative number, got '" +
                         o->policy_ms + "'");
      }
    }
    std::unique_ptr<replay::TraceSource> src;
    std::string what;
    if (!o->trace_file.empty()) {
      src = replay::open_npy_trace(o->trace_file);
      cfg.switch_at = o->trace.switch_at;  // where the user says the workload switches
      cfg.switch_blend = o->trace.blend;
      what = o->trace_file;
    } else {
      replay::TraceSpec spec = o->trace.make_spec();
      cfg.switch_at = spec.switch_at;
      cfg.switch_blend = spec.blend;
      what = "generated trace (seed " + std::to_string(spec.seed) + ", " +
             std::to_string(spec.bases.size()) + " workloads)";
      src = replay::generated_trace(std::move(spec));
    }
    replay::ProgressBar bar("replay");
    cfg.progress = [&bar](std::int64_t done, std::int64_t total) { bar.update(done, total); };
    replay::ReplayResult r = replay::run_replay(*src, std::move(cfg));
    bar.finish();
    r.config.progress = nullptr;
    std::printf(
        "replay of %s: %lld steps x %d layers x %d experts on %d ranks x %d slots "
        "(%d nodes); interval %d, %s, %d layer(s)/step, start %s\n",
        what.c_str(), static_cast<long long>(r.steps), r.layers, r.experts, r.config.topo.ranks,
        r.config.topo.slots_per_rank, r.config.topo.nodes(), r.config.interval,
        r.config.decay > 0 ? ("decay " + std::to_string(r.config.decay)).c_str()
                           : ("window " + std::to_string(r.config.window)).c_str(),
        r.config.layers_per_step, o->start.c_str());
    std::fputs(replay::format_table(r).c_str(), stdout);
    std::printf(
        "(imbalance: per step, mean over layers of max/mean rank load; step ms: modelled; "
        "stall: sync stops + exposed async transfer; %.2f s wall, %.1f MB trace memory)\n",
        r.wall_s, static_cast<double>(r.peak_window_bytes) / 1e6);
    if (!o->json.empty()) {
      std::ofstream f(o->json);
      if (!f) throw InputError(o->json + ": cannot open for writing");
      f << replay::to_json_text(r) << "\n";
      if (!f) throw InputError(o->json + ": write failed");
    }
    if (!o->plot.empty()) {
      const std::string title =
          o->title.empty()
              ? "Replay: " + std::to_string(r.config.topo.ranks) + " ranks x " +
                    std::to_string(r.config.topo.slots_per_rank) + " slots, " +
                    std::to_string(r.layers) + " layers x " + std::to_string(r.experts) +
                    " experts, " + std::to_string(r.steps) + " steps"
              : o->title;
      replay::write_replay_svg(o->plot, r, title);
    }
    return 0;
  };
}

}  // namespace swiftbalancer::cli
