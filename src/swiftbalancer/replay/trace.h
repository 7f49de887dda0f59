// Per-step expert-count traces [steps][layers][experts]: synthetic base distributions, a seeded
// sampler that switches or blends between them over time, and streaming sources for replay.
//
// Sampling model (one step, one layer): every token picks exactly k distinct experts, expert e
// with inclusion probability pi_e = k * w_e / sum(w) (capped at 1, the excess spread over the
// others). It is done exactly and without a per-token loop by systematic sampling: lay the
// experts, in a fresh random order each step, end to end on [0, k) with lengths pi_e; a token
// draws u in [0, 1) and picks the experts covering u, u+1, ..., u+k-1 (distinct because
// pi_e <= 1). The fractional parts of the boundaries cut [0, 1) into at most E pieces; the tokens
// per piece are one multinomial draw (sequential conditional binomials), and an expert's count is
// the number of tokens in its arc. Each step's counts sum to exactly tokens * k; each count is
// Binomial(tokens, pi_e); the random order per step removes the correlation between neighbours.
//
// Ownership and threads: all types are plain values or single-owner objects; not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "swiftbalancer/core/load_matrix.h"
#include "swiftbalancer/io/npy.h"
#include "swiftbalancer/replay/rng.h"

namespace swiftbalancer::replay {

// The built-in base distribution, calibrated to DeepSeek-V3 (see docs/replay.md): per layer, the
// expert weights are lognormal quantiles exp(sigma * Phi^-1((i + 0.5) / E)) with sigma drawn per
// layer in [0.66, 0.84] (max/mean 5.4-8.0, coefficient of variation 0.72-0.98), assigned to the
// experts in a per-layer random order so that the hottest experts differ across layers.
// `workload` selects an independent set of orders (and sigmas): workload 1 is a different
// workload from workload 0 on the same model. Deterministic in (layers, experts, seed, workload).
LoadMatrix synthetic_base(int layers, int experts, std::uint64_t seed, int workload);

// Shape figures of one layer's load (the calibration targets).
struct LayerShape {
  bool has_load = false;
  double max_over_mean = 0.0;
  double cv = 0.0;   // population standard deviation / mean
  int hottest = -1;  // lowest id among the maxima
};
LayerShape layer_shape(std::span<const double> load);

// Removes the layers that are all zero in every base (DeepSeek's dense layers 0-2 in SGLang
// dumps). Bases must share their shape (throws InputError).
void drop_zero_layers(std::vector<LoadMatrix>& bases);

struct TraceSpec {
  std::int64_t steps = 1000;
  std::int64_t tokens = 4096;  // tokens per step (each counted top_k times)
  int top_k = 8;
  std::uint64_t seed = 1;
  // Base distributions, in the order the trace visits them (at least one).
  std::vector<LoadMatrix> bases;
  // Step at which the trace leaves base i for base i + 1: bases.size() - 1 ascending entries in
  // (0, steps]. Empty with several bases: evenly spaced (steps * i / bases.size()).
  std::vector<std::int64_t> switch_at;
  // Steps of linear blending after each switch point: at step s + j (0 <= j <= blend) the
  // inclusion probabilities are (1 - j/blend) * old + (j/blend) * new. 0 switches at once.
  std::int64_t blend = 0;
};

// Checks sizes, shapes, switch points and that every loaded layer has at least top_k experts with
// load; fills in evenly spaced switch points. Throws InputError naming the problem.
void finalize_spec(TraceSpec& spec);

// Streams the trace of a (finalized) spec, one step at a time, in order.
class TraceGenerator {
 public:
  explicit TraceGenerator(TraceSpec spec);  // calls finalize_spec
  int layers() const { return layers_; }
  int experts() const { return experts_; }
  std::int64_t steps() const { return spec_.steps; }
  std::int64_t next_step() const { return step_; }
  const TraceSpec& spec() const { return spec_; }
  // Writes step next_step()'s counts [layers][experts] into out and advances. Throws past the end.
  void next(std::span<std::int64_t> out);

 private:
  void sample_layer(const double* pi, std::int64_t* out);

  TraceSpec spec_;
  int layers_ = 0, experts_ = 0;
  std::vector<std::vector<double>> pi_;  // per base, [layers][experts] inclusion probabilities
  std::vector<double> mixed_;            // one layer's blended probabilities
  Rng rng_;
  std::int64_t step_ = 0;
  // Sampler workspace (reused, so a step allocates nothing).
  std::vector<std::int32_t> perm_, pos_;
  std::vector<double> cum_, frac_;
  std::vector<std::pair<double, std::int32_t>> sorted_;
  std::vector<std::int64_t> prefix_;
};

// Inclusion probabilities of one layer: k * w / sum(w), capped at 1 with the excess spread
// proportionally over the uncapped experts. All zero when the layer has no load.
std::vector<double> inclusion_probabilities(std::span<const double> weights, int k);

// Writes a whole trace to .npy (int64 [steps][layers][experts]), streaming. `progress` (may be
// empty) is called with the number of steps written.
void write_trace_npy(const std::string& path, TraceGenerator& gen,
                     const std::function<void(std::int64_t)>& progress = {});

// A source of per-step counts for replay, read in order. Values are token-to-expert counts.
class TraceSource {
 public:
  virtual ~TraceSource() = default;
  virtual int layers() const = 0;
  virtual int experts() const = 0;
  virtual std::int64_t steps() const = 0;
  // Fills out ([layers][experts]) with the next step. Throws InputError past the end.
  virtual void next(std::span<double> out) = 0;
};

// Streams a 3-D .npy [steps][layers][experts] (any numeric dtype) one step at a time: memory is
// one step, whatever the file's length. Throws InputError on a missing file, another rank, or
// negative / non-finite counts (naming the step, layer and expert).
std::unique_ptr<TraceSource> open_npy_trace(const std::string& path);
// A trace file: npy (detect_load_format) streamed (open_npy_trace); any other per-step load file
// that read_load_steps reads (CSV "step,layer,expert,tokens", JSON [T][L][E]) held in memory, one
// step per step id (a file without a step axis is one step). Throws InputError.
std::unique_ptr<TraceSource> open_trace_file(const std::string& path);
// The parts one after the other; all must have the same layers and experts (throws InputError
// naming the part that differs).
std::unique_ptr<TraceSource> concat_traces(std::vector<std::unique_ptr<TraceSource>> parts);
// Generates on the fly.
std::unique_ptr<TraceSource> generated_trace(TraceSpec spec);
// Holds a whole trace in memory (tests, small cases). data.size() == steps * layers * experts.
std::unique_ptr<TraceSource> memory_trace(int layers, int experts, std::vector<double> data);

}  // namespace swiftbalancer::replay
