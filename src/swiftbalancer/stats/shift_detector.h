// ShiftDetector: decides, from a cheap and frequent imbalance signal, when the load has shifted
// away from what the placement in service was built for, so that a rebalance can start early.
// Shared by the runtime (Balancer, on all-gathered per-rank totals) and replay (which models it),
// so that both follow one rule.
//
// The signal: for each layer, the token totals of every rank since the last check, reduced to
// max / mean over ranks (1 = perfectly balanced); the level is the mean over layers with load.
//
// The rule (all in units of the reference level, the first level observed after
// reset_reference(): the runtime resets it when a rebalance cycle ends, so the reference is the
// imbalance the last rebalance reached; except when that first level already exceeds
// trigger_ratio x the previous reference: the load shifted as the cycle ended, and taking it as
// the reference would hide the shift, so the previous reference stays and the rule below
// applies to that level):
//   - fire when the level exceeds trigger_ratio x reference, the detector is armed, and at least
//     min_gap_steps passed since it last fired (a noisy load cannot make it flap);
//   - after firing it is disarmed until the level falls below rearm_ratio x reference
//     (hysteresis), or until the reference is reset.
// Deterministic: the same observations give the same decisions (every rank observes the same
// all-gathered signal, so every rank decides alike).
//
// Thread-safety: none; one owner (the serving thread, or one replay simulation).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace swiftbalancer {

// Shift detection's settings, one struct for the runtime (BalancerConfig::shift) and replay
// (ReplayConfig::shift). The detector reads the first three; the step schedule
// (runtime/cycle_schedule.h) the rest.
struct ShiftConfig {
  double trigger_ratio = 1.3;        // fire above this x the reference level (> 1)
  double rearm_ratio = 1.1;          // re-arm below this x the reference (1 <= rearm < trigger)
  std::int64_t min_gap_steps = 100;  // at least this many steps between two firings (>= 0)
  // Steps between two checks (an all-gather of one int64 per layer per rank); 0: detection off.
  int check_steps = 0;
  // Layers whose signal at the last check is under this are not moved (0: every changed layer).
  double skip_below = 0.0;
  // Layers committed per step by a cycle a shift started (0: the normal layers per step).
  int layers_per_step = 0;
  // Throws InputError naming the first field out of range ("shift.trigger_ratio ...").
  void validate() const;
};

// The per-layer signal of one check. rank_totals: [ranks][layers] token totals, rank-major (the
// layout of an all-gather of one value per layer from every rank). per_layer[l] is max / mean
// over ranks (0 for a layer without load); level is the mean of per_layer over loaded layers
// (1 when no layer has load). Throws InputError when the size is not ranks x layers.
struct ShiftSignal {
  std::vector<double> per_layer;
  double level = 1.0;
};
ShiftSignal shift_signal(std::span<const std::int64_t> rank_totals, int ranks, int layers);
// Same from double totals (replay's modelled loads), [ranks][layers].
ShiftSignal shift_signal(std::span<const double> rank_totals, int ranks, int layers);

// Layers to move, from the ones whose placement changes (`changed`, any order): those whose
// signal is at least skip_below, worst first (ties by layer index). skip_below <= 0 keeps every
// layer. An empty signal keeps `changed` as it is.
std::vector<int> order_layers(std::span<const int> changed, std::span<const double> per_layer,
                              double skip_below);

class ShiftDetector {
 public:
  explicit ShiftDetector(ShiftConfig cfg = {});

  // The next observed level becomes the reference; re-arms.
  void reset_reference();
  // One check at `step`. Returns true when it fires. The caller starts an early cycle, and
  // pre-empts a cycle in flight (it was decided on the load that just went away).
  bool observe(std::int64_t step, double level);

  double reference() const { return reference_; }  // 0 while waiting for one
  bool armed() const { return armed_; }
  std::int64_t fired() const { return fired_; }  // how many times it fired

 private:
  ShiftConfig cfg_;
  double reference_ = 0.0;
  double previous_ = 0.0;  // the reference before the last reset (0: none)
  bool armed_ = true;
  bool has_fired_ = false;
  std::int64_t last_fire_ = 0;
  std::int64_t fired_ = 0;
};

}  // namespace swiftbalancer
