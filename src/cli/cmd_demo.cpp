// `swiftbalancer demo`: R ranks serve a small MoE model through the balancer while tokens are
// routed with a skewed, drifting distribution; every token's output is verified. Runs one or
// more modes (e.g. --mode async,sync) one after the other, prints a summary per mode and writes
// an optional JSON report. Exit code 1 when any token's output mismatches. The figures and the
// report's runs come from demo/demo_report.h; the options are in cli/demo_options.cpp; this
// file runs the modes and prints.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/demo_device.h"
#include "cli/demo_metrics.h"
#include "cli/demo_options.h"
#include "cli/option_checks.h"
#include "cli/progress.h"
#include "cli/table_util.h"
#include "swiftbalancer/core/resource.h"
#include "swiftbalancer/core/status.h"
#include "swiftbalancer/demo/demo_engine.h"
#include "swiftbalancer/demo/demo_report.h"
#include "swiftbalancer/demo/expert_mlp.h"
#include "swiftbalancer/io/load_io.h"
#include "swiftbalancer/transport/mpi_transport.h"

namespace swiftbalancer::cli {
namespace {

void print_switches(const DemoOptions& opt, const DemoSummary& s) {
  for (const DemoSummary::Switch& f : s.switches) {
    std::printf("  switch at step %d: imbalance %.3f over the %d steps before, peak %.3f after; ",
                f.step, f.before, opt.recover_window, f.peak);
    if (f.recover >= 0)
      std::printf("recovered in %lld steps", static_cast<long long>(f.recover));
    else
      std::printf("not recovered within the run");
    std::printf(" (%d-step mean within %.0f%% of before)\n    %d-step means from the switch:",
                opt.recover_window, opt.recover_tol * 100.0, opt.recover_window);
    for (double m : f.means) std::printf(" %.3f", m);
    std::printf("\n");
  }
}

void print_summary(const DemoArgs& a, const DemoResult& r, const DemoSummary& s) {
  const auto& c = r.counters;
  std::printf("mode %-5s  %zu steps in %.1f s; %lld token outputs verified, %lld mismatches\n",
              r.mode.c_str(), r.steps.size(), r.seconds, static_cast<long long>(r.verified),
              static_cast<long long>(r.mismatches));
  if (s.first_rebalance_step > 0)
    std::printf(
        "  imbalance (max/mean rank tokens): first interval %.3f -> after first rebalance (step "
        "%d) %.3f, last interval %.3f\n",
        s.imbalance_initial, s.first_rebalance_step, s.imbalance_after, s.imbalance_last);
  else
    std::printf(
        "  imbalance (max/mean rank tokens): first interval %.3f, last interval %.3f (no "
        "rebalance)\n",
        s.imbalance_initial, s.imbalance_last);
  print_switches(a.opt, s);
  std::printf(
      "  rebalances %lld (layers committed %lld, failed %lld), cycles dropped %lld, errors %lld, "
      "%.2f MB moved\n",
      static_cast<long long>(c.rebalances), static_cast<long long>(c.layers_committed),
      static_cast<long long>(c.layers_failed), static_cast<long long>(c.cycles_dropped),
      static_cast<long long>(c.errors), static_cast<double>(s.bytes) / 1e6);
  if (a.opt.balancer.shift.check_steps > 0)
    std::printf(
        "  shift detection: %lld checks, %lld early cycles, %lld cycles pre-empted (%lld layers "
        "left on the old placement)\n",
        static_cast<long long>(c.shift_checks), static_cast<long long>(c.shift_triggers),
        static_cast<long long>(c.shift_preemptions),
        static_cast<long long>(c.shift_layers_preempted));
  std::printf(
      "  balancer on the serving thread per step (all ranks): p50 %.1f us, p99 %.1f us, max %.1f "
      "us\n"
      "    reported apart: weight copies p99 %.1f us, max %.1f us (p99 with copies %.1f us); "
      "transfer/collective waits p99 %.1f us, max %.1f us\n",
      s.balancer_p50_us, s.balancer_p99_us, s.balancer_max_us, s.copy_p99_us, s.copy_max_us,
      s.with_copy_p99_us, s.wait_p99_us, s.wait_max_us);
  std::printf(
      "  step time: median %.2f ms, p99 %.2f ms (%.2fx), max %.2f ms (%.2fx); slowest step with "
      "balancer work %.2f ms (%.2fx)\n",
      s.step_median_ms, s.step_p99_ms, s.step_p99_ms / s.step_median_ms, s.step_max_ms,
      s.step_max_ms / s.step_median_ms, s.balancer_action_max_ms,
      s.balancer_action_max_ms / s.step_median_ms);
  if (s.commit_max_step > 0)
    std::printf(
        "  slowest step that moved weights: step %d, %.2f ms (%.2fx median, +%.2f ms); %.3f MB "
        "moved in it, %.3f GB/s over its extra time\n",
        s.commit_max_step, s.commit_max_ms, s.commit_max_ms / s.step_median_ms,
        s.commit_max_ms - s.step_median_ms, static_cast<double>(s.commit_max_bytes) / 1e6,
        demo_transfer_gbps(s));
  // The pool's regions (staging_regions()): one more than the most layers one step posts.
  const char* regions =
      a.opt.balancer.shift.check_steps > 0 && a.opt.balancer.shift.layers_per_step > 0
          ? "(max(layers_per_step, shift_layers_per_step) + 1)"
          : "(layers_per_step + 1)";
  if (r.staging_bound_bytes > 0)
    std::printf(
        "  staging per rank: peak %.3f MB (bound %s x slots x expert: %.3f MB), parked %.3f MB\n",
        static_cast<double>(r.peak_staging_bytes) / 1e6, regions,
        static_cast<double>(r.staging_bound_bytes) / 1e6,
        static_cast<double>(c.parked_staging_bytes) / 1e6);
  if (r.rss_end_kb > 0)
    std::printf("  resident memory: %.1f MB after warm-up (step %zu), %.1f MB at the end\n",
                static_cast<double>(r.rss_warm_kb) / 1024.0,
                std::max<std::size_t>(1, r.steps.size() / 5),
                static_cast<double>(r.rss_end_kb) / 1024.0);
  if (!c.last_error.empty() && !a.quiet) std::printf("  last error: %s\n", c.last_error.c_str());
}

std::vector<std::string> split_modes(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    parse_balancer_mode(item);  // validates
    out.push_back(item);
  }
  if (out.empty()) throw InputError("--mode needs at least one of async, sync, off");
  return out;
}

// The model's layers take evenly spaced layers of the trace that carry load.
void use_trace(const std::string& path, DemoOptions& opt) {
  LoadMatrix full = read_load(path);
  std::vector<int> loaded;
  for (int l = 0; l < full.layers(); ++l)
    if (full.layer_has_load(l)) loaded.push_back(l);
  if (loaded.empty()) throw InputError("trace " + path + " has no load");
  const int L = std::min<int>(opt.workload.layers, static_cast<int>(loaded.size()));
  LoadMatrix m(L, full.experts());
  for (int l = 0; l < L; ++l) {
    const int src = loaded[static_cast<std::size_t>(l) * loaded.size() / L];
    std::copy(full.row(src).begin(), full.row(src).end(), m.row(l).begin());
  }
  opt.workload.layers = L;
  opt.workload.experts = full.experts();
  opt.workload.trace = std::move(m);
}

// --switch-at: given in any order (repeated or comma-separated), kept sorted; each step must be
// inside the run and given once (the workload checks the rest).
void check_switches(DemoOptions& opt) {
  auto& sw = opt.workload.switch_at;
  std::sort(sw.begin(), sw.end());
  for (std::size_t j = 0; j < sw.size(); ++j) {
    if (j > 0 && sw[j] == sw[j - 1])
      throw InputError("--switch-at: step " + std::to_string(sw[j]) + " given twice");
    if (sw[j] > opt.steps)
      throw InputError("--switch-at: step " + std::to_string(sw[j]) + " is past the last step (" +
                       "--steps " + std::to_string(opt.steps) + ")");
  }
  if (sw.size() > static_cast<std::size_t>(Workload::kMaxSwitches))
    throw InputError("--switch-at: at most " + std::to_string(Workload::kMaxSwitches) +
                     " switches");
}

// The balancer's fault injection, timeouts, worker polling and log sink from the command line.
void configure_balancer(const DemoArgs& a, FaultInjection::Kind fault, DemoOptions& opt) {
  opt.balancer.fault.kind = fault;
  opt.balancer.fault.rank = a.fault_rank >= 0 ? a.fault_rank : opt.ranks - 1;
  opt.balancer.fault.cycle = a.fault_cycle;
  if (opt.balancer.fault.rank >= opt.ranks) throw InputError("--fault-rank out of range");
  opt.balancer.transfer_timeout = Millis(a.transfer_timeout_ms);
  opt.balancer.worker_timeout = Millis(a.worker_timeout_ms);
  if (a.worker_poll_ms >= a.worker_timeout_ms)
    throw InputError("--worker-poll-ms must be less than --worker-timeout-ms");
  opt.balancer.worker_poll = Millis(a.worker_poll_ms);
  const bool quiet = a.quiet, verbose = a.verbose;
  opt.balancer.log = [quiet, verbose](LogSeverity severity, const std::string& line) {
    if (quiet || (!verbose && severity == LogSeverity::kInfo)) return;
    std::fprintf(stderr, "  [balancer] %s\n", line.c_str());
  };
}

void print_demo_header(const DemoArgs& a, const DemoOptions& opt) {
  std::string load = a.trace.empty() ? "built-in skewed drifting load" : a.trace;
  if (!opt.workload.switch_at.empty()) {
    load += ", switching at step";
    for (std::size_t j = 0; j < opt.workload.switch_at.size(); ++j)
      load += (j ? "," : " ") + std::to_string(opt.workload.switch_at[j]);
  }
  if (opt.balancer.shift.check_steps > 0)
    load += ", shift check every " + std::to_string(opt.balancer.shift.check_steps) + " steps";
  std::string link_desc = "weight link unthrottled";
  if (opt.link_gbps > 0) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "weight link %.3g Gbit/s (%.3g MB/s) per rank and direction",
                  opt.link_gbps, opt.link_gbps * 1e3 / 8.0);
    link_desc = buf;
  }
  std::printf(
      "demo: %d ranks (%s) x %d slots, %d layers x %d experts (top-%d, %s), hidden %d, "
      "ffn %d, %d tokens/rank/step, policy %s, interval %d, fault %s, %s\n",
      opt.ranks, a.transport.c_str(), opt.slots_per_rank, opt.workload.layers, opt.workload.experts,
      opt.workload.topk, load.c_str(), opt.mlp.hidden, opt.mlp.ffn, opt.workload.tokens_per_rank,
      opt.policy.c_str(), opt.balancer.interval_steps, a.fault.c_str(), link_desc.c_str());
}

// Real figures, unclipped: the slowest step of the whole run, and the slowest step that moved
// weights (for sync, the stop-the-world rebalance step), each against the median.
void print_comparison(const std::vector<std::pair<DemoResult, DemoSummary>>& done) {
  std::printf("comparison:");
  for (const auto& [r, s] : done) {
    std::printf("  %s slowest step %.2f ms = %.2fx median %.2f ms", r.mode.c_str(), s.step_max_ms,
                s.step_max_ms / s.step_median_ms, s.step_median_ms);
    if (s.commit_max_step > 0)
      std::printf(", rebalance step %.2f ms = %.2fx (stall %+.2f ms)", s.commit_max_ms,
                  s.commit_max_ms / s.step_median_ms, s.commit_max_ms - s.step_median_ms);
    std::printf(";");
  }
  std::printf("\n");
  // The step-time cost of moving during the forward (async) against stop-the-world (sync).
  const DemoSummary *as = nullptr, *sy = nullptr;
  for (const auto& [r, s] : done) {
    if (r.mode == "async") as = &s;
    if (r.mode == "sync") sy = &s;
  }
  // The recovery figure of every switch, mode by mode.
  if (!done.front().second.switches.empty()) {
    std::printf("  recovery after each switch (steps; -1: not within the run):");
    for (const auto& [r, s] : done) {
      std::printf("  %s", r.mode.c_str());
      for (const DemoSummary::Switch& f : s.switches)
        std::printf(" %lld", static_cast<long long>(f.recover));
      std::printf(";");
    }
    std::printf("\n");
  }
  if (as && sy && as->commit_max_step > 0 && sy->commit_max_step > 0)
    std::printf("  async's rebalance step costs %+.2f ms = %.2f of sync's stall %+.2f ms\n",
                as->commit_max_ms - as->step_median_ms,
                (as->commit_max_ms - as->step_median_ms) / (sy->commit_max_ms - sy->step_median_ms),
                sy->commit_max_ms - sy->step_median_ms);
}

nlohmann::json demo_report_json(const DemoArgs& a, const DemoOptions& opt, nlohmann::json runs) {
  return {{"ranks", opt.ranks},
          {"transport", a.transport},
          {"layers", opt.workload.layers},
          {"experts", opt.workload.experts},
          {"slots_per_rank", opt.slots_per_rank},
          {"tokens_per_rank", opt.workload.tokens_per_rank},
          {"topk", opt.workload.topk},
          {"hidden", opt.mlp.hidden},
          {"ffn", opt.mlp.ffn},
          {"steps", opt.steps},
          {"policy", opt.policy},
          {"interval", opt.balancer.interval_steps},
          {"link_gbps", opt.link_gbps},
          {"fault", a.fault},
          {"trace", a.trace},
          {"switch_at", opt.workload.switch_at},
          {"recover_window", opt.recover_window},
          {"recover_tol", opt.recover_tol},
          {"shift_check", opt.balancer.shift.check_steps},
          {"shift_layers_per_step", opt.balancer.shift.layers_per_step},
          {"runs", std::move(runs)}};
}

// Where this process's ranks come from: threads here, or the MPI job it belongs to.
struct DemoTransport {
  std::unique_ptr<MpiSession> mpi;
  std::unique_ptr<Transport> transport;
  std::unique_ptr<CanonicalExperts> canonical;
  int my_rank = 0;
};

// Rank 0 prints a failure every rank shares, as main() would ("error: ..."), the others say
// nothing; returns `code`.
int report_on_rank0(int rank, const char* what, int code) {
  if (rank == 0) std::fprintf(stderr, "error: %s\n", what);
  return code;
}

// The demo's memory, estimated from the options before anything is allocated (docs/runtime.md
// "The demo"): the canonical experts every process holds, each in-process rank's slots and
// staging (at most as many regions as slots, counted as a second copy), and the token buffers
// of dispatch and combine. Refused above kMaxDemoBytes, naming the figures.
constexpr std::int64_t kMaxDemoBytes = std::int64_t{2} << 30;  // 2 GiB

void check_demo_memory(const DemoOptions& opt, int ranks_here) {
  std::int64_t expert = 0;
  for (std::size_t b : expert_tensor_bytes(opt.mlp)) expert += static_cast<std::int64_t>(b);
  const std::int64_t layers = opt.workload.layers;
  const std::int64_t weights =
      expert * layers * (opt.workload.experts + std::int64_t{2} * ranks_here * opt.slots_per_rank);
  const std::int64_t tokens = std::int64_t{4} * ranks_here * opt.workload.tokens_per_rank *
                              opt.workload.topk * opt.mlp.hidden *
                              static_cast<std::int64_t>(sizeof(float));
  if (weights + tokens > kMaxDemoBytes)
    throw InputError("demo needs about " + byte_size_text(weights + tokens) + " (expert weights " +
                     byte_size_text(weights) + ": " + std::to_string(layers) + " layers x (" +
                     std::to_string(opt.workload.experts) + " canonical experts + 2 x " +
                     std::to_string(ranks_here) + " ranks x " + std::to_string(opt.slots_per_rank) +
                     " slots) x " + byte_size_text(expert) + " per expert; token buffers " +
                     byte_size_text(tokens) + "), above the limit of " +
                     byte_size_text(kMaxDemoBytes) +
                     "; lower --hidden, --ffn, --layers, --experts, --slots or --tokens");
}

int run_demo(DemoArgs& a) {
  // Cheap checks first: modes, fault, transport, and the paths, before MPI or any work.
  const auto modes = split_modes(a.modes);
  const FaultInjection::Kind fault = parse_fault_kind(a.fault);
  if (a.transport != "inprocess" && a.transport != "mpi")
    throw InputError("--transport must be inprocess or mpi");
  if (a.metrics_port >= 0 && a.transport != "inprocess")
    throw InputError("--metrics-port serves in-process ranks only (--transport inprocess)");
  check_demo_device(a.device, a.transport);
  check_inputs({{"--trace", a.trace}});
  check_outputs({{"--report", a.report}});
  DemoOptions& opt = a.opt;

  DemoTransport t;
  if (a.transport == "mpi") {
    t.mpi = std::make_unique<MpiSession>(nullptr, nullptr);
    opt.ranks = t.mpi->size();
    t.my_rank = t.mpi->rank();
    t.transport = t.mpi->transport();
    if (a.device == "cuda") {
      // Every rank throws or none does (prepare_demo_cuda_mpi agrees over MPI).
      int code = 0;
      try {
        prepare_demo_cuda_mpi(*t.transport, opt.dispatch_timeout);
      } catch (const InputError& e) {
        code = report_on_rank0(t.my_rank, e.what(), 2);
      } catch (const std::exception& e) {
        code = report_on_rank0(t.my_rank, e.what(), 1);
      }
      if (code != 0) {
        // mpirun ends the job as soon as one process exits non-zero: no rank may leave before
        // rank 0 has printed the reason, so they all wait for it here (bounded), then exit
        // with the same code; t's destructor finalises MPI.
        std::vector<std::int64_t> printed = {1};
        (void)t.transport->all_reduce(printed, ReduceOp::kSum, opt.dispatch_timeout);
        return code;
      }
    }
  }
  if (!a.trace.empty()) use_trace(a.trace, opt);
  if (opt.steps < 1) throw InputError("--steps must be positive");
  check_switches(opt);
  if (a.device == "cuda" && !a.link_given) opt.link_gbps = 0;  // real device copies
  configure_balancer(a, fault, opt);
  check_demo_memory(opt, t.mpi ? 1 : opt.ranks);
  if (t.mpi)
    t.canonical = std::make_unique<CanonicalExperts>(opt.mlp, opt.workload.layers,
                                                     opt.workload.experts, opt.workload.seed);
  if (t.my_rank == 0) print_demo_header(a, opt);
  // Serves the live balancers' counters until run_demo returns.
  const auto metrics =
      a.metrics_port >= 0 ? std::make_unique<DemoMetrics>(a.metrics_port, opt) : nullptr;

  nlohmann::json runs = nlohmann::json::array();
  std::int64_t mismatches = 0;
  std::vector<std::pair<DemoResult, DemoSummary>> done;
  StatusLine status("demo");  // issue 21: the mode being served, on a terminal only
  for (const std::string& m : modes) {
    opt.balancer.mode = parse_balancer_mode(m);
    if (t.my_rank == 0)
      status.show("serving mode " + m + ", " + std::to_string(opt.steps) + " steps");
    DemoResult r = t.mpi ? (a.device == "cuda" ? run_demo_cuda_mpi(opt, *t.transport, *t.canonical)
                                               : run_demo_rank(opt, *t.transport, *t.canonical))
                   : a.device == "cuda" ? run_demo_cuda_inprocess(opt)
                                        : run_demo_inprocess(opt);
    status.finish();
    const DemoSummary s = summarize_demo(r, opt);
    mismatches += r.mismatches;
    if (t.my_rank == 0) {
      print_summary(a, r, s);
      std::fflush(stdout);
    }
    runs.push_back(demo_run_json(r, s));
    done.emplace_back(std::move(r), s);
  }
  if (t.my_rank == 0 && done.size() > 1) print_comparison(done);
  if (t.my_rank == 0 && !a.report.empty())
    write_json_file(a.report, demo_report_json(a, opt, std::move(runs)), 1);
  if (mismatches > 0) {
    if (t.my_rank == 0)
      std::fprintf(stderr, "error: %lld token outputs mismatched\n",
                   static_cast<long long>(mismatches));
    return 1;
  }
  return 0;
}

}  // namespace

CommandRunner add_demo_command(CLI::App& app) {
  auto a = std::make_shared<DemoArgs>();
  // The demo's defaults (docs/runtime.md): steps long enough that OS scheduling noise on a small
  // machine stays well below the 1.5x budget, and a link scaled down with the experts.
  a->opt.workload.tokens_per_rank = kDefaultTokens;
  a->opt.link_gbps = kDefaultLinkGbps;
  auto* cmd = app.add_subcommand(
      "demo", "Serve a small MoE model over R ranks with the asynchronous balancer");
  cmd->add_option("--mode", a->modes, "Comma-separated modes to run in turn: async, sync, off")
      ->capture_default_str();
  cmd->add_option("--transport", a->transport,
                  "inprocess (ranks are threads) or mpi (under mpirun)")
      ->capture_default_str();
  cmd->add_option("--device", a->device,
                  "cpu, or cuda: experts and their MLP on the GPU (in-process ranks share GPU 0; "
                  "under mpirun with --transport mpi, one GPU per process and NCCL for the "
                  "weights); no emulated link unless --link-gbps is given")
      ->capture_default_str();
  cmd->add_option("--steps", a->opt.steps, "Steps per mode")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000000));
  add_model_options(cmd, a->opt);
  add_balancer_options(cmd, *a);
  cmd->add_option("--trace", a->trace, "Real load file (json/csv/npy) as the base distribution");
  cmd->add_option("--report", a->report, "Write a JSON report here");
  cmd->add_option("--metrics-port", a->metrics_port,
                  "Serve Prometheus metrics on http://127.0.0.1:PORT/metrics while running (0: "
                  "pick a free port and print it)")
      ->check(CLI::Range(0, 65535));
  cmd->add_flag("--quiet", a->quiet, "No balancer log lines");
  cmd->add_flag("--verbose", a->verbose,
                "Every balancer log line (agreements, commits), not only errors");
  return [a, cmd]() -> int {
    a->link_given = cmd->count("--link-gbps") > 0;
    return run_demo(*a);
  };
}

}  // namespace swiftbalancer::cli
