// The demo's token stream: per step, rank and layer, each token's top-k experts and gates, drawn
// from a skewed distribution that drifts over time. Deterministic in (seed, step, layer, rank).
//
// Distribution of layer l at step t: base_l(e) * (1 + amplitude * sin(2 pi (t / period + e / E))),
// normalised. base_l is Zipf(skew) over a per-layer permutation of the experts, or the layer's
// row of a real load file (a trace) when one is given. Tokens are drawn by stratified sampling
// over all ranks' tokens of the step, so per-expert counts follow the distribution to within
// one token and the measured imbalance reflects placement, not sampling noise.
//
// Switches (switch_at, empty by default: the load above exactly): from step switch_at[j] on
// (1-based steps, like the demo's), base_l is replaced by base_l o pi_{j,l}, i.e. expert e gets
// the base weight of expert pi_{j,l}(e), where pi_{j,l} is a derangement of the experts drawn from
// (seed, j, layer): every expert's weight moves to another expert, so the hot experts become
// different ones while the shape of the distribution (skew, drift) stays the same. Each switch's
// permutation is relative to the original base, not to the previous switch.
// Thread-safety: const methods are safe to call concurrently.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "swiftbalancer/core/load_matrix.h"

namespace swiftbalancer {

struct WorkloadSpec {
  int layers = 6;
  int experts = 32;
  int topk = 2;
  int ranks = 4;
  int tokens_per_rank = 64;
  double skew = 1.8;             // Zipf exponent of the built-in distribution
  int drift_period = 1000;       // steps per full drift cycle
  double drift_amplitude = 0.3;  // relative swing of each expert's weight
  std::uint64_t seed = 1;
  // Base distribution per layer (rows must match layers x experts; zero rows are made uniform).
  std::optional<LoadMatrix> trace;
  // Steps (1-based) from which the load switches to the next permutation of the base; strictly
  // increasing, each >= 1, at most Workload::kMaxSwitches. Empty: no switch.
  std::vector<int> switch_at;
};

class Workload {
 public:
  static constexpr int kMaxSwitches = 64;
  explicit Workload(WorkloadSpec spec);  // throws InputError on bad sizes

  const WorkloadSpec& spec() const { return spec_; }
  // Switches in force at `step`: 0 before the first switch, j from switch_at[j - 1] on.
  int segment(int step) const;
  // Normalised expert probabilities of `layer` at `step`.
  void distribution(int step, int layer, std::vector<double>& p) const;
  // experts and gates: [tokens_per_rank][topk]; a token's experts are distinct.
  void route(int step, int layer, int rank, std::span<std::int32_t> experts,
             std::span<float> gates) const;
  // Initial hidden state of this rank's tokens: [tokens_per_rank][hidden], values in [-1, 1].
  void hidden(int step, int rank, int hidden, std::span<float> x) const;

 private:
  WorkloadSpec spec_;
  // [segment][layer][expert]: segment 0 the base, segment j the base after the j-th switch.
  std::vector<std::vector<std::vector<double>>> base_;
};

}  // namespace swiftbalancer
