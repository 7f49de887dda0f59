// run_replay: reads the trace once and feeds every policy's simulation the same steps; keeps the
// window of the simulations without shift detection (their schedules gather it). The time line
// is replay.h's.
#include "swiftbalancer/replay/replay.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <memory>
#include <string>

#include "swiftbalancer/core/status.h"
#include "swiftbalancer/replay/policy_sim.h"
#include "swiftbalancer/replay/runtime_model.h"

namespace swiftbalancer::replay {

namespace {

using Sims = std::vector<std::unique_ptr<PolicySim>>;

bool any_of_sims(const Sims& sims, bool (*pred)(const PolicySim&)) {
  return std::any_of(sims.begin(), sims.end(), [&](const auto& s) { return pred(*s); });
}

// Reads the first window ahead when a static placement (an offline profile of it) or the static
// start needs it, installs those placements, and returns the steps read (replayed afterwards).
std::deque<std::vector<double>> prefetch_first_window(TraceSource& source, const ReplayConfig& cfg,
                                                      int L, int E, std::int64_t T, Sims& sims) {
  std::deque<std::vector<double>> prefetch;
  const bool any_static =
      any_of_sims(sims, [](const PolicySim& s) { return s.mode() == Mode::kStatic; });
  const bool start_static =
      cfg.start_static && any_of_sims(sims, [](const PolicySim& s) { return s.dynamic(); });
  if (!any_static && !start_static) return prefetch;
  const std::size_t per = static_cast<std::size_t>(L) * E;
  const std::int64_t n0 = std::min<std::int64_t>(T, cfg.decay > 0.0 ? cfg.interval : cfg.window);
  LoadMatrix first(L, E);
  for (std::int64_t i = 0; i < n0; ++i) {
    prefetch.emplace_back(per);
    source.next(prefetch.back());
    auto& v = prefetch.back();
    for (int l = 0; l < L; ++l) {
      auto row = first.row(l);
      for (int e = 0; e < E; ++e) row[e] += v[static_cast<std::size_t>(l) * E + e];
    }
  }
  for (auto& s : sims)
    if (s->mode() == Mode::kStatic) s->init_static(first);
  if (start_static) {
    // One shared starting placement, so that every dynamic policy starts from the same point.
    const Placement cont = contiguous_placement(cfg.topo, L, E);
    const Placement start =
        make_policy("deepseek-global")->rebalance(PolicyInput{cfg.topo, first, &cont, cfg.options});
    throw_if_error(validate_placement(start, cfg.topo));
    for (auto& s : sims)
      if (s->dynamic()) s->set_placement(start);
  }
  return prefetch;
}

}  // namespace

ReplayResult run_replay(TraceSource& source, ReplayConfig config) {
  const auto wall0 = std::chrono::steady_clock::now();
  config.validate();
  const int L = source.layers(), E = source.experts();
  const std::int64_t T = source.steps();
  throw_if_error(config.topo.validate(E));
  std::sort(config.switch_at.begin(), config.switch_at.end());

  ReplayResult out;
  out.steps = T;
  out.layers = L;
  out.experts = E;
  out.config = config;
  const ReplayConfig& cfg = out.config;

  Sims sims;
  for (const PolicySpec& spec : cfg.policies)
    sims.push_back(std::make_unique<PolicySim>(spec, cfg, L, E, T));
  const bool any_dynamic = any_of_sims(sims, [](const PolicySim& s) { return s.dynamic(); });
  std::deque<std::vector<double>> prefetch = prefetch_first_window(source, cfg, L, E, T, sims);
  const std::size_t per = static_cast<std::size_t>(L) * E;
  const std::int64_t prefetch_bytes =
      static_cast<std::int64_t>(prefetch.size() * per * sizeof(double));

  // The runtime's statistics: steps add into the interval, each gather pushes it (the schedule
  // of each simulation says when).
  SharedWindow window(L, E, cfg);
  std::vector<double> counts(per), totals(static_cast<std::size_t>(L));
  for (std::int64_t t = 0; t < T; ++t) {
    if (!prefetch.empty()) {
      counts.swap(prefetch.front());
      prefetch.pop_front();
    } else {
      source.next(counts);
    }
    for (int l = 0; l < L; ++l) {
      double s = 0.0;
      for (int e = 0; e < E; ++e) s += counts[static_cast<std::size_t>(l) * E + e];
      totals[l] = s;
    }
    if (any_dynamic) window.add_step(counts);
    for (auto& s : sims) s->step(t, counts, totals, window);
    if (cfg.progress) cfg.progress(t + 1, T);
  }
  for (auto& s : sims) out.policies.push_back(s->finish());
  out.peak_window_bytes =
      window.bytes() + prefetch_bytes + static_cast<std::int64_t>(2 * per * sizeof(double));
  out.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  return out;
}

}  // namespace swiftbalancer::replay
