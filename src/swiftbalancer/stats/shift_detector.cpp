#include "swiftbalancer/stats/shift_detector.h"

#include <algorithm>
#include <string>

#include "swiftbalancer/core/status.h"

namespace swiftbalancer {
namespace {

template <typename T>
ShiftSignal signal_of(std::span<const T> totals, int ranks, int layers) {
  if (ranks <= 0 || layers <= 0 ||
      totals.size() != static_cast<std::size_t>(ranks) * static_cast<std::size_t>(layers))
    throw InputError("shift signal: " + std::to_string(totals.size()) + " totals for " +
                     std::to_string(ranks) + " ranks x " + std::to_string(layers) + " layers");
  ShiftSignal out;
  out.per_layer.assign(static_cast<std::size_t>(layers), 0.0);
  double sum = 0.0;
  int loaded = 0;
  for (int l = 0; l < layers; ++l) {
    double mx = 0.0, tot = 0.0;
    for (int r = 0; r < ranks; ++r) {
      const auto v = static_cast<double>(totals[static_cast<std::size_t>(r) * layers + l]);
      mx = std::max(mx, v);
      tot += v;
    }
    if (tot <= 0.0) continue;
    out.per_layer[static_cast<std::size_t>(l)] = mx * ranks / tot;
    sum += out.per_layer[static_cast<std::size_t>(l)];
    ++loaded;
  }
  out.level = loaded ? sum / loaded : 1.0;
  return out;
}

}  // namespace

void ShiftConfig::validate() const {
  // Written so that NaN fails: every comparison with NaN is false.
  if (check_steps < 0) throw InputError("shift.check_steps must not be negative");
  if (!(trigger_ratio > 1.0)) throw InputError("shift.trigger_ratio must be > 1");
  if (!(rearm_ratio >= 1.0 && rearm_ratio < trigger_ratio))
    throw InputError("shift.rearm_ratio must be in [1, shift.trigger_ratio)");
  if (min_gap_steps < 0) throw InputError("shift.min_gap_steps must not be negative");
  if (!(skip_below >= 0.0)) throw InputError("shift.skip_below must not be negative");
  if (layers_per_step < 0) throw InputError("shift.layers_per_step must not be negative");
}

ShiftSignal shift_signal(std::span<const std::int64_t> rank_totals, int ranks, int layers) {
  return signal_of(rank_totals, ranks, layers);
}

ShiftSignal shift_signal(std::span<const double> rank_totals, int ranks, int layers) {
  return signal_of(rank_totals, ranks, layers);
}

std::vector<int> order_layers(std::span<const int> changed, std::span<const double> per_layer,
                              double skip_below) {
  std::vector<int> out(changed.begin(), changed.end());
  if (per_layer.empty()) return out;
  auto sig = [&](int l) {
    return l >= 0 && static_cast<std::size_t>(l) < per_layer.size()
               ? per_layer[static_cast<std::size_t>(l)]
               : 0.0;
  };
  if (skip_below > 0.0)
    out.erase(std::remove_if(out.begin(), out.end(), [&](int l) { return sig(l) < skip_below; }),
              out.end());
  // Worst first; the layer index breaks ties so that every rank orders alike.
  std::sort(out.begin(), out.end(), [&](int a, int b) {
    const double sa = sig(a), sb = sig(b);
    return sa != sb ? sa > sb : a < b;
  });
  return out;
}

ShiftDetector::ShiftDetector(ShiftConfig cfg) : cfg_(cfg) {
  cfg_.validate();
}

void ShiftDetector::reset_reference() {
  if (reference_ > 0.0) previous_ = reference_;
  reference_ = 0.0;
  armed_ = true;
}

bool ShiftDetector::observe(std::int64_t step, double level) {
  if (reference_ <= 0.0) {
    if (!(previous_ > 0.0 && level > cfg_.trigger_ratio * previous_)) {
      reference_ = level;
      return false;
    }
    reference_ = previous_;  // shifted as the cycle ended: judge this level against the old one
  }
  if (!armed_) {
    if (level < cfg_.rearm_ratio * reference_) armed_ = true;
    return false;
  }
  if (level <= cfg_.trigger_ratio * reference_) return false;
  if (has_fired_ && step - last_fire_ < cfg_.min_gap_steps) return false;
  armed_ = false;
  has_fired_ = true;
  last_fire_ = step;
  ++fired_;
  return true;
}

}  // namespace swiftbalancer
