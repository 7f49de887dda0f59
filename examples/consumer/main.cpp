// A program an engine might write against the installed SwiftBalancer package:
//   1. a policy decides a placement for a small skewed load (pure function, checked valid);
//   2. a Balancer per rank, ranks as threads over InProcessWorld, serves a few hundred steps
//      with host expert buffers registered, recording the counts a dispatcher would produce.
// At the end every rank must hold a valid placement, the same one, with each local slot's
// bytes equal to the expert that placement names there (weights arrived before the table).
// Prints one line and exits 0 when all of that holds, 1 otherwise.
#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/policy/policy.h"
#include "swiftbalancer/runtime/balancer.h"
#include "swiftbalancer/transport/inprocess_transport.h"

namespace sb = swiftbalancer;
using namespace std::chrono_literals;

namespace {

constexpr int kRanks = 4, kSlots = 3, kLayers = 2, kExperts = 8, kSteps = 300;
constexpr std::size_t kExpertBytes = 64;

// In layer l, expert 2l is six times as hot as the others.
sb::LoadMatrix skewed_load() {
  sb::LoadMatrix m(kLayers, kExperts);
  for (int l = 0; l < kLayers; ++l)
    for (int e = 0; e < kExperts; ++e) m.at(l, e) = e == 2 * l ? 600.0 : 100.0;
  return m;
}

// The bytes of (layer, expert): what a slot holding that expert must contain.
std::byte pattern(int layer, int expert, std::size_t i) {
  return static_cast<std::byte>((layer * 41 + expert * 13 + i) & 0xFF);
}

struct RankOutcome {
  sb::Placement placement;
  sb::BalancerCounters counters;
  int bad_slots = 0;
};

// One rank's serving loop: register the host buffers, then per step route, record, commit.
RankOutcome serve_rank(int rank, sb::Transport& t, const sb::Topology& topo,
                       const sb::Placement& initial, const sb::LoadMatrix& load) {
  sb::BalancerConfig cfg;
  cfg.interval_steps = 20;
  cfg.window_intervals = 2;
  cfg.decision_poll_steps = 1;
  cfg.background_worker = false;  // the default nice-19 worker may starve on a busy machine
  sb::Balancer b(topo, rank, t, sb::make_policy("deepseek-global"), initial, cfg);
  std::vector<std::vector<std::byte>> mem(kLayers * kSlots, std::vector<std::byte>(kExpertBytes));
  for (int l = 0; l < kLayers; ++l)
    for (int s = 0; s < kSlots; ++s) {
      auto& buf = mem[static_cast<std::size_t>(l * kSlots + s)];
      const int e = initial.at(l, topo.slot_id(rank, s));
      for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = pattern(l, e, i);
      b.register_expert(l, s, {std::span<std::byte>(buf)});
    }
  std::vector<std::int64_t> counts(kSlots);
  for (int step = 1; step <= kSteps; ++step) {
    // An engine's dispatch is collective: the ranks step together.
    std::vector<std::int64_t> barrier = {1};
    if (!t.all_reduce(barrier, sb::ReduceOp::kSum, 5000ms).ok())
      throw std::runtime_error("step barrier failed");
    b.before_forward();
    for (int l = 0; l < kLayers; ++l) {
      const sb::RoutingTable& table = b.routing(l);
      const auto reps = sb::replica_counts(table.phy2log(), kExperts);
      for (int s = 0; s < kSlots; ++s) {
        const int e = table.expert_at(topo.slot_id(rank, s));
        counts[static_cast<std::size_t>(s)] = static_cast<std::int64_t>(load.at(l, e)) / reps[e];
      }
      b.record(l, counts);
    }
    b.after_forward();
  }
  RankOutcome out{b.placement(), b.counters(), 0};
  for (int l = 0; l < kLayers; ++l)
    for (int s = 0; s < kSlots; ++s) {
      const int e = out.placement.at(l, topo.slot_id(rank, s));
      const auto& buf = mem[static_cast<std::size_t>(l * kSlots + s)];
      for (std::size_t i = 0; i < buf.size(); ++i)
        if (buf[i] != pattern(l, e, i)) {
          ++out.bad_slots;
          break;
        }
    }
  return out;
}

std::vector<RankOutcome> serve_all(const sb::Topology& topo, const sb::Placement& initial,
                                   const sb::LoadMatrix& load) {
  sb::InProcessWorld world(kRanks);
  std::vector<RankOutcome> out(kRanks);
  std::mutex mu;
  std::exception_ptr first;
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r)
    threads.emplace_back([&, r] {
      try {
        auto t = world.transport(r);
        out[static_cast<std::size_t>(r)] = serve_rank(r, *t, topo, initial, load);
      } catch (...) {
        std::lock_guard lock(mu);
        if (!first) first = std::current_exception();
      }
    });
  for (auto& th : threads) th.join();
  if (first) std::rethrow_exception(first);
  return out;
}

}  // namespace

int main() try {
  const sb::Topology topo = sb::Topology::make(kRanks, kSlots);
  const sb::LoadMatrix load = skewed_load();
  const sb::Placement initial = sb::contiguous_placement(topo, kLayers, kExperts);

  // 1. A policy on its own: a pure function of (topology, load, current placement).
  const sb::Placement planned = sb::make_policy("swift")->rebalance({topo, load, &initial});
  if (const sb::Status s = sb::validate_placement(planned, topo); !s.ok()) {
    std::fprintf(stderr, "consumer: swift returned an invalid placement: %s\n",
                 s.to_string().c_str());
    return 1;
  }
  const double before = sb::balance_summary(initial, load, topo).mean_imbalance;
  const double after = sb::balance_summary(planned, load, topo).mean_imbalance;

  // 2. The runtime: one Balancer per rank, ranks as threads.
  const std::vector<RankOutcome> ranks = serve_all(topo, initial, load);
  bool ok = after < before;
  for (const RankOutcome& r : ranks) {
    ok = ok && sb::validate_placement(r.placement, topo).ok() && r.bad_slots == 0 &&
         r.placement == ranks[0].placement && r.counters.errors == 0;
  }
  const sb::BalancerCounters& c = ranks[0].counters;
  const double served = sb::balance_summary(ranks[0].placement, load, topo).mean_imbalance;
  ok = ok && c.rebalances >= 1 && served < before;
  std::printf(
      "consumer: swift imbalance %.3f -> %.3f; balancer %d ranks x %d steps: %lld rebalances, "
      "%lld layers committed, imbalance %.3f -> %.3f, errors %lld: %s\n",
      before, after, kRanks, kSteps, static_cast<long long>(c.rebalances),
      static_cast<long long>(c.layers_committed), before, served, static_cast<long long>(c.errors),
      ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "consumer: %s\n", e.what());
  return 1;
}
