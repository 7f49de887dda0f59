#include "swiftbalancer/replay/trace.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>

#include "swiftbalancer/core/limits.h"
#include "swiftbalancer/core/status.h"
#include "swiftbalancer/io/load_io.h"

namespace swiftbalancer::replay {
namespace {

// Inverse of the standard normal CDF (Acklam's rational approximation, relative error < 1.2e-9;
// accurate enough to shape a distribution and fully deterministic).
double inverse_normal_cdf(double p) {
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,  -2.759285104469687e+02,
                             1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01, -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  const double plow = 0.02425;
  if (p < plow) {
    const double q = std::sqrt(-2 * std::log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - plow) return -inverse_normal_cdf(1 - p);
  const double q = p - 0.5, r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
         (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

void shuffle(std::vector<std::int32_t>& v, Rng& rng) {
  for (std::size_t i = v.size(); i > 1; --i) {
    const std::size_t j = rng.below(static_cast<std::uint32_t>(i));
    std::swap(v[i - 1], v[j]);
  }
}

}  // namespace

LoadMatrix synthetic_base(int layers, int experts, std::uint64_t seed, int workload) {
  if (layers <= 0 || experts <= 0)
    throw InputError("synthetic base needs positive layers and experts, got " +
                     std::to_string(layers) + " x " + std::to_string(experts));
  LoadMatrix out(layers, experts);
  std::vector<std::int32_t> order(static_cast<std::size_t>(experts));
  for (int l = 0; l < layers; ++l) {
    Rng rng(mix_seed(seed, static_cast<std::uint64_t>(workload), static_cast<std::uint64_t>(l)));
    const double sigma = 0.66 + 0.18 * rng.uniform();
    std::iota(order.begin(), order.end(), 0);
    shuffle(order, rng);
    auto row = out.row(l);
    for (int i = 0; i < experts; ++i)
      row[order[i]] = std::exp(sigma * inverse_normal_cdf((i + 0.5) / experts));
  }
  return out;
}

LayerShape layer_shape(std::span<const double> load) {
  LayerShape s;
  const double n = static_cast<double>(load.size());
  double total = 0.0, mx = -1.0;
  for (std::size_t e = 0; e < load.size(); ++e) {
    total += load[e];
    if (load[e] > mx) {
      mx = load[e];
      s.hottest = static_cast<int>(e);
    }
  }
  if (!(total > 0.0)) return LayerShape{};
  const double mean = total / n;
  double var = 0.0;
  for (double v : load) var += (v - mean) * (v - mean);
  s.has_load = true;
  s.max_over_mean = mx / mean;
  s.cv = std::sqrt(var / n) / mean;
  return s;
}

void drop_zero_layers(std::vector<LoadMatrix>& bases) {
  if (bases.empty()) return;
  const int L = bases[0].layers(), E = bases[0].experts();
  for (const LoadMatrix& b : bases)
    if (b.layers() != L || b.experts() != E)
      throw InputError("base distributions differ in shape: " + std::to_string(L) + " x " +
                       std::to_string(E) + " and " + std::to_string(b.layers()) + " x " +
                       std::to_string(b.experts()));
  std::vector<int> keep;
  for (int l = 0; l < L; ++l) {
    bool any = false;
    for (const LoadMatrix& b : bases) any = any || b.layer_has_load(l);
    if (any) keep.push_back(l);
  }
  if (keep.empty()) throw InputError("every layer of the base distributions is all zero");
  for (LoadMatrix& b : bases) {
    LoadMatrix kept(static_cast<int>(keep.size()), E);
    for (std::size_t i = 0; i < keep.size(); ++i) {
      auto src = b.row(keep[i]);
      std::copy(src.begin(), src.end(), kept.row(static_cast<int>(i)).begin());
    }
    b = std::move(kept);
  }
}

std::vector<double> inclusion_probabilities(std::span<const double> weights, int k) {
  const std::size_t n = weights.size();
  std::vector<double> pi(n, 0.0);
  std::vector<char> capped(n, 0);
  double budget = k;  // probability mass still to spread over the uncapped experts
  for (;;) {
    double free_total = 0.0;
    for (std::size_t e = 0; e < n; ++e)
      if (!capped[e]) free_total += weights[e];
    if (!(free_total > 0.0)) break;
    bool changed = false;
    for (std::size_t e = 0; e < n; ++e) {
      if (capped[e]) continue;
      pi[e] = budget * weights[e] / free_total;
      if (pi[e] > 1.0) changed = true;
    }
    if (!changed) break;
    // Cap every expert over 1 and spread the rest again (at most n rounds).
    for (std::size_t e = 0; e < n; ++e)
      if (!capped[e] && pi[e] >= 1.0) {
        capped[e] = 1;
        pi[e] = 1.0;
        budget -= 1.0;
      }
  }
  return pi;
}

void finalize_spec(TraceSpec& spec) {
  if (spec.steps <= 0)
    throw InputError("steps must be positive, got " + std::to_string(spec.steps));
  if (spec.tokens < 0) throw InputError("tokens must not be negative");
  if (spec.bases.empty()) throw InputError("a trace needs at least one base distribution");
  const int L = spec.bases[0].layers(), E = spec.bases[0].experts();
  if (spec.top_k <= 0 || spec.top_k > E)
    throw InputError("top-k must be in [1, " + std::to_string(E) + "], got " +
                     std::to_string(spec.top_k));
  for (std::size_t b = 0; b < spec.bases.size(); ++b) {
    const LoadMatrix& m = spec.bases[b];
    if (m.layers() != L || m.experts() != E)
      throw InputError("base " + std::to_string(b) + " is " + std::to_string(m.layers()) + " x " +
                       std::to_string(m.experts()) + ", base 0 is " + std::to_string(L) + " x " +
                       std::to_string(E));
    throw_if_error(m.validate());
    for (int l = 0; l < L; ++l) {
      const auto row = m.row(l);
      const auto positive = std::count_if(row.begin(), row.end(), [](double v) { return v > 0; });
      if (positive > 0 && positive < spec.top_k)
        throw InputError("base " + std::to_string(b) + ", layer " + std::to_string(l) + ": only " +
                         std::to_string(positive) + " experts have load, fewer than top-k " +
                         std::to_string(spec.top_k));
    }
  }
  const std::size_t switches = spec.bases.size() - 1;
  if (spec.switch_at.empty() && switches > 0) {
    for (std::size_t i = 1; i <= switches; ++i)
      spec.switch_at.push_back(spec.steps * static_cast<std::int64_t>(i) /
                               static_cast<std::int64_t>(spec.bases.size()));
  }
  if (spec.switch_at.size() != switches)
    throw InputError(std::to_string(spec.switch_at.size()) + " switch points for " +
                     std::to_string(spec.bases.size()) + " base distributions (need " +
                     std::to_string(switches) + ")");
  for (std::size_t i = 0; i < spec.switch_at.size(); ++i) {
    const std::int64_t s = spec.switch_at[i];
    if (s <= 0 || s > spec.steps)
      throw InputError("switch point " + std::to_string(s) + " is outside (0, " +
                       std::to_string(spec.steps) + "]");
    if (i > 0 && s <= spec.switch_at[i - 1])
      throw InputError("switch points must increase, got " + std::to_string(spec.switch_at[i - 1]) +
                       " then " + std::to_string(s));
  }
  if (spec.blend < 0) throw InputError("blend must not be negative");
}

TraceGenerator::TraceGenerator(TraceSpec spec) : spec_(std::move(spec)), rng_(0) {
  finalize_spec(spec_);
  layers_ = spec_.bases[0].layers();
  experts_ = spec_.bases[0].experts();
  rng_ = Rng(mix_seed(spec_.seed, 0x7472616365ULL));  // "trace"
  for (const LoadMatrix& b : spec_.bases) {
    std::vector<double> pi;
    pi.reserve(b.data().size());
    for (int l = 0; l < layers_; ++l) {
      const auto row = inclusion_probabilities(b.row(l), spec_.top_k);
      pi.insert(pi.end(), row.begin(), row.end());
    }
    pi_.push_back(std::move(pi));
  }
  const std::size_t E = static_cast<std::size_t>(experts_);
  mixed_.resize(E);
  perm_.resize(E);
  std::iota(perm_.begin(), perm_.end(), 0);
  pos_.resize(E + 1);
  cum_.resize(E + 1);
  frac_.resize(E + 1);
  sorted_.resize(E);
  prefix_.resize(E + 1);
}

void TraceGenerator::next(std::span<std::int64_t> out) {
  if (step_ >= spec_.steps) throw InputError("trace generator is past its last step");
  if (out.size() != static_cast<std::size_t>(layers_) * experts_)
    throw InputError("trace step buffer has the wrong size");
  // Which bases this step mixes: base i until switch_at[i], then a linear blend.
  std::size_t base = 0;
  while (base < spec_.switch_at.size() && step_ >= spec_.switch_at[base]) ++base;
  double a = 0.0;  // weight of `base` against base - 1 while blending
  bool blending = false;
  if (base > 0 && spec_.blend > 0) {
    const std::int64_t into = step_ - spec_.switch_at[base - 1];
    if (into < spec_.blend) {
      blending = true;
      a = static_cast<double>(into) / static_cast<double>(spec_.blend);
    }
  }
  const std::size_t E = static_cast<std::size_t>(experts_);
  for (int l = 0; l < layers_; ++l) {
    const double* pi = pi_[base].data() + static_cast<std::size_t>(l) * E;
    if (blending) {
      const double* prev = pi_[base - 1].data() + static_cast<std::size_t>(l) * E;
      for (std::size_t e = 0; e < E; ++e) mixed_[e] = (1.0 - a) * prev[e] + a * pi[e];
      pi = mixed_.data();
    }
    sample_layer(pi, out.data() + static_cast<std::size_t>(l) * E);
  }
  ++step_;
}

void TraceGenerator::sample_layer(const double* pi, std::int64_t* out) {
  const int E = experts_;
  const std::int64_t N = spec_.tokens;
  double total = 0.0;
  for (int e = 0; e < E; ++e) total += pi[e];
  if (!(total > 0.0) || N == 0) {
    std::fill(out, out + E, 0);
    return;
  }
  shuffle(perm_, rng_);
  // Boundaries of the arcs on [0, k): cum_[i] is where the i-th expert of the order starts.
  cum_[0] = 0.0;
  for (int i = 0; i < E; ++i) cum_[i + 1] = cum_[i] + pi[perm_[i]];
  cum_[E] = static_cast<double>(spec_.top_k);  // exact end, whatever the rounding
  for (int i = 0; i < E; ++i) {
    frac_[i] = cum_[i] - std::floor(cum_[i]);
    sorted_[i] = {frac_[i], i};
  }
  // Sorting by (fraction, index) makes ties deterministic; boundary E (at integer k) sits at 0
  // like boundary 0.
  std::sort(sorted_.begin(), sorted_.end());
  // Tokens per piece [sorted_[j], sorted_[j+1]) (the last one ends at 1): one multinomial draw.
  std::int64_t left = N;
  double mass_left = 1.0;
  prefix_[0] = 0;
  for (int j = 0; j < E; ++j) {
    const double hi = j + 1 < E ? sorted_[j + 1].first : 1.0;
    const double len = hi - sorted_[j].first;
    std::int64_t c;
    if (j + 1 == E || !(mass_left > len)) {
      c = left;  // the last piece takes the rest
    } else {
      c = rng_.binomial(left, len / mass_left);
    }
    left -= c;
    mass_left -= len;
    prefix_[j + 1] = prefix_[j] + c;
    pos_[sorted_[j].second] = j;
  }
  // prefix_[pos_[i]] = tokens with u below boundary i's fraction. Expert perm_[i] covers
  // [cum_[i], cum_[i+1]); wrapping past an integer adds a full turn of N tokens.
  for (int i = 0; i < E; ++i) {
    const std::int64_t lo = prefix_[pos_[i]];
    const std::int64_t hi = i + 1 < E ? prefix_[pos_[i + 1]] : 0;
    const double turns = std::floor(cum_[i + 1]) - std::floor(cum_[i]);
    out[perm_[i]] = hi - lo + N * static_cast<std::int64_t>(turns);
  }
}

void write_trace_npy(const std::string& path, TraceGenerator& gen,
                     const std::function<void(std::int64_t)>& progress) {
  const std::vector<std::int64_t> shape = {gen.steps() - gen.next_step(), gen.layers(),
                                           gen.experts()};
  NpyWriter writer(path, shape, NpyWriter::Dtype::kInt64);
  std::vector<std::int64_t> step(static_cast<std::size_t>(gen.layers()) * gen.experts());
  std::int64_t written = 0;
  while (gen.next_step() < gen.steps()) {
    gen.next(step);
    writer.append(std::span<const std::int64_t>(step));
    ++written;
    if (progress) progress(written);
  }
  writer.close();
}

namespace {

// Every dimension of a trace file, in 64 bits, against core/limits.h.
void check_trace_shape(const std::string& path, std::int64_t steps, std::int64_t layers,
                       std::int64_t experts) {
  if (steps > limits::kMaxTraceSteps || layers > limits::kMaxLayers ||
      experts > limits::kMaxExperts || layers * experts > limits::kMaxCells)
    throw InputError(path + ": trace shape [" + std::to_string(steps) + "][" +
                     std::to_string(layers) + "][" + std::to_string(experts) +
                     "] is beyond the limits (" + std::to_string(limits::kMaxTraceSteps) +
                     " steps, " + std::to_string(limits::kMaxLayers) + " layers, " +
                     std::to_string(limits::kMaxExperts) + " experts, " +
                     std::to_string(limits::kMaxCells) + " layers x experts)");
}

std::string count_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

class NpyTrace final : public TraceSource {
 public:
  explicit NpyTrace(const std::string& path) : path_(path), reader_(path) {
    const auto& shape = reader_.header().shape;
    if (shape.size() != 3)
      throw InputError(path + ": a trace must be a 3-D array [steps][layers][experts], got " +
                       std::to_string(shape.size()) + " dimensions");
    if (shape[0] <= 0 || shape[1] <= 0 || shape[2] <= 0)
      throw InputError(path + ": trace has an empty dimension");
    // Range-checked in 64 bits before narrowing: a dimension of 2^32+1 must not become 1.
    check_trace_shape(path, shape[0], shape[1], shape[2]);
    steps_ = shape[0];
    layers_ = static_cast<int>(shape[1]);
    experts_ = static_cast<int>(shape[2]);
  }
  int layers() const override { return layers_; }
  int experts() const override { return experts_; }
  std::int64_t steps() const override { return steps_; }
  void next(std::span<double> out) override {
    if (step_ >= steps_) throw InputError(path_ + ": read past the last step");
    if (out.size() != static_cast<std::size_t>(layers_) * experts_)
      throw InputError(path_ + ": step buffer has the wrong size");
    reader_.read(out);
    for (std::size_t i = 0; i < out.size(); ++i)
      if (!(out[i] >= 0.0) || !(out[i] <= limits::kMaxLoadValue))
        throw InputError(path_ + ": step " + std::to_string(step_) + ", layer " +
                         std::to_string(i / experts_) + ", expert " + std::to_string(i % experts_) +
                         ": count " + count_text(out[i]) +
                         " is negative, not finite or above the limit of 2^53 per cell");
    ++step_;
  }

 private:
  std::string path_;
  NpyReader reader_;
  std::int64_t steps_ = 0, step_ = 0;
  int layers_ = 0, experts_ = 0;
};

class GeneratedTrace final : public TraceSource {
 public:
  explicit GeneratedTrace(TraceSpec spec) : gen_(std::move(spec)) {
    buf_.resize(static_cast<std::size_t>(gen_.layers()) * gen_.experts());
  }
  int layers() const override { return gen_.layers(); }
  int experts() const override { return gen_.experts(); }
  std::int64_t steps() const override { return gen_.steps(); }
  void next(std::span<double> out) override {
    gen_.next(buf_);
    if (out.size() != buf_.size()) throw InputError("trace step buffer has the wrong size");
    for (std::size_t i = 0; i < buf_.size(); ++i) out[i] = static_cast<double>(buf_[i]);
  }

 private:
  TraceGenerator gen_;
  std::vector<std::int64_t> buf_;
};

class MemoryTrace final : public TraceSource {
 public:
  MemoryTrace(int layers, int experts, std::vector<double> data)
      : layers_(layers), experts_(experts), data_(std::move(data)) {
    const std::size_t per = static_cast<std::size_t>(layers) * experts;
    if (layers <= 0 || experts <= 0 || data_.empty() || data_.size() % per != 0)
      throw InputError("memory trace: data size " + std::to_string(data_.size()) +
                       " is not a positive multiple of layers x experts");
    for (double v : data_)
      if (!(v >= 0.0) || !(v <= limits::kMaxLoadValue))
        throw InputError("memory trace: counts must be finite, non-negative and at most 2^53");
    steps_ = static_cast<std::int64_t>(data_.size() / per);
  }
  int layers() const override { return layers_; }
  int experts() const override { return experts_; }
  std::int64_t steps() const override { return steps_; }
  void next(std::span<double> out) override {
    if (step_ >= steps_) throw InputError("memory trace: read past the last step");
    const std::size_t per = static_cast<std::size_t>(layers_) * experts_;
    if (out.size() != per) throw InputError("trace step buffer has the wrong size");
    std::copy_n(data_.begin() + static_cast<std::ptrdiff_t>(step_ * per), per, out.begin());
    ++step_;
  }

 private:
  int layers_, experts_;
  std::vector<double> data_;
  std::int64_t steps_ = 0, step_ = 0;
};

// Several sources one after the other (each of the same shape).
class ConcatTrace final : public TraceSource {
 public:
  explicit ConcatTrace(std::vector<std::unique_ptr<TraceSource>> parts) : parts_(std::move(parts)) {
    if (parts_.empty()) throw InputError("a trace needs at least one part");
    for (std::size_t i = 0; i < parts_.size(); ++i) {
      if (parts_[i]->layers() != parts_[0]->layers() ||
          parts_[i]->experts() != parts_[0]->experts())
        throw InputError(
            "trace part " + std::to_string(i + 1) + " has " + std::to_string(parts_[i]->layers()) +
            " layers x " + std::to_string(parts_[i]->experts()) + " experts, the first " +
            std::to_string(parts_[0]->layers()) + " x " + std::to_string(parts_[0]->experts()));
      steps_ += parts_[i]->steps();
    }
  }
  int layers() const override { return parts_[0]->layers(); }
  int experts() const override { return parts_[0]->experts(); }
  std::int64_t steps() const override { return steps_; }
  void next(std::span<double> out) override {
    while (part_ < parts_.size() && taken_ == parts_[part_]->steps()) {
      ++part_;
      taken_ = 0;
    }
    if (part_ == parts_.size()) throw InputError("trace: read past the last step");
    parts_[part_]->next(out);
    ++taken_;
  }

 private:
  std::vector<std::unique_ptr<TraceSource>> parts_;
  std::int64_t steps_ = 0;
  std::size_t part_ = 0;
  std::int64_t taken_ = 0;
};

}  // namespace

std::unique_ptr<TraceSource> open_trace_file(const std::string& path) {
  if (detect_load_format(path) == LoadFormat::kNpy) return open_npy_trace(path);
  // A per-step JSON or CSV dump: small enough to hold (read_load_steps bounds its size).
  const std::vector<LoadMatrix> steps = read_load_steps(path);
  const int L = steps.front().layers(), E = steps.front().experts();
  std::vector<double> data;
  data.reserve(steps.size() * static_cast<std::size_t>(L) * static_cast<std::size_t>(E));
  for (const LoadMatrix& m : steps) data.insert(data.end(), m.data().begin(), m.data().end());
  return memory_trace(L, E, std::move(data));
}

std::unique_ptr<TraceSource> concat_traces(std::vector<std::unique_ptr<TraceSource>> parts) {
  if (parts.size() == 1) return std::move(parts.front());
  return std::make_unique<ConcatTrace>(std::move(parts));
}

std::unique_ptr<TraceSource> open_npy_trace(const std::string& path) {
  return std::make_unique<NpyTrace>(path);
}
std::unique_ptr<TraceSource> generated_trace(TraceSpec spec) {
  return std::make_unique<GeneratedTrace>(std::move(spec));
}
std::unique_ptr<TraceSource> memory_trace(int layers, int experts, std::vector<double> data) {
  return std::make_unique<MemoryTrace>(layers, experts, std::move(data));
}

}  // namespace swiftbalancer::replay
