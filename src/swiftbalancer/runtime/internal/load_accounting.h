// LoadAccounting: from per-slot token counts to the load window the policy decides on.
//
// record() adds this rank's per-slot counts of a layer (the hot path). Every interval, gather()
// all-gathers the counts of every rank (each rank sends only its own slots), folds physical slots
// onto logical experts and pushes the interval's load into the window (sliding or decayed).
//
// A layer may commit a new placement in the middle of an interval (at most once per interval:
// cycles start only at a gather and never overlap). Its counts recorded so far belong to the old
// placement: carry_layer() moves them aside, and the gather folds them onto the placement that
// was in service at the start of the interval, so no interval loses a layer's load.
//
// A gather may be started at the end of one step and finished at the next (async mode: the
// all-gather runs during the forward in between): start_gather() takes the counts recorded so
// far and starts the collective, finish_gather() reads it and folds. The counts of the step in
// between belong to the next interval.
//
// Thread-safety: not thread-safe; the serving thread owns it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "swiftbalancer/core/load_matrix.h"
#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/core/topology.h"
#include "swiftbalancer/stats/recorder.h"
#include "swiftbalancer/stats/window.h"
#include "swiftbalancer/transport/transport.h"

namespace swiftbalancer {

class LoadAccounting {
 public:
  LoadAccounting(const Topology& topo, const Placement& initial, int window_intervals,
                 double window_decay);

  // Hot path: allocation-free; layer and size checked in debug builds.
  void record(int layer, std::span<const std::int64_t> slot_counts) {
    recorder_.record(layer, slot_counts);
  }
  // `layer` is about to commit a new placement: its counts so far are under the old one.
  void carry_layer(int layer);
  // All-gathers this interval's counts and pushes the folded load into the window; the counts
  // are cleared either way. On failure the interval's load is lost (reported by the caller).
  Status gather(Transport& transport, const Placement& in_service, Millis timeout);
  // gather() in two halves: the counts so far are taken (and cleared) and the collective
  // started now; finish_gather() waits for it (bounded by the timeout given here) and folds.
  void start_gather(Transport& transport, const Placement& in_service, Millis timeout);
  bool gather_started() const { return pending_gather_ != nullptr; }
  Status finish_gather();

  // This rank's token total of every layer since the last call (or since construction): the
  // shift signal's contribution, [layers]. Gathers do not lose counts from it.
  std::span<const std::int64_t> take_layer_totals();
  // The load shifted: forgets the window and the open interval's counts (local, no collective;
  // every rank does it at the same step). The next gather's interval is then the whole window.
  // The shift totals keep them. A started gather is dropped with them (never read).
  void drop_interval(const Placement& in_service);

  const LoadMatrix& window() const { return window_.sum(); }
  const Recorder& recorder() const { return recorder_; }

 private:
  Topology topo_;
  Recorder recorder_;
  LoadWindow window_;
  std::vector<std::int64_t> carry_;  // [layers][slots]: counts of layers committed this interval
  Placement interval_start_;         // placement in service when the interval began
  Placement carry_start_;            // a started gather's: the carried counts' placement
  std::unique_ptr<PendingCollective> pending_gather_;
  // Gather buffers, sized once: this rank's [counts | carry], everyone's, split per kind.
  std::vector<std::int64_t> send_, gathered_, current_all_, carry_all_;
  LoadMatrix interval_load_;
  int window_intervals_;
  double window_decay_;
  // Shift totals: per layer, counts since the gather already taken (mark_) and counts of
  // earlier intervals not taken yet (pending_).
  std::vector<std::int64_t> mark_, pending_, totals_;
  std::int64_t layer_sum(int layer) const;
};

}  // namespace swiftbalancer
