#include "swiftbalancer/demo/demo_workload.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>
#include <random>
#include <string>

#include "swiftbalancer/core/splitmix.h"
#include "swiftbalancer/core/status.h"

namespace swiftbalancer {
namespace {

std::uint64_t mix(std::uint64_t x) {
  return splitmix64_hash(x);
}
double unit(std::uint64_t h) {
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

// A derangement of [0, n) (no fixed point; n >= 2) drawn from `key`: a shuffle, redrawn until it
// has no fixed point (about e ~ 2.7 draws on average; deterministic in key).
std::vector<int> derangement(int n, std::uint64_t key) {
  std::vector<int> perm(static_cast<std::size_t>(n));
  std::mt19937_64 rng(key);
  for (;;) {
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    bool fixed = false;
    for (int i = 0; i < n && !fixed; ++i) fixed = perm[static_cast<std::size_t>(i)] == i;
    if (!fixed) return perm;
  }
}

}  // namespace

Workload::Workload(WorkloadSpec spec) : spec_(std::move(spec)) {
  const auto& s = spec_;
  if (s.layers < 1 || s.experts < 2 || s.ranks < 1 || s.tokens_per_rank < 1)
    throw InputError("workload: layers, ranks and tokens must be positive and experts >= 2");
  if (s.topk < 1 || s.topk > s.experts) throw InputError("workload: topk must be in [1, experts]");
  if (s.drift_period < 1 || s.drift_amplitude < 0.0 || s.drift_amplitude >= 1.0)
    throw InputError("workload: drift period must be positive and amplitude in [0, 1)");
  if (s.trace && (s.trace->layers() != s.layers || s.trace->experts() != s.experts))
    throw InputError("workload: trace shape does not match layers x experts");
  // Each switch keeps a copy of the base (layers x experts doubles): a bounded number of them.
  if (s.switch_at.size() > static_cast<std::size_t>(kMaxSwitches))
    throw InputError("workload: at most " + std::to_string(kMaxSwitches) + " switches, got " +
                     std::to_string(s.switch_at.size()));
  for (std::size_t j = 0; j < s.switch_at.size(); ++j) {
    if (s.switch_at[j] < 1)
      throw InputError("workload: switch step " + std::to_string(s.switch_at[j]) + " must be >= 1");
    if (j > 0 && s.switch_at[j] <= s.switch_at[j - 1])
      throw InputError("workload: switch steps must be strictly increasing (" +
                       std::to_string(s.switch_at[j - 1]) + ", then " +
                       std::to_string(s.switch_at[j]) + ")");
  }
  base_.assign(1, std::vector<std::vector<double>>(
                      static_cast<std::size_t>(s.layers),
                      std::vector<double>(static_cast<std::size_t>(s.experts))));
  for (int l = 0; l < s.layers; ++l) {
    auto& b = base_[0][static_cast<std::size_t>(l)];
    if (s.trace && s.trace->layer_total(l) > 0.0) {
      const auto row = s.trace->row(l);
      std::copy(row.begin(), row.end(), b.begin());
    } else if (s.trace) {
      std::fill(b.begin(), b.end(), 1.0);
    } else {
      std::vector<int> perm(static_cast<std::size_t>(s.experts));
      std::iota(perm.begin(), perm.end(), 0);
      std::mt19937_64 rng(mix(s.seed * 1000003 + static_cast<std::uint64_t>(l)));
      std::shuffle(perm.begin(), perm.end(), rng);
      for (int i = 0; i < s.experts; ++i)
        b[static_cast<std::size_t>(perm[static_cast<std::size_t>(i)])] =
            1.0 / std::pow(i + 1.0, s.skew);
    }
  }
  // Segment j >= 1: expert e takes the base weight of pi(e), pi a derangement per (seed, j, l).
  for (std::size_t j = 1; j <= s.switch_at.size(); ++j) {
    auto seg = base_[0];
    for (int l = 0; l < s.layers; ++l) {
      const auto pi = derangement(
          s.experts, mix(mix(s.seed ^ 0x5317C4u) + j * 1000003 + static_cast<std::uint64_t>(l)));
      for (int e = 0; e < s.experts; ++e)
        seg[static_cast<std::size_t>(l)][static_cast<std::size_t>(e)] =
            base_[0][static_cast<std::size_t>(l)][static_cast<std::size_t>(pi[e])];
    }
    base_.push_back(std::move(seg));
  }
}

int Workload::segment(int step) const {
  const auto& sw = spec_.switch_at;
  return static_cast<int>(std::upper_bound(sw.begin(), sw.end(), step) - sw.begin());
}

void Workload::distribution(int step, int layer, std::vector<double>& p) const {
  const auto& b = base_[static_cast<std::size_t>(segment(step))][static_cast<std::size_t>(layer)];
  p.resize(b.size());
  const double E = static_cast<double>(b.size());
  double total = 0.0;
  for (std::size_t e = 0; e < b.size(); ++e) {
    const double phase =
        static_cast<double>(step) / spec_.drift_period + static_cast<double>(e) / E;
    p[e] = b[e] * (1.0 + spec_.drift_amplitude * std::sin(2.0 * std::numbers::pi * phase));
    total += p[e];
  }
  for (double& v : p) v /= total;
}

void Workload::route(int step, int layer, int rank, std::span<std::int32_t> experts,
                     std::span<float> gates) const {
  std::vector<double> p;
  distribution(step, layer, p);
  std::vector<double> cdf(p.size());
  std::partial_sum(p.begin(), p.end(), cdf.begin());
  const int T = spec_.tokens_per_rank, K = spec_.topk, E = spec_.experts;
  const std::uint64_t key = mix(spec_.seed ^ mix((static_cast<std::uint64_t>(step) << 20) ^
                                                 static_cast<std::uint64_t>(layer)));
  const double offset = unit(key);
  // Stratified over every token of the step (all ranks): token g gets stratum (g * a) mod N, a
  // multiplier coprime to N that scatters neighbouring tokens over the distribution.
  const std::uint64_t N = static_cast<std::uint64_t>(T) * spec_.ranks;
  std::uint64_t a = (N * 5) / 8 + 1;
  while (std::gcd(a, N) != 1) ++a;
  for (int i = 0; i < T; ++i) {
    const std::uint64_t g = static_cast<std::uint64_t>(rank) * T + i;
    const double u = (static_cast<double>((g * a) % N) + offset) / static_cast<double>(N);
    auto* ex = experts.data() + static_cast<std::size_t>(i) * K;
    for (int k = 0; k < K; ++k) {
      const double uk = std::fmod(u + k * 0.6180339887498949, 1.0);
      int e =
          static_cast<int>(std::upper_bound(cdf.begin(), cdf.end(), uk * cdf.back()) - cdf.begin());
      e = std::min(e, E - 1);
      while (std::find(ex, ex + k, e) != ex + k) e = (e + 1) % E;  // top-k experts are distinct
      ex[k] = e;
    }
    // Gates: the first expert weighs most; they sum to 1.
    const double h = unit(mix(key ^ g));
    float rest = 1.0f;
    for (int k = 0; k < K; ++k) {
      const float gk = (k + 1 == K) ? rest : rest * static_cast<float>(0.55 + 0.3 * h);
      gates[static_cast<std::size_t>(i) * K + k] = gk;
      rest -= gk;
    }
  }
}

void Workload::hidden(int step, int rank, int hidden, std::span<float> x) const {
  const std::uint64_t key = mix(spec_.seed * 7 + (static_cast<std::uint64_t>(step) << 16) + rank);
  for (std::size_t i = 0;
       i < x.size() && i < static_cast<std::size_t>(spec_.tokens_per_rank) * hidden; ++i)
    x[i] = static_cast<float>(2.0 * unit(mix(key ^ (i * 0x9E37ull))) - 1.0);
}

}  // namespace swiftbalancer
