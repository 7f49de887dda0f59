// Issue 21, item 6: a rank process killed with SIGKILL in the middle of a cycle, under mpirun
// with 4 processes. Run by tests/transport/mpi_rank_kill.sh (ctest `mpi_rank_kill`), which
// checks the files this program writes: `argv[1]/rank<r>.log`, one line per step, flushed as
// it is written, so that what a survivor proved survives mpirun tearing it down.
//
// Every rank serves the same skewed load, so the first cycle moves experts on every layer, one
// layer per step. The victim (the last rank) kills itself with SIGKILL right after
// before_forward() of a step in the middle of that cycle: its sends and receives of the layer
// being moved are posted, and the earlier layers of the cycle are already committed. The
// survivors then check, at every step:
//   - each balancer call (before_forward, after_forward) returns within `kCallBoundMs`, which
//     covers one transfer timeout and one collective timeout (no hang);
//   - the placement in service is valid, and every local slot's bytes are those of the expert
//     the placement says it holds (no corrupted placement: a layer is either on its old
//     placement or on a fully committed new one);
//   - once the peer is gone, the failure is reported: an error logged through config.log
//     (written to the file as "log: ..."), counted in counters().errors, and balancing
//     stopped, while serving goes on.
// Line formats (the script greps them):
//   step <n> before_ms <x> after_ms <y> committed <c> failed <f> errors <e> stopped <s> ok
//   FAIL <what>                 an invariant broke (the script fails on any)
//   log: <severity> <line>      the balancer's own log lines
//   victim: killing at step <n> (written by the victim just before raise(SIGKILL))
//   reported: <last_error>      the first step a survivor's counters show the failure
//   done <steps> max_call_ms <m> the survivor served every step
// After the last step a survivor leaves with _exit(0): MPI_Finalize with a dead peer may block.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "swiftbalancer/policy/policy.h"
#include "swiftbalancer/runtime/balancer.h"
#include "swiftbalancer/transport/mpi_transport.h"

namespace {

using namespace swiftbalancer;
using SteadyClock = std::chrono::steady_clock;

constexpr int kSlots = 4, kLayers = 8;
constexpr std::size_t kExpertBytes = 64 * 1024;
constexpr int kTransferTimeoutMs = 300, kCollectiveTimeoutMs = 300;
// One step may wait for one transfer timeout and one collective timeout before the transport is
// known broken; everything after that fails fast. Scheduling noise on a loaded 2-core machine
// gets the rest.
constexpr double kCallBoundMs = kTransferTimeoutMs + 2 * kCollectiveTimeoutMs + 1500;
constexpr int kStepsAfterKill = 60, kMaxSteps = 400;

// The bytes an expert's weights hold in a layer: every replica of (layer, expert) is identical,
// and no two (layer, expert) pairs are.
std::byte pattern(int layer, int expert, std::size_t i) {
  return static_cast<std::byte>((layer * 131 + expert * 29 + static_cast<int>(i % 251)) & 0xFF);
}

void fill(std::vector<std::byte>& b, int layer, int expert) {
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = pattern(layer, expert, i);
}

bool holds(const std::vector<std::byte>& b, int layer, int expert) {
  for (std::size_t i = 0; i < b.size(); ++i)
    if (b[i] != pattern(layer, expert, i)) return false;
  return true;
}

double ms_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  MpiSession session(&argc, &argv);
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <output folder>\n", argv[0]);
    return 2;
  }
  const int R = session.size(), me = session.rank(), victim = R - 1;
  const std::string path = std::string(argv[1]) + "/rank" + std::to_string(me) + ".log";
  std::FILE* out = std::fopen(path.c_str(), "w");
  if (out == nullptr) {
    std::fprintf(stderr, "%s: cannot write\n", path.c_str());
    return 2;
  }
  auto line = [&](const std::string& s) {
    std::fputs((s + "\n").c_str(), out);
    std::fflush(out);
  };
  if (R < 3) {
    line("FAIL needs at least 3 processes, got " + std::to_string(R));
    return 1;
  }

  auto transport = session.transport();
  const int E = R * kSlots - R;  // one redundant slot per rank
  const Topology topo = Topology::make(R, kSlots);
  BalancerConfig cfg;
  cfg.interval_steps = 5;
  cfg.layers_per_step = 1;
  cfg.transfer_timeout = Millis(kTransferTimeoutMs);
  cfg.collective_timeout = Millis(kCollectiveTimeoutMs);
  cfg.log = [&](LogSeverity sev, const std::string& s) {
    line(std::string("log: ") +
         (sev == LogSeverity::kError     ? "error "
          : sev == LogSeverity::kWarning ? "warning "
                                         : "info ") +
         s);
  };
  Balancer b(topo, me, *transport, make_policy("swift"), contiguous_placement(topo, kLayers, E),
             cfg);
  std::vector<std::vector<std::byte>> mem(static_cast<std::size_t>(kLayers * kSlots),
                                          std::vector<std::byte>(kExpertBytes));
  for (int l = 0; l < kLayers; ++l)
    for (int s = 0; s < kSlots; ++s) {
      auto& m = mem[static_cast<std::size_t>(l * kSlots + s)];
      fill(m, l, b.placement().at(l, me * kSlots + s));
      b.register_expert(l, s, {std::span<std::byte>(m)});
    }

  // Skewed load: experts 0 and 1 (both on rank 0 at the start) get most tokens, so the policy
  // replicates them elsewhere in every layer. An expert's tokens are split over its replicas.
  auto weight = [](int e) -> std::int64_t { return e < 2 ? 4000 : 100; };
  std::vector<std::int64_t> counts(kSlots);

  bool moving = false, kill_next = false, reported = false;
  std::int64_t kill_step = -1;
  double max_call_ms = 0.0;
  for (std::int64_t step = 1; step <= kMaxSteps; ++step) {
    const auto t0 = SteadyClock::now();
    b.before_forward();
    const double before_ms = ms_since(t0);
    if (me == victim && kill_next) {
      // The layer's transfers are posted: die with them in flight.
      line("victim: killing at step " + std::to_string(step));
      ::raise(SIGKILL);
    }
    const Placement& p = b.placement();
    for (int l = 0; l < kLayers; ++l) {
      std::vector<int> replicas(static_cast<std::size_t>(E), 0);
      for (int q = 0; q < R * kSlots; ++q) ++replicas[static_cast<std::size_t>(p.at(l, q))];
      for (int s = 0; s < kSlots; ++s) {
        const int e = p.at(l, me * kSlots + s);
        counts[static_cast<std::size_t>(s)] = weight(e) / replicas[static_cast<std::size_t>(e)];
      }
      b.record(l, counts);
    }
    const auto t1 = SteadyClock::now();
    const StepStats st = b.after_forward();
    const double after_ms = ms_since(t1);
    max_call_ms = std::max({max_call_ms, before_ms, after_ms});
    if (before_ms > kCallBoundMs || after_ms > kCallBoundMs)
      line("FAIL step " + std::to_string(step) + ": a balancer call took " +
           std::to_string(std::max(before_ms, after_ms)) + " ms, above the bound of " +
           std::to_string(kCallBoundMs) + " ms");

    // The placement in service against the bytes in the slots.
    const Placement& now = b.placement();
    if (!validate_placement(now, topo).ok())
      line("FAIL step " + std::to_string(step) + ": invalid placement in service");
    for (int l = 0; l < kLayers; ++l)
      for (int s = 0; s < kSlots; ++s) {
        const int e = now.at(l, me * kSlots + s);
        if (!holds(mem[static_cast<std::size_t>(l * kSlots + s)], l, e))
          line("FAIL step " + std::to_string(step) + ": layer " + std::to_string(l) + " slot " +
               std::to_string(s) + " is served as expert " + std::to_string(e) +
               " but does not hold its bytes");
      }

    const BalancerCounters c = b.counters();
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "step %lld before_ms %.1f after_ms %.1f committed %lld failed %lld errors %lld "
                  "stopped %lld ok",
                  static_cast<long long>(step), before_ms, after_ms,
                  static_cast<long long>(c.layers_committed),
                  static_cast<long long>(c.layers_failed), static_cast<long long>(c.errors),
                  static_cast<long long>(c.balancing_stopped));
    line(buf);

    // The victim picks a step in the middle of the first cycle: a layer committed, more to go.
    if (st.layers_committed > 0 && !st.rebalance_finished) {
      if (moving && me == victim) kill_next = true;
      moving = true;
    }
    if (me != victim && kill_step < 0 && c.errors > 0) kill_step = step;
    if (me != victim && !reported && c.balancing_stopped > 0) {
      line("reported: " + c.last_error);
      reported = true;
    }
    if (kill_step > 0 && step >= kill_step + kStepsAfterKill) {
      if (!reported) line("FAIL the failure was never reported (balancing not stopped)");
      line("done " + std::to_string(step) + " max_call_ms " + std::to_string(max_call_ms));
      std::fclose(out);
      ::_exit(0);
    }
  }
  line("FAIL no failure seen in " + std::to_string(kMaxSteps) + " steps");
  std::fclose(out);
  ::_exit(1);
}
