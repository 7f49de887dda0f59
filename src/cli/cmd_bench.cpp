// swiftbalancer bench: policies compared on the shared DeepSeek-V3 traces. For each row (a
// topology and a transition A -> B), the current placement is deepseek-global on workload A;
// every policy then rebalances for workload B. Prints imbalance (mean and max over layers),
// cross-rank transfers, median time over --repeats runs, and the transfer plan's median time
// and makespan against its lower bound; then the swift budget curve; then each policy judged on
// the future: decided on a window of --future-steps sampled steps of B (replay's sampler, 4096
// tokens x top-8 per step) and judged on that window and on the next --future-steps steps.
// Without the traces it says "skipped" and exits 0.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/progress.h"
#include "cli/table_util.h"
#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/io/load_io.h"
#include "swiftbalancer/plan/transfer_plan.h"
#include "swiftbalancer/policy/policy.h"
#include "swiftbalancer/replay/trace.h"

#ifndef SWIFTBALANCER_TRACES_DIR
#define SWIFTBALANCER_TRACES_DIR "../shared/traces"
#endif

namespace swiftbalancer::cli {
namespace {

struct BenchRow {
  int ranks, slots, nodes;
  std::string from, to;
};

// The rows of ANCHORS.md.
const std::vector<BenchRow>& anchor_rows() {
  static const std::vector<BenchRow> rows = {
      {32, 9, 4, "prefill_in1024", "decode_in1000out1000"},
      {64, 5, 8, "decode_in2000out100", "prefill_in2048"},
      {16, 17, 2, "prefill_in4096", "decode_in500out1500"},
  };
  return rows;
}

struct BenchArgs {
  std::string traces = SWIFTBALANCER_TRACES_DIR;
  int ranks = 0, slots = 0, nodes = 0, groups = 8, repeats = 5;
  std::string from, to;
  std::vector<std::int64_t> budgets = {250, 500, 1000, 2000, -1};
  std::int64_t future_steps = 100;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Median wall time in milliseconds of `repeats` calls; `fn` is called once more first (warm-up
// and the result kept by the caller).
double median_ms(int repeats, const std::function<void()>& fn) {
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    const auto a = std::chrono::steady_clock::now();
    fn();
    t.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  return median(std::move(t));
}

struct Measured {
  BalanceSummary balance;
  std::int64_t transfers = 0;
  double policy_ms = 0.0, plan_ms = 0.0, makespan = 0.0, bound = 0.0;
};

Measured measure(const Policy& policy, const PolicyInput& in, const Placement& cur, int repeats) {
  Measured m;
  Placement out = policy.rebalance(in);
  m.policy_ms = median_ms(repeats, [&] { out = policy.rebalance(in); });
  m.balance = balance_summary(out, in.load, in.topology);
  m.transfers = transfer_summary(cur, out, in.topology).total;
  TransferPlan plan = make_transfer_plan(cur, out, in.topology);
  m.plan_ms = median_ms(repeats, [&] { plan = make_transfer_plan(cur, out, in.topology); });
  for (const LayerPlan& lp : plan.layers) {
    m.makespan += lp.makespan;
    m.bound += lp.lower_bound;
  }
  return m;
}

std::string ratio(double makespan, double bound) {
  return bound > 0.0 ? fmt_fixed(makespan / bound, 3) : "-";
}

std::string budget_name(std::int64_t k) {
  return k < 0 ? "unlimited" : std::to_string(k);
}

// Window, then future: two consecutive stretches of `steps` steps sampled from B.
std::pair<LoadMatrix, LoadMatrix> sampled_window_and_future(const LoadMatrix& b,
                                                            std::int64_t steps) {
  replay::TraceSpec spec;
  spec.steps = 2 * steps;
  spec.tokens = 4096;
  spec.top_k = 8;
  spec.seed = 1;
  spec.bases = {b};
  replay::TraceGenerator gen(std::move(spec));
  LoadMatrix window(b.layers(), b.experts()), future(b.layers(), b.experts());
  std::vector<std::int64_t> step(b.data().size());
  for (std::int64_t t = 0; t < 2 * steps; ++t) {
    gen.next(step);
    LoadMatrix& into = t < steps ? window : future;
    for (int l = 0; l < b.layers(); ++l) {
      auto row = into.row(l);
      const std::int64_t* in = step.data() + static_cast<std::size_t>(l) * b.experts();
      for (int e = 0; e < b.experts(); ++e) row[e] += static_cast<double>(in[e]);
    }
  }
  return {std::move(window), std::move(future)};
}

void judge_on_future(StatusLine& status, const BenchArgs& a, const Topology& topo,
                     const Placement& cur, const LoadMatrix& load_b) {
  const auto [window, future] = sampled_window_and_future(load_b, a.future_steps);
  status.finish();
  std::printf(
      "judged on the future: decided on %lld sampled steps of B, judged on them (window) and on "
      "the next %lld (future)\n",
      static_cast<long long>(a.future_steps), static_cast<long long>(a.future_steps));
  Table f({"policy", "window", "future", "future - window", "transfers"});
  const BalanceSummary stale = balance_summary(cur, future, topo);
  f.add_row({"stale (no rebalance)", fmt_fixed(balance_summary(cur, window, topo).mean_imbalance),
             fmt_fixed(stale.mean_imbalance), "-", "0"});
  auto judged = [&](const std::string& label, const char* name, std::int64_t budget) {
    status.show("judging " + label + " on the future");
    PolicyInput in{topo, window, &cur};
    in.options.num_groups = a.groups;
    in.options.max_transfers = budget;
    const Placement p = make_policy(name)->rebalance(in);
    const double w = balance_summary(p, window, topo).mean_imbalance;
    const double fu = balance_summary(p, future, topo).mean_imbalance;
    f.add_row({label, fmt_fixed(w), fmt_fixed(fu), fmt_fixed(fu - w),
               std::to_string(transfer_summary(cur, p, topo).total)});
  };
  judged("deepseek-global", "deepseek-global", -1);
  judged("vllm-ascend-swap", "vllm-ascend-swap", -1);
  judged("swift", "swift", -1);
  judged("swift, K = 1000", "swift", 1000);
  status.finish();
  f.print();
}

void run_row(const BenchArgs& a, const BenchRow& row) {
  const std::string dir = a.traces + "/deepseek_v3r1/";
  const LoadMatrix load_a = read_load(dir + row.from + ".json");
  const LoadMatrix load_b = read_load(dir + row.to + ".json");
  const Topology topo = Topology::make(row.ranks, row.slots, row.ranks / row.nodes);
  PolicyInput seed{topo, load_a};
  const Placement cur = make_policy("deepseek-global")->rebalance(seed);
  const BalanceSummary stale = balance_summary(cur, load_b, topo);

  std::printf(
      "\n%d ranks x %d slots (%d nodes), %s -> %s, current = deepseek-global on %s; "
      "median of %d runs\n",
      row.ranks, row.slots, row.nodes, row.from.c_str(), row.to.c_str(), row.from.c_str(),
      a.repeats);
  Table t({"policy", "imbalance", "max", "transfers", "% slots", "time", "plan time",
           "makespan/bound"});
  // Percent of all slots of all layers (the from-scratch policies also reshuffle layers
  // without load, so their transfers count there too).
  const double all_slots = static_cast<double>(topo.num_slots()) * load_b.layers();
  t.add_row({"stale (no rebalance)", fmt_fixed(stale.mean_imbalance),
             fmt_fixed(stale.max_imbalance), "0", "0.0", "-", "-", "-"});
  std::vector<std::string> notes;
  std::int64_t vllm_transfers = -1;
  StatusLine status("bench " + std::to_string(row.ranks) + "x" + std::to_string(row.slots) + " " +
                    row.from + " -> " + row.to);
  auto add_policy_row = [&](const std::string& label, const char* name, std::int64_t budget) {
    status.show(label);
    PolicyInput in{topo, load_b, &cur};
    in.options.num_groups = a.groups;
    in.options.max_transfers = budget;
    try {
      const Measured m = measure(*make_policy(name), in, cur, a.repeats);
      t.add_row({label, fmt_fixed(m.balance.mean_imbalance), fmt_fixed(m.balance.max_imbalance),
                 std::to_string(m.transfers), fmt_fixed(100.0 * m.transfers / all_slots, 1),
                 fmt_ms(m.policy_ms), fmt_ms(m.plan_ms), ratio(m.makespan, m.bound)});
      if (label == "vllm-ascend-swap") vllm_transfers = m.transfers;
    } catch (const InputError& e) {
      t.add_row({label, "n/a", "-", "-", "-", "-", "-", "-"});
      notes.push_back(label + ": " + e.what());
    }
  };
  for (const char* name : {"deepseek-global", "deepseek-hierarchical", "vllm-ascend-swap", "swift"})
    add_policy_row(name, name, -1);
  // The claim against the swap baseline: as balanced or better with half its transfers.
  if (vllm_transfers >= 0) add_policy_row("swift, half vllm budget", "swift", vllm_transfers / 2);
  status.finish();
  t.print();
  for (const std::string& n : notes) std::printf("  (n/a) %s\n", n.c_str());

  std::printf("swift budget curve (--max-transfers for the whole model)\n");
  Table c({"budget", "imbalance", "max", "transfers", "time", "plan time", "makespan/bound"});
  const auto swift = make_policy("swift");
  for (std::int64_t k : a.budgets) {
    status.show("swift budget " + budget_name(k));
    PolicyInput in{topo, load_b, &cur};
    in.options.max_transfers = k;
    const Measured m = measure(*swift, in, cur, a.repeats);
    c.add_row({budget_name(k), fmt_fixed(m.balance.mean_imbalance),
               fmt_fixed(m.balance.max_imbalance), std::to_string(m.transfers), fmt_ms(m.policy_ms),
               fmt_ms(m.plan_ms), ratio(m.makespan, m.bound)});
  }
  status.finish();
  c.print();
  if (a.future_steps > 0) {
    status.show("policies judged on " + std::to_string(a.future_steps) + " future steps");
    judge_on_future(status, a, topo, cur, load_b);
  }
}

}  // namespace

CommandRunner add_bench_command(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Compare policies (imbalance, transfers, time) on the shared DeepSeek-V3 traces");
  cmd->add_option("--traces", args->traces, "Folder holding deepseek_v3r1/ (default: build's)");
  cmd->add_option("--ranks", args->ranks, "Ranks of a single custom row (with --slots, --nodes)")
      ->check(CLI::Range(1, std::numeric_limits<int>::max()));
  cmd->add_option("--slots-per-rank,--slots", args->slots, "Slots per rank of the custom row")
      ->check(CLI::Range(1, std::numeric_limits<int>::max()));
  cmd->add_option("--nodes", args->nodes, "Nodes of the custom row")
      ->check(CLI::Range(1, std::numeric_limits<int>::max()));
  cmd->add_option("--from", args->from, "Workload A of the custom row (e.g. prefill_in1024)");
  cmd->add_option("--to", args->to, "Workload B of the custom row (e.g. decode_in1000out1000)");
  cmd->add_option("--groups", args->groups, "Expert groups for deepseek-hierarchical")
      ->capture_default_str()
      ->check(CLI::Range(0, std::numeric_limits<int>::max()));
  cmd->add_option("--repeats", args->repeats, "Timed runs per measurement (median reported)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd->add_option("--budgets", args->budgets,
                  "Budgets of the swift curve; -1 means unlimited (default 250 500 1000 2000 -1)")
      ->check(CLI::Range(std::int64_t{-1}, std::numeric_limits<std::int64_t>::max()));
  cmd->add_option("--future-steps", args->future_steps,
                  "Steps of the sampled window and of the future it is judged on (0: no such "
                  "table)")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 20));
  return [args]() -> int {
    const BenchArgs& a = *args;
    const std::filesystem::path dir = std::filesystem::path(a.traces) / "deepseek_v3r1";
    if (!std::filesystem::is_directory(dir)) {
      std::printf("skipped: no DeepSeek-V3 traces under %s (use --traces DIR)\n",
                  dir.string().c_str());
      return 0;
    }
    const bool custom =
        a.ranks > 0 || a.slots > 0 || a.nodes > 0 || !a.from.empty() || !a.to.empty();
    std::vector<BenchRow> rows;
    if (custom) {
      BenchRow r = anchor_rows()[0];
      if (a.ranks > 0) r.ranks = a.ranks;
      if (a.slots > 0) r.slots = a.slots;
      if (a.nodes > 0) r.nodes = a.nodes;
      if (!a.from.empty()) r.from = a.from;
      if (!a.to.empty()) r.to = a.to;
      if (r.ranks % r.nodes != 0)
        throw InputError("ranks (" + std::to_string(r.ranks) + ") must be divisible by nodes (" +
                         std::to_string(r.nodes) + ")");
      rows.push_back(r);
    } else {
      rows = anchor_rows();
    }
    for (const BenchRow& r : rows) {
      for (const std::string& w : {r.from, r.to})
        if (!std::filesystem::exists(dir / (w + ".json")))
          throw InputError("no trace " + (dir / (w + ".json")).string());
      run_row(a, r);
    }
    return 0;
  };
}

}  // namespace swiftbalancer::cli
