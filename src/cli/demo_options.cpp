#include "cli/demo_options.h"

#include "cli/option_checks.h"
#include "swiftbalancer/core/limits.h"

namespace swiftbalancer::cli {

// The model and its workload: sizes, skew and drift, the emulated link.
void add_model_options(CLI::App* cmd, DemoOptions& o) {
  cmd->add_option("--ranks", o.ranks, "Ranks (in-process; mpi takes the mpirun size)")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  cmd->add_option("--slots", o.slots_per_rank, "Expert slots per rank")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--layers", o.workload.layers, "MoE layers")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--experts", o.workload.experts, "Logical experts per layer")
      ->capture_default_str()
      ->check(CLI::Range(2, 4096));
  cmd->add_option("--topk", o.workload.topk, "Experts per token")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cmd->add_option("--tokens", o.workload.tokens_per_rank, "Tokens per rank per step")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--link-gbps", o.link_gbps,
                  "Emulated link bandwidth per rank and direction for weight transfers, Gbit/s "
                  "(0: none)")
      ->capture_default_str()
      ->check(finite_range(0.0, 1e6));
  cmd->add_option("--hidden", o.mlp.hidden, "Hidden size")
      ->capture_default_str()
      ->check(CLI::Range(1, 8192));
  cmd->add_option("--ffn", o.mlp.ffn, "Expert FFN size")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  cmd->add_option("--skew", o.workload.skew, "Zipf exponent of the built-in load")
      ->capture_default_str()
      ->check(finite_range(0.0, 10.0));
  cmd->add_option("--drift-period", o.workload.drift_period, "Steps per drift cycle")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000000));
  cmd->add_option("--drift-amplitude", o.workload.drift_amplitude,
                  "Relative drift of expert weights, [0, 1)")
      ->capture_default_str()
      ->check(finite_range(0.0, 0.99));
  cmd->add_option("--seed", o.workload.seed, "Seed of weights and tokens")->capture_default_str();
  cmd->add_option("--switch-at", o.workload.switch_at,
                  "Steps from which the built-in load (or --trace) switches: every expert's "
                  "weight moves to another expert (a derangement drawn from the seed), so the hot "
                  "experts change; each in [2, --steps]; repeat or comma-separate for several "
                  "(default: none)")
      ->delimiter(',')
      ->check(CLI::Range(2, 10000000));
  cmd->add_option("--recover-window", o.recover_window,
                  "Recovery figure after each --switch-at: steps averaged on both sides (back "
                  "within --recover-tol of the mean before the switch)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--recover-tol", o.recover_tol,
                  "Recovery figure: relative tolerance over the mean before the switch")
      ->capture_default_str()
      ->check(finite_range(0.0, 10.0));
}

// The balancer: policy, cadence, window, commit rate, timeouts and injected faults.
void add_balancer_options(CLI::App* cmd, DemoArgs& a) {
  DemoOptions& o = a.opt;
  cmd->add_option("--policy", o.policy, "Placement policy (see `plan --help`)")
      ->capture_default_str();
  cmd->add_option("--interval", o.balancer.interval_steps,
                  "Steps between count gathers / rebalances")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  cmd->add_option("--window", o.balancer.window_intervals, "Load window, in intervals")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  cmd->add_option("--layers-per-step", o.balancer.layers_per_step,
                  "Layers committed per step (async)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--policy-threads", o.balancer.policy_threads,
                  "Threads per rank the policy spreads its per-layer work over")
      ->capture_default_str()
      ->check(CLI::Range(1, static_cast<int>(limits::kMaxPoolThreads)));
  cmd->add_option("--shift-check", o.balancer.shift.check_steps,
                  "Shift detection: steps between checks (0: off, the fixed interval only)")
      ->capture_default_str()
      ->check(CLI::Range(0, 10000));
  cmd->add_option("--shift-trigger", o.balancer.shift.trigger_ratio,
                  "Shift detection: gather early above this x the level the last cycle reached")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 100.0));
  cmd->add_option("--shift-gap", o.balancer.shift.min_gap_steps,
                  "Shift detection: at least this many steps between early gathers")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--shift-layers-per-step", o.balancer.shift.layers_per_step,
                  "Shift detection: layers committed per step by an early cycle (0: "
                  "--layers-per-step)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--inject-fault", a.fault,
                  "none, transfer-timeout, worker-exception or bad-placement")
      ->capture_default_str();
  cmd->add_option("--fault-rank", a.fault_rank, "Rank that misbehaves (default: the last)")
      ->check(CLI::Range(-1, 1 << 20));
  cmd->add_option("--fault-cycle", a.fault_cycle,
                  "Decision cycle in which it misbehaves (-1: every one)")
      ->capture_default_str()
      ->check(CLI::Range(-1, 1 << 30));
  cmd->add_option("--fault-rate", o.balancer.fault.random_rate,
                  "Random faults instead (soak): each cycle, with this probability, a fault of a "
                  "random kind on a random rank (seeded by --fault-seed)")
      ->capture_default_str()
      ->check(finite_range(0.0, 1.0));
  cmd->add_option("--fault-seed", o.balancer.fault.random_seed, "Seed of the random faults")
      ->capture_default_str();
  cmd->add_option("--transfer-timeout-ms", a.transfer_timeout_ms,
                  "Bound on a step's weight-transfer wait")
      ->capture_default_str()
      ->check(CLI::Range(1, 600000));
  cmd->add_option("--worker-timeout-ms", a.worker_timeout_ms,
                  "A decision not ready by then is dropped")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600000));
  cmd->add_option("--worker-poll-ms", a.worker_poll_ms,
                  "The decision worker looks for its job this often instead of being woken by "
                  "the serving thread (0: woken); for more ranks than cores")
      ->capture_default_str()
      ->check(CLI::Range(0, 3600000));
}

}  // namespace swiftbalancer::cli
