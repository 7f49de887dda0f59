#include "swiftbalancer/replay/replay.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "swiftbalancer/core/status.h"

namespace swiftbalancer::replay {

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::kOff:
      return "off";
    case Mode::kStatic:
      return "static";
    case Mode::kSync:
      return "sync";
    case Mode::kAsync:
      return "async";
  }
  return "?";
}

std::vector<PolicySpec> parse_policy_list(const std::string& list) {
  std::vector<PolicySpec> out;
  std::size_t start = 0;
  while (start <= list.size()) {
    std::size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    std::string item = list.substr(start, end - start);
    // Trim spaces.
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    start = end + 1;
    if (item.empty()) {
      if (end == list.size()) break;
      throw InputError("empty entry in policy list '" + list + "'");
    }
    PolicySpec spec;
    spec.label = item;
    const std::size_t colon = item.find(':');
    std::string name = item.substr(0, colon);
    std::string mode = colon == std::string::npos ? "" : item.substr(colon + 1);
    if (name == "off") {
      if (!mode.empty() && mode != "off")
        throw InputError("'off' takes no mode, got '" + item + "'");
      spec.mode = Mode::kOff;
    } else if (name == "static" && mode.empty()) {
      spec.policy = "deepseek-global";
      spec.mode = Mode::kStatic;
    } else {
      spec.policy = name;
      if (mode.empty() || mode == "async") {
        spec.mode = Mode::kAsync;
      } else if (mode == "sync") {
        spec.mode = Mode::kSync;
      } else if (mode == "static") {
        spec.mode = Mode::kStatic;
      } else {
        throw InputError("unknown mode '" + mode + "' in '" + item +
                         "' (known: async, sync, static)");
      }
      make_policy(spec.policy);  // throws InputError naming the known policies
    }
    for (const PolicySpec& prev : out)
      if (prev.policy == spec.policy && prev.mode == spec.mode)
        throw InputError("policy '" + item + "' is listed twice");
    out.push_back(std::move(spec));
    if (end == list.size()) break;
  }
  if (out.empty()) throw InputError("the policy list is empty");
  return out;
}

void ReplayConfig::validate() const {
  if (policies.empty()) throw InputError("replay needs at least one policy");
  if (interval <= 0) throw InputError("interval must be positive");
  // Written so that NaN fails: every comparison with NaN is false.
  if (!(decay >= 0.0 && decay < 1.0)) throw InputError("decay must be in [0, 1)");
  if (decay == 0.0 && window <= 0) throw InputError("window must be positive");
  if (layers_per_step <= 0) throw InputError("layers-per-step must be positive");
  if (poll_steps <= 0) throw InputError("poll-steps must be positive");
  if (recover_window <= 0) throw InputError("recover-window must be positive");
  if (!(recover_tol >= 0.0) || !std::isfinite(recover_tol))
    throw InputError("recover-tol must be finite and not negative");
  if (std::isnan(policy_ms) || std::isinf(policy_ms))
    throw InputError("policy-ms must be finite (negative: measured)");
  if (heatmap_bins <= 0) throw InputError("heatmap bins must be positive");
  if (switch_blend < 0) throw InputError("switch blend must not be negative");
  cost.validate();
}

std::int64_t recovery_steps(const std::vector<float>& series, std::int64_t s, int w, double tol,
                            std::int64_t from) {
  const std::int64_t n = static_cast<std::int64_t>(series.size());
  if (from < s) from = s;
  if (s <= 0 || from >= n) return -1;
  const std::int64_t b0 = std::max<std::int64_t>(0, s - w);
  double pre = 0.0;
  for (std::int64_t i = b0; i < s; ++i) pre += series[i];
  pre /= static_cast<double>(s - b0);
  const double limit = pre * (1.0 + tol);
  // Sliding average over [t, t + w), cut short at the end of the series.
  for (std::int64_t t = from; t < n; ++t) {
    const std::int64_t e = std::min(n, t + w);
    double sum = 0.0;
    for (std::int64_t i = t; i < e; ++i) sum += series[i];
    if (sum / static_cast<double>(e - t) <= limit) return t - from;
  }
  return -1;
}

namespace {

// Statistics window shared by all policies: the last `window` steps, or a decayed sum.
class Window {
 public:
  Window(int layers, int experts, int window, double decay)
      : per_(static_cast<std::size_t>(layers) * experts),
        layers_(layers),
        experts_(experts),
        window_(decay > 0.0 ? 0 : window),
        decay_(decay),
        sum_(per_, 0.0) {
    ring_.resize(per_ * static_cast<std::size_t>(window_));
  }
  void add(const std::vector<double>& step) {
    if (decay_ > 0.0) {
      for (std::size_t i = 0; i < per_; ++i) sum_[i] = decay_ * sum_[i] + step[i];
      return;
    }
    double* slot = ring_.data() + per_ * static_cast<std::size_t>(head_);
    if (filled_ == window_) {
      for (std::size_t i = 0; i < per_; ++i) sum_[i] += step[i] - slot[i];
    } else {
      for (std::size_t i = 0; i < per_; ++i) sum_[i] += step[i];
      ++filled_;
    }
    std::copy(step.begin(), step.end(), slot);
    head_ = (head_ + 1) % window_;
    // Running sums of integers stay exact in doubles; clamp the rounding of fractional counts.
    if (++adds_ % 4096 == 0) recompute();
  }
  LoadMatrix load() const {
    std::vector<double> v(sum_);
    for (double& x : v) x = std::max(0.0, x);
    return LoadMatrix(layers_, experts_, std::move(v));
  }
  std::int64_t bytes() const {
    return static_cast<std::int64_t>((ring_.size() + sum_.size()) * sizeof(double));
  }

 private:
  void recompute() {
    std::fill(sum_.begin(), sum_.end(), 0.0);
    for (int w = 0; w < filled_; ++w)
      for (std::size_t i = 0; i < per_; ++i) sum_[i] += ring_[per_ * w + i];
  }
  std::size_t per_;
  int layers_, experts_, window_;
  double decay_;
  std::vector<double> sum_, ring_;
  int head_ = 0, filled_ = 0;
  std::int64_t adds_ = 0;
};

class Sim {
 public:
  Sim(PolicySpec spec, const ReplayConfig& cfg, int layers, int experts, std::int64_t steps)
      : cfg_(cfg),
        topo_(cfg.topo),
        L_(layers),
        E_(experts),
        T_(steps),
        cur_(contiguous_placement(cfg.topo, layers, experts)),
        timer_(cfg.topo, cfg.cost) {
    res_.spec = std::move(spec);
    if (res_.spec.mode != Mode::kOff) policy_ = make_policy(res_.spec.policy);
    const std::size_t slots = static_cast<std::size_t>(topo_.num_slots());
    weight_.assign(slots * L_, 0.0);
    for (int l = 0; l < L_; ++l) refresh_layer(l);
    loads_.assign(static_cast<std::size_t>(topo_.ranks), 0.0);
    res_.imbalance.assign(static_cast<std::size_t>(T_), 0.0f);
    res_.step_ms.assign(static_cast<std::size_t>(T_), 0.0f);
    res_.heat_bins = static_cast<int>(std::min<std::int64_t>(cfg.heatmap_bins, T_));
    heat_.assign(static_cast<std::size_t>(res_.heat_bins) * topo_.ranks, 0.0);
    heat_n_.assign(static_cast<std::size_t>(res_.heat_bins), 0);
  }

  Mode mode() const { return res_.spec.mode; }
  bool dynamic() const { return mode() == Mode::kSync || mode() == Mode::kAsync; }

  // The placement from the first window: this sim's own policy for static mode.
  void init_static(const LoadMatrix& first_window) {
    PolicyInput in{topo_, first_window, &cur_, cfg_.options};
    set_placement(call_policy(in));
  }
  void set_placement(const Placement& p) {
    for (int l = 0; l < L_; ++l) {
      auto src = p.layer(l);
      std::copy(src.begin(), src.end(), cur_.layer(l).begin());
      refresh_layer(l);
    }
  }

  void step(std::int64_t t, const std::vector<double>& counts, const std::vector<double>& totals) {
    const int R = topo_.ranks, S = topo_.slots_per_rank;
    const std::size_t slots = static_cast<std::size_t>(topo_.num_slots());
    const std::size_t bin = static_cast<std::size_t>(t * res_.heat_bins / T_);
    double compute_us = 0.0, imb_sum = 0.0;
    int loaded = 0;
    for (int l = 0; l < L_; ++l) {
      const double* row = counts.data() + static_cast<std::size_t>(l) * E_;
      const ExpertId* ex = cur_.layer(l).data();
      const double* w = weight_.data() + slots * l;
      double mx = 0.0;
      for (int r = 0; r < R; ++r) {
        double acc = 0.0;
        for (int s = r * S, e = s + S; s < e; ++s) acc += row[ex[s]] * w[s];
        loads_[r] = acc;
        mx = std::max(mx, acc);
      }
      compute_us += cfg_.cost.layer_us + cfg_.cost.token_us * mx;
      const double tot = totals[l];
      if (tot > 0.0) {
        const double inv_mean = R / tot;
        imb_sum += mx * inv_mean;
        ++loaded;
        double* h = heat_.data() + bin * R;
        for (int r = 0; r < R; ++r) h[r] += loads_[r] * inv_mean;
        ++heat_n_[bin];
      }
    }
    const double compute_ms = compute_us / 1000.0;
    res_.mean_compute_ms += compute_ms;
    double exposed = 0.0;
    if (pending_ && t >= move_start_) {
      // This step's batch moves during the forward pass and is committed after it.
      const std::size_t end = std::min(changed_.size(), next_idx_ + cfg_.layers_per_step);
      timer_.clear();
      for (std::size_t i = next_idx_; i < end; ++i) timer_.add(moves_[i]);
      exposed = std::max(0.0, timer_.time_ms() - compute_ms);
      for (std::size_t i = next_idx_; i < end; ++i) {
        const int l = changed_[i];
        auto src = next_.layer(l);
        std::copy(src.begin(), src.end(), cur_.layer(l).begin());
        refresh_layer(l);
      }
      next_idx_ = end;
      if (next_idx_ == changed_.size()) {
        pending_ = false;
        res_.events.back().last_commit = t;
      }
    }
    res_.imbalance[t] = static_cast<float>(loaded ? imb_sum / loaded : 1.0);
    res_.step_ms[t] = static_cast<float>(compute_ms + exposed);
    res_.stall_ms += exposed;
  }

  void gather(std::int64_t t, const LoadMatrix& load) {
    if (pending_) {
      ++res_.skipped;
      return;
    }
    PolicyInput in{topo_, load, &cur_, cfg_.options};
    const auto t0 = std::chrono::steady_clock::now();
    Placement p = call_policy(in);
    const double wall =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    res_.policy_wall_ms += wall;
    changed_.clear();
    moves_.clear();
    RebalanceEvent ev;
    ev.decided = t;
    ev.policy_ms = cfg_.policy_ms >= 0.0 ? cfg_.policy_ms : wall;
    timer_.clear();
    for (int l = 0; l < L_; ++l) {
      const auto a = cur_.layer(l), b = p.layer(l);
      if (std::equal(a.begin(), a.end(), b.begin())) continue;
      changed_.push_back(l);
      moves_.push_back(layer_moves(a, b, topo_, E_));
      timer_.add(moves_.back());
      ev.transfers += static_cast<std::int64_t>(moves_.back().size());
    }
    if (changed_.empty()) return;
    ev.layers_changed = static_cast<int>(changed_.size());
    ev.transfer_ms = timer_.time_ms();
    ++res_.rebalances;
    res_.transfers += ev.transfers;
    res_.bytes += static_cast<double>(ev.transfers) * cfg_.cost.expert_bytes();
    if (mode() == Mode::kSync) {
      const double stall = ev.policy_ms + ev.transfer_ms;
      res_.step_ms[t] += static_cast<float>(stall);
      res_.stall_ms += stall;
      for (int l : changed_) {
        auto src = p.layer(l);
        std::copy(src.begin(), src.end(), cur_.layer(l).begin());
        refresh_layer(l);
      }
      ev.first_commit = ev.last_commit = t;
      changed_.clear();
      moves_.clear();
    } else {
      const double step_ms = std::max(1e-9, static_cast<double>(res_.step_ms[t]));
      ev.policy_steps = cfg_.policy_steps >= 0
                            ? cfg_.policy_steps
                            : static_cast<int>(std::ceil(ev.policy_ms / step_ms));
      ev.policy_steps = (ev.policy_steps + cfg_.poll_steps - 1) / cfg_.poll_steps * cfg_.poll_steps;
      move_start_ = t + 1 + ev.policy_steps;
      ev.first_commit = move_start_;
      ev.last_commit = -1;  // set when the last batch commits (stays -1 past the trace's end)
      next_ = std::move(p);
      next_idx_ = 0;
      pending_ = true;
    }
    res_.events.push_back(ev);
  }

  PolicyResult finish() {
    const std::size_t n = res_.imbalance.size();
    std::vector<float> sorted(res_.imbalance);
    std::sort(sorted.begin(), sorted.end());
    auto rank = [&](double q) {
      const std::size_t k = static_cast<std::size_t>(std::ceil(q * static_cast<double>(n)));
      return static_cast<double>(sorted[std::min(n - 1, k == 0 ? 0 : k - 1)]);
    };
    double sum_imb = 0.0, sum_ms = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      sum_imb += res_.imbalance[i];
      sum_ms += res_.step_ms[i];
    }
    res_.mean_imbalance = sum_imb / n;
    res_.p50_imbalance = rank(0.50);
    res_.p99_imbalance = rank(0.99);
    res_.max_imbalance = sorted.back();
    res_.mean_step_ms = sum_ms / n;
    res_.mean_compute_ms /= static_cast<double>(n);
    for (std::int64_t s : cfg_.switch_at)
      res_.recover_steps.push_back(recovery_steps(res_.imbalance, s, cfg_.recover_window,
                                                  cfg_.recover_tol, s + cfg_.switch_blend));
    const int R = topo_.ranks;
    res_.heat.assign(heat_.size(), 0.0f);
    for (int b = 0; b < res_.heat_bins; ++b)
      for (int r = 0; r < R; ++r)
        if (heat_n_[b] > 0)
          res_.heat[static_cast<std::size_t>(b) * R + r] =
              static_cast<float>(heat_[static_cast<std::size_t>(b) * R + r] / heat_n_[b]);
    return std::move(res_);
  }

 private:
  Placement call_policy(const PolicyInput& in) {
    Placement p = policy_->rebalance(in);
    ++res_.policy_calls;
    const Status s = validate_placement(p, topo_);
    if (!s.ok() || p.layers() != L_ || p.experts() != E_)
      throw std::runtime_error("policy '" + res_.spec.policy +
                               "' returned an invalid placement: " + s.message());
    return p;
  }

  void refresh_layer(int l) {
    const auto layer = cur_.layer(l);
    const std::vector<int> rc = replica_counts(layer, E_);
    double* w = weight_.data() + static_cast<std::size_t>(topo_.num_slots()) * l;
    for (int p = 0; p < topo_.num_slots(); ++p) w[p] = 1.0 / rc[layer[p]];
  }

  const ReplayConfig& cfg_;
  Topology topo_;
  int L_, E_;
  std::int64_t T_;
  std::unique_ptr<Policy> policy_;
  Placement cur_;
  std::vector<double> weight_;  // [layers][slots]: 1 / replica count of the slot's expert
  std::vector<double> loads_;
  TransferTimer timer_;
  // Async rebalance in flight.
  bool pending_ = false;
  Placement next_;
  std::vector<int> changed_;
  std::vector<std::vector<Move>> moves_;
  std::size_t next_idx_ = 0;
  std::int64_t move_start_ = 0;
  PolicyResult res_;
  std::vector<double> heat_;
  std::vector<std::int64_t> heat_n_;
};

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

  std::vector<std::unique_ptr<Sim>> sims;
  bool any_static = false, any_dynamic = false;
  for (const PolicySpec& spec : cfg.policies) {
    sims.push_back(std::make_unique<Sim>(spec, cfg, L, E, T));
    any_static = any_static || spec.mode == Mode::kStatic;
    any_dynamic = any_dynamic || sims.back()->dynamic();
  }

  const std::size_t per = static_cast<std::size_t>(L) * E;
  std::deque<std::vector<double>> prefetch;
  if (any_static || (any_dynamic && cfg.start_static)) {
    // The first window, read ahead: static placements are an offline profile of it.
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
    if (any_dynamic && cfg.start_static) {
      // One shared starting placement, so that every dynamic policy starts from the same point.
      const Placement cont = contiguous_placement(cfg.topo, L, E);
      const Placement start = make_policy("deepseek-global")
                                  ->rebalance(PolicyInput{cfg.topo, first, &cont, cfg.options});
      throw_if_error(validate_placement(start, cfg.topo));
      for (auto& s : sims)
        if (s->dynamic()) s->set_placement(start);
    }
  }
  const std::int64_t prefetch_bytes =
      static_cast<std::int64_t>(prefetch.size() * per * sizeof(double));

  Window window(L, E, cfg.window, cfg.decay);
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
    for (auto& s : sims) s->step(t, counts, totals);
    if (any_dynamic) {
      window.add(counts);
      if ((t + 1) % cfg.interval == 0) {
        const LoadMatrix load = window.load();
        bool has_load = false;
        for (int l = 0; l < L && !has_load; ++l) has_load = load.layer_has_load(l);
        if (has_load)
          for (auto& s : sims)
            if (s->dynamic()) s->gather(t, load);
      }
    }
    if (cfg.progress) cfg.progress(t + 1, T);
  }
  for (auto& s : sims) out.policies.push_back(s->finish());
  out.peak_window_bytes =
      window.bytes() + prefetch_bytes + static_cast<std::int64_t>(2 * per * sizeof(double));
  out.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  return out;
}

std::string format_table(const ReplayResult& r) {
  std::string s;
  char buf[512];
  std::snprintf(buf, sizeof buf, "%-24s %8s %7s %7s %7s %9s %6s %9s %9s %9s %s\n", "policy",
                "imb mean", "p50", "p99", "max", "step ms", "rebal", "transfers", "GB moved",
                "stall s", "recover (steps)");
  s += buf;
  for (const PolicyResult& p : r.policies) {
    std::string rec;
    for (std::int64_t v : p.recover_steps) {
      if (!rec.empty()) rec.push_back(',');
      if (v < 0) {
        rec.append("never");
      } else {
        rec.append(std::to_string(v));
      }
    }
    if (rec.empty()) rec.assign(1, '-');
    std::snprintf(
        buf, sizeof buf, "%-24s %8.3f %7.3f %7.3f %7.3f %9.3f %6lld %9lld %9.1f %9.3f %s\n",
        p.spec.label.c_str(), p.mean_imbalance, p.p50_imbalance, p.p99_imbalance, p.max_imbalance,
        p.mean_step_ms, static_cast<long long>(p.rebalances), static_cast<long long>(p.transfers),
        p.bytes / 1e9, p.stall_ms / 1e3, rec.c_str());
    s += buf;
  }
  return s;
}

std::string to_json_text(const ReplayResult& r) {
  using nlohmann::json;
  const ReplayConfig& c = r.config;
  json j;
  j["trace"] = {{"steps", r.steps}, {"layers", r.layers}, {"experts", r.experts}};
  j["config"] = {
      {"ranks", c.topo.ranks},
      {"slots_per_rank", c.topo.slots_per_rank},
      {"ranks_per_node", c.topo.ranks_per_node},
      {"interval", c.interval},
      {"window", c.decay > 0.0 ? json(nullptr) : json(c.window)},
      {"decay", c.decay},
      {"layers_per_step", c.layers_per_step},
      {"poll_steps", c.poll_steps},
      {"start", c.start_static ? "static" : "contiguous"},
      {"policy_ms", c.policy_ms < 0 ? json("measured") : json(c.policy_ms)},
      {"policy_steps", c.policy_steps < 0 ? json("from policy time") : json(c.policy_steps)},
      {"threshold", c.options.threshold},
      {"max_transfers", c.options.max_transfers},
      {"cost",
       {{"token_us", c.cost.token_us},
        {"layer_us", c.cost.layer_us},
        {"expert_mb", c.cost.expert_mb},
        {"intra_gbps", c.cost.intra_gbps},
        {"inter_gbps", c.cost.inter_gbps}}},
      {"switch_at", c.switch_at},
      {"switch_blend", c.switch_blend},
      {"recover_window", c.recover_window},
      {"recover_tol", c.recover_tol},
  };
  j["wall_s"] = r.wall_s;
  j["trace_memory_bytes"] = r.peak_window_bytes;
  json pols = json::array();
  for (const PolicyResult& p : r.policies) {
    json ev = json::array();
    for (const RebalanceEvent& e : p.events)
      ev.push_back({{"decided", e.decided},
                    {"first_commit", e.first_commit},
                    {"last_commit", e.last_commit},
                    {"layers_changed", e.layers_changed},
                    {"transfers", e.transfers},
                    {"transfer_ms", e.transfer_ms},
                    {"policy_ms", e.policy_ms},
                    {"policy_steps", e.policy_steps}});
    json rec = json::array();
    for (std::int64_t v : p.recover_steps) rec.push_back(v < 0 ? json(nullptr) : json(v));
    pols.push_back({{"label", p.spec.label},
                    {"policy", p.spec.policy},
                    {"mode", mode_name(p.spec.mode)},
                    {"imbalance",
                     {{"mean", p.mean_imbalance},
                      {"p50", p.p50_imbalance},
                      {"p99", p.p99_imbalance},
                      {"max", p.max_imbalance}}},
                    {"mean_step_ms", p.mean_step_ms},
                    {"mean_compute_ms", p.mean_compute_ms},
                    {"policy_calls", p.policy_calls},
                    {"rebalances", p.rebalances},
                    {"skipped_gathers", p.skipped},
                    {"transfers", p.transfers},
                    {"bytes", p.bytes},
                    {"stall_ms", p.stall_ms},
                    {"policy_wall_ms", p.policy_wall_ms},
                    {"recover_steps", rec},
                    {"events", ev},
                    {"series", {{"imbalance", p.imbalance}, {"step_ms", p.step_ms}}}});
  }
  j["policies"] = pols;
  return j.dump(1);
}

}  // namespace swiftbalancer::replay
