// swiftbalancer plan: a balanced static placement from a recorded expert load ("static EPLB").
// Reads the load (and optionally the placement in service), runs one policy, prints the
// before/after table, and writes the placement, a JSON report and the transfer plan on request.
// Bad input throws InputError (exit code 2 in main).
#include <chrono>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <string>

#include "cli/commands.h"
#include "cli/option_checks.h"
#include "cli/progress.h"
#include "cli/table_util.h"
#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/core/resource.h"
#include "swiftbalancer/io/atomic_file.h"
#include "swiftbalancer/io/example_load.h"
#include "swiftbalancer/io/load_io.h"
#include "swiftbalancer/io/placement_io.h"
#include "swiftbalancer/plan/transfer_plan.h"
#include "swiftbalancer/policy/policy.h"

namespace swiftbalancer::cli {
namespace {

constexpr int kExampleRanks = 32, kExampleSlots = 9, kExampleRanksPerNode = 4;
constexpr const char* kDefaultPolicy = "deepseek-global";
// plan's own topology limits, below the library's (core/limits.h): every policy's time grows
// faster than linearly in the ranks and slots of a layer (deepseek's packing is O(slots x ranks
// x slots per rank) per layer; swift's search grows with the ranks), and linearly in the layers.
// Within them the slowest case measured (swift at 400 x 9) took 23 s here; docs/runtime.md has
// the measurements. Beyond them a run took minutes.
constexpr std::int64_t kMaxPlanRanks = 512;
constexpr std::int64_t kMaxPlanSlots = 8192;                // ranks x slots per rank
constexpr std::int64_t kMaxPlanCells = 64 * kMaxPlanSlots;  // layers x (ranks x slots per rank)

struct PlanArgs {
  std::string load_path, load_format = "auto";
  int ranks = 0, slots_per_rank = 0, ranks_per_node = 0, groups = 0;
  std::string policy = kDefaultPolicy;
  std::string current_path, out_path, format = "sglang", report_path, transfers_path;
  std::int64_t max_transfers = -1;
  double threshold = 1.0;
  double target = 0.0;
  CLI::Option *ranks_opt = nullptr, *slots_opt = nullptr, *rpn_opt = nullptr;
};

nlohmann::json imbalance_json(const LayerBalance& b) {
  return b.has_load ? nlohmann::json(b.imbalance) : nlohmann::json(nullptr);
}

nlohmann::json transfer_plan_json(const TransferPlan& plan, const std::string& baseline) {
  nlohmann::json layers = nlohmann::json::array();
  for (const LayerPlan& lp : plan.layers) {
    nlohmann::json ops = nlohmann::json::array();
    for (const TransferOp& op : lp.ops)
      ops.push_back({{"expert", op.expert},
                     {"src_rank", op.src_rank},
                     {"src_slot", op.src_slot},
                     {"dst_rank", op.dst_rank},
                     {"dst_slot", op.dst_slot}});
    layers.push_back({{"layer", lp.layer},
                      {"ops", std::move(ops)},
                      {"remote_ops", lp.remote_ops},
                      {"local_ops", lp.local_ops},
                      {"makespan", lp.makespan},
                      {"lower_bound", lp.lower_bound}});
  }
  return {{"baseline", baseline},
          {"remote_ops", plan.remote_ops},
          {"local_ops", plan.local_ops},
          {"layers", std::move(layers)}};
}

// Phase 1, cheap checks before any file is read: formats, the policy, required options, and
// that every input is a regular file and every output can be written.
struct PlanSetup {
  LoadFormat load_format;
  PlacementFormat out_format;
  std::unique_ptr<Policy> policy;
  bool example;
  int ranks, slots, rpn;
};

PlanSetup check_plan_args(const PlanArgs& a) {
  PlanSetup s{parse_load_format(a.load_format),
              parse_placement_format(a.format),
              make_policy(a.policy),
              a.load_path.empty(),
              a.ranks,
              a.slots_per_rank,
              a.ranks_per_node};
  if (s.example) {
    if (a.ranks_opt->count() == 0) s.ranks = kExampleRanks;
    if (a.slots_opt->count() == 0) s.slots = kExampleSlots;
    if (a.rpn_opt->count() == 0) s.rpn = kExampleRanksPerNode;
  } else {
    if (a.ranks_opt->count() == 0 || a.slots_opt->count() == 0)
      throw InputError("--ranks and --slots-per-rank are required with --load");
    if (a.out_path.empty()) throw InputError("--out is required with --load");
  }
  check_inputs({{"--load", a.load_path}, {"--current", a.current_path}});
  check_outputs(
      {{"--out", a.out_path}, {"--report", a.report_path}, {"--transfers-out", a.transfers_path}});
  return s;
}

// Phase 2, the inputs: the load, the topology checked against it, the placement in service.
struct PlanInputs {
  LoadMatrix load;
  std::string load_name;
  Topology topo;
  std::optional<Placement> current;
};

PlanInputs read_plan_inputs(const PlanArgs& a, const PlanSetup& s) {
  // The topology first: its limits are checked before the load is read or anything allocated.
  const Topology topo =
      make_topology(s.ranks, s.slots, s.rpn, "--ranks, --slots-per-rank, --ranks-per-node");
  if (topo.ranks > kMaxPlanRanks)
    throw InputError("--ranks: " + std::to_string(topo.ranks) + " ranks exceed plan's limit of " +
                     std::to_string(kMaxPlanRanks) +
                     " (the limit its policies meet in bounded time; docs/formats.md)");
  if (topo.num_slots() > kMaxPlanSlots)
    throw InputError("--ranks x --slots-per-rank: " + std::to_string(topo.ranks) + " x " +
                     std::to_string(topo.slots_per_rank) + " = " +
                     std::to_string(topo.num_slots()) + " slots per layer exceed plan's limit of " +
                     std::to_string(kMaxPlanSlots) +
                     " (the limit its policies meet in bounded time; docs/formats.md)");
  PlanInputs in{s.example ? example_load() : read_load(a.load_path, s.load_format),
                s.example ? std::string("built-in example") : a.load_path, topo, std::nullopt};
  const LoadMatrix& load = in.load;
  if (const std::int64_t cells = std::int64_t{load.layers()} * topo.num_slots();
      cells > kMaxPlanCells)
    throw InputError(in.load_name + ": " + std::to_string(load.layers()) + " layers x " +
                     std::to_string(topo.num_slots()) + " slots = " + std::to_string(cells) +
                     " placement cells exceed plan's limit of " + std::to_string(kMaxPlanCells) +
                     " (the limit its policies meet in bounded time; docs/formats.md)");
  if (const Status st = load.validate(); !st.ok())
    throw InputError(in.load_name + ": " + st.message());
  throw_if_error(topo.validate(load.experts()));
  // No valid placement exists otherwise: a rank never holds two replicas of one expert.
  if (topo.slots_per_rank > load.experts())
    throw InputError("slots per rank (" + std::to_string(topo.slots_per_rank) + ") exceed the " +
                     std::to_string(load.experts()) +
                     " experts: a rank cannot hold two replicas of one expert");
  if (a.groups > 1 && load.experts() % a.groups != 0)
    throw InputError("--groups (" + std::to_string(a.groups) + ") must divide the " +
                     std::to_string(load.experts()) + " experts");
  if (!a.current_path.empty())
    in.current = read_placement(a.current_path, topo, load.experts(), load.layers());
  return in;
}

// Phase 3, the policy run and the figures before and after.
struct PlanResult {
  Placement placed;
  double policy_ms = 0.0;
  std::string baseline_name;
  Placement baseline;
  BalanceSummary before, after;
  TransferSummary transfers;
};

PlanResult compute_plan(const PlanArgs& a, const PlanInputs& in, const Policy& policy) {
  PolicyInput input{in.topo, in.load, in.current ? &*in.current : nullptr};
  input.options.num_groups = a.groups;
  input.options.max_transfers = a.max_transfers;
  input.options.threshold = a.threshold;
  input.options.target = a.target;
  throw_if_error(check_policy_input(input));

  PlanResult r;
  const auto t0 = std::chrono::steady_clock::now();
  r.placed = policy.rebalance(input);
  const auto t1 = std::chrono::steady_clock::now();
  r.policy_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  if (r.placed.layers() != in.load.layers() || r.placed.experts() != in.load.experts())
    throw std::runtime_error("policy " + a.policy + " returned a placement of the wrong shape");
  if (const Status s = validate_placement(r.placed, in.topo); !s.ok())
    throw std::runtime_error("policy " + a.policy +
                             " returned an invalid placement: " + s.message());

  // "Before" is the placement in service, or the contiguous one with no balancing at all.
  r.baseline_name = in.current ? "current" : "contiguous";
  r.baseline =
      in.current ? *in.current : contiguous_placement(in.topo, in.load.layers(), in.load.experts());
  r.before = balance_summary(r.baseline, in.load, in.topo);
  r.after = balance_summary(r.placed, in.load, in.topo);
  r.transfers = transfer_summary(r.baseline, r.placed, in.topo);
  return r;
}

nlohmann::json plan_report_json(const PlanArgs& a, const PlanInputs& in, const PlanResult& r) {
  const LoadMatrix& load = in.load;
  const Topology& topo = in.topo;
  nlohmann::json layers = nlohmann::json::array();
  for (int l = 0; l < load.layers(); ++l)
    layers.push_back({{"layer", l},
                      {"load", load.layer_total(l)},
                      {"has_load", r.after.layers[l].has_load},
                      {"imbalance_before", imbalance_json(r.before.layers[l])},
                      {"imbalance_after", imbalance_json(r.after.layers[l])},
                      {"transfers", r.transfers.per_layer[l]}});
  return {{"policy", a.policy},
          {"policy_time_ms", r.policy_ms},
          {"options",
           {{"groups", a.groups},
            {"max_transfers", a.max_transfers},
            {"threshold", a.threshold},
            {"target", a.target}}},
          {"topology",
           {{"ranks", topo.ranks},
            {"slots_per_rank", topo.slots_per_rank},
            {"ranks_per_node", topo.ranks_per_node},
            {"nodes", topo.nodes()},
            {"slots", topo.num_slots()}}},
          {"load",
           {{"source", in.load_name},
            {"layers", load.layers()},
            {"experts", load.experts()},
            {"layers_with_load", r.after.layers_with_load}}},
          {"baseline", r.baseline_name},
          {"totals",
           {{"imbalance_before_mean", r.before.mean_imbalance},
            {"imbalance_before_max", r.before.max_imbalance},
            {"imbalance_after_mean", r.after.mean_imbalance},
            {"imbalance_after_max", r.after.max_imbalance},
            {"transfers", r.transfers.total},
            {"slots", static_cast<std::int64_t>(topo.num_slots()) * load.layers()}}},
          {"layers", std::move(layers)}};
}

// Phase 4, the files asked for; returns what was written, for the summary.
std::vector<std::string> write_plan_outputs(const PlanArgs& a, const PlanSetup& s,
                                            const PlanInputs& in, const PlanResult& r) {
  // All or none: every file is written and closed before any is renamed into place.
  OutputGroup group;
  std::vector<std::string> wrote;
  if (!a.out_path.empty()) {
    write_placement(a.out_path, r.placed, in.topo, s.out_format);
    wrote.push_back(a.out_path + " (" + placement_format_name(s.out_format) + ")");
  }
  if (!a.report_path.empty()) {
    write_json_file(a.report_path, plan_report_json(a, in, r));
    wrote.push_back(a.report_path + " (report)");
  }
  if (!a.transfers_path.empty()) {
    const TransferPlan plan = make_transfer_plan(r.baseline, r.placed, in.topo);
    // Compact: a whole-model plan holds tens of thousands of operations.
    write_json_file(a.transfers_path, transfer_plan_json(plan, r.baseline_name), -1);
    wrote.push_back(a.transfers_path + " (transfer plan)");
  }
  group.commit();
  return wrote;
}

// Phase 5, the summary on stdout.
void print_plan(const PlanArgs& a, const PlanInputs& in, const PlanResult& r,
                const std::vector<std::string>& wrote) {
  const LoadMatrix& load = in.load;
  const Topology& topo = in.topo;
  std::printf("load:      %s, %d layers x %d experts (%d with load)\n", in.load_name.c_str(),
              load.layers(), load.experts(), r.after.layers_with_load);
  std::printf("topology:  %d ranks x %d slots = %d slots, %d ranks per node (%d nodes)\n",
              topo.ranks, topo.slots_per_rank, topo.num_slots(), topo.ranks_per_node, topo.nodes());
  std::printf("policy:    %s, %s\n\n", a.policy.c_str(), fmt_ms(r.policy_ms).c_str());
  Table t({"imbalance (max/mean rank load)", "mean", "max"});
  t.add_row({in.current ? "before (current placement)" : "before (contiguous, no balancing)",
             fmt_fixed(r.before.mean_imbalance), fmt_fixed(r.before.max_imbalance)});
  t.add_row({"after (" + a.policy + ")", fmt_fixed(r.after.mean_imbalance),
             fmt_fixed(r.after.max_imbalance)});
  t.print(stdout);
  std::printf("\ntransfers: %lld cross-rank expert copies of %lld slots, against the %s\n",
              static_cast<long long>(r.transfers.total),
              static_cast<long long>(topo.num_slots()) * load.layers(),
              in.current ? "current placement" : "contiguous placement");
  for (const std::string& w : wrote) std::printf("wrote %s\n", w.c_str());
}

int run_plan(const PlanArgs& a) {
  StatusLine status("plan");  // phases on a terminal (the policy run is one call)
  const PlanSetup setup = check_plan_args(a);
  status.show("reading " +
              (setup.example ? std::string("the built-in example load") : a.load_path));
  const PlanInputs in = read_plan_inputs(a, setup);
  // The policy's result, the baseline and their figures: a few placements of layers x slots
  // expert ids, within limits::kMaxCells (checked by the topology and the reader). An allocation
  // that fails anyway names them (exit 3).
  const std::int64_t cells = std::int64_t{in.load.layers()} * in.topo.num_slots();
  const std::string shape = std::to_string(in.load.layers()) + " layers x " +
                            std::to_string(in.topo.num_slots()) + " slots";
  status.show("policy " + a.policy + " on " + shape);
  const PlanResult r =
      allocating("the placements of " + shape, 3 * cells * std::int64_t{sizeof(ExpertId)},
                 [&] { return compute_plan(a, in, *setup.policy); });
  status.show("writing the outputs");
  // JSON holds up to 16 bytes per number before it is printed.
  const std::vector<std::string> wrote =
      allocating("the output files of " + shape, 3 * cells * 16,
                 [&] { return write_plan_outputs(a, setup, in, r); });
  status.finish();
  print_plan(a, in, r, wrote);
  return 0;
}

}  // namespace

CommandRunner add_plan_command(CLI::App& app) {
  auto args = std::make_shared<PlanArgs>();
  CLI::App* cmd = app.add_subcommand(
      "plan", "Compute a balanced static expert placement from a recorded expert load");
  cmd->footer(
      "Without --load, plans for a built-in example load: 58 layers x 256 experts, deterministic\n"
      "(log-normal expert weights, sigma 0.8, from a fixed seed; the hottest expert gets about\n"
      "5-8x the mean, like DeepSeek-V3), with defaults 32 ranks x 9 slots, 4 ranks per node,\n"
      "policy deepseek-global; --out is then optional.\n"
      "'Before' is the --current placement when given, else the contiguous placement with no\n"
      "balancing (slot p holds expert p mod experts); transfers are counted against it.\n"
      "Exit codes: 0 ok, 1 failure at run time, 2 bad input or usage.");
  cmd->add_option("--load", args->load_path,
                  "Expert-load file: SGLang {\"logical_count\": [L][E] or [T][L][E]} JSON, CSV "
                  "(layer,expert,tokens or step,layer,expert,tokens) or .npy (2-D or 3-D)");
  cmd->add_option("--load-format", args->load_format,
                  "auto|sglang|json|csv|npy (default: by extension)")
      ->capture_default_str();
  // Sizes are checked against core/limits.h by make_topology, naming these options.
  args->ranks_opt = cmd->add_option("--ranks", args->ranks, "Expert-parallel ranks R");
  args->slots_opt =
      cmd->add_option("--slots-per-rank", args->slots_per_rank, "Expert slots per rank S");
  args->rpn_opt = cmd->add_option("--ranks-per-node", args->ranks_per_node,
                                  "Ranks per node (default: all ranks on one node)")
                      ->check(CLI::Range(0, std::numeric_limits<int>::max()));
  cmd->add_option("--groups", args->groups,
                  "Expert groups for hierarchical packing (must divide the experts)")
      ->check(CLI::Range(0, std::numeric_limits<int>::max()));
  cmd->add_option("--policy", args->policy,
                  "Policy: deepseek, deepseek-global, deepseek-hierarchical, swift, "
                  "vllm-ascend-swap")
      ->capture_default_str();
  cmd->add_option("--current", args->current_path,
                  "Placement in service (SGLang or vllm-ascend JSON); the starting point");
  cmd->add_option("--out", args->out_path, "Where to write the new placement");
  cmd->add_option("--format", args->format, "Placement format to write: sglang|vllm-ascend")
      ->capture_default_str();
  cmd->add_option("--report", args->report_path,
                  "JSON report: per-layer imbalance before/after and transfers, totals, "
                  "topology, policy");
  cmd->add_option("--max-transfers", args->max_transfers,
                  "Budget of cross-rank expert copies for the whole model (policies that start "
                  "from the current placement); negative: unlimited")
      ->capture_default_str();
  cmd->add_option("--threshold", args->threshold,
                  "Leave layers whose imbalance is at most this untouched (policies that start "
                  "from the current placement)")
      ->capture_default_str()
      ->check(finite_non_negative());
  cmd->add_option("--target", args->target,
                  "swift: improve a layer until its imbalance is at most this (0: the policy's "
                  "default, 1.002)")
      ->capture_default_str()
      ->check(finite_non_negative());
  cmd->add_option("--transfers-out", args->transfers_path,
                  "JSON transfer plan from the before placement to the new one, per layer");
  return [args]() -> int { return run_plan(*args); };
}

}  // namespace swiftbalancer::cli
