#include "swiftbalancer/runtime/internal/load_accounting.h"

#include <algorithm>

namespace swiftbalancer {

LoadAccounting::LoadAccounting(const Topology& topo, const Placement& initial, int window_intervals,
                               double window_decay)
    : topo_(topo),
      recorder_(initial.layers(), topo.slots_per_rank),
      window_(initial.layers(), initial.experts(), window_intervals, window_decay),
      interval_start_(initial),
      carry_start_(initial),
      interval_load_(initial.layers(), initial.experts()),
      window_intervals_(window_intervals),
      window_decay_(window_decay) {
  const std::size_t n =
      static_cast<std::size_t>(initial.layers()) * static_cast<std::size_t>(topo.slots_per_rank);
  const auto ranks = static_cast<std::size_t>(topo.ranks);
  carry_.assign(n, 0);
  send_.assign(2 * n, 0);
  gathered_.assign(2 * n * ranks, 0);
  current_all_.assign(n * ranks, 0);
  carry_all_.assign(n * ranks, 0);
  mark_.assign(static_cast<std::size_t>(initial.layers()), 0);
  pending_.assign(mark_.size(), 0);
  totals_.assign(mark_.size(), 0);
}

// Counts of the layer since the last gather: still recorded, or carried aside at a commit.
std::int64_t LoadAccounting::layer_sum(int layer) const {
  std::int64_t sum = 0;
  for (std::int64_t v : recorder_.layer(layer)) sum += v;
  const std::size_t slots = static_cast<std::size_t>(topo_.slots_per_rank);
  const std::int64_t* c = carry_.data() + static_cast<std::size_t>(layer) * slots;
  for (std::size_t s = 0; s < slots; ++s) sum += c[s];
  return sum;
}

std::span<const std::int64_t> LoadAccounting::take_layer_totals() {
  for (std::size_t l = 0; l < totals_.size(); ++l) {
    const std::int64_t now = layer_sum(static_cast<int>(l));
    totals_[l] = pending_[l] + now - mark_[l];
    pending_[l] = 0;
    mark_[l] = now;
  }
  return totals_;
}

void LoadAccounting::drop_interval(const Placement& in_service) {
  pending_gather_.reset();
  for (std::size_t l = 0; l < mark_.size(); ++l) {
    pending_[l] += layer_sum(static_cast<int>(l)) - mark_[l];
    mark_[l] = 0;
  }
  recorder_.clear();
  std::fill(carry_.begin(), carry_.end(), 0);
  interval_start_ = in_service;
  window_ = LoadWindow(interval_load_.layers(), interval_load_.experts(), window_intervals_,
                       window_decay_);
}

void LoadAccounting::carry_layer(int layer) {
  const auto counts = recorder_.layer(layer);
  std::int64_t* c = carry_.data() + static_cast<std::size_t>(layer) * counts.size();
  for (std::size_t s = 0; s < counts.size(); ++s) c[s] += counts[s];
  recorder_.clear_layer(layer);
}

Status LoadAccounting::gather(Transport& transport, const Placement& in_service, Millis timeout) {
  start_gather(transport, in_service, timeout);
  return finish_gather();
}

void LoadAccounting::start_gather(Transport& transport, const Placement& in_service,
                                  Millis timeout) {
  if (pending_gather_) throw InternalError("a gather started while another is in flight");
  const std::size_t n = carry_.size();
  std::copy(recorder_.all().begin(), recorder_.all().end(), send_.begin());
  std::copy(carry_.begin(), carry_.end(), send_.begin() + static_cast<std::ptrdiff_t>(n));
  for (std::size_t l = 0; l < mark_.size(); ++l) {
    pending_[l] += layer_sum(static_cast<int>(l)) - mark_[l];
    mark_[l] = 0;
  }
  recorder_.clear();
  std::fill(carry_.begin(), carry_.end(), 0);
  // The counts taken were recorded under in_service, the carried ones under the placement of
  // the interval's start; counts recorded from here on belong to the next interval.
  carry_start_ = interval_start_;
  interval_start_ = in_service;
  pending_gather_ = transport.start_all_gather(send_, timeout);
}

Status LoadAccounting::finish_gather() {
  if (!pending_gather_) throw InternalError("finish_gather without a started gather");
  const Status s = pending_gather_->wait(gathered_);
  pending_gather_.reset();
  if (!s.ok()) return s;
  const std::size_t n = carry_.size();
  for (int r = 0; r < topo_.ranks; ++r) {
    const auto* block = gathered_.data() + 2 * n * static_cast<std::size_t>(r);
    const auto at = static_cast<std::ptrdiff_t>(n * static_cast<std::size_t>(r));
    std::copy(block, block + n, current_all_.begin() + at);
    std::copy(block + n, block + 2 * n, carry_all_.begin() + at);
  }
  for (int l = 0; l < interval_load_.layers(); ++l) {
    auto row = interval_load_.row(l);
    std::fill(row.begin(), row.end(), 0.0);
  }
  fold_slot_counts_into(current_all_, interval_start_, topo_, interval_load_);
  fold_slot_counts_into(carry_all_, carry_start_, topo_, interval_load_);
  window_.push(interval_load_);
  return Status::Ok();
}

}  // namespace swiftbalancer
