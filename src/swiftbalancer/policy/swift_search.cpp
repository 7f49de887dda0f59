#include "swiftbalancer/policy/internal/swift_search.h"

#include <algorithm>
#include <iterator>

namespace swiftbalancer::swift {

LayerSearch::LayerSearch(const Topology& topo, int experts)
    : topo_(topo), R_(topo.ranks), S_(topo.slots_per_rank), E_(experts) {
  const auto RE = static_cast<std::size_t>(R_) * E_;
  slot_.assign(static_cast<std::size_t>(R_) * S_, 0);
  start_.assign(slot_.size(), 0);
  multi_.reserve(E_);
  multi_at_.assign(E_, -1);
  pos_.assign(RE, -1);
  state_.assign(RE, 0);
  arrived_.assign(slot_.size(), 0);
  sorted_share_.resize(slot_.size());
  low_.resize(S_);
  m_arr_.resize(S_);
  a_slots_.resize(2 * S_);
  share_pos_.resize(slot_.size());
  arrived_slots_.resize(slot_.size());
  departed_.resize(slot_.size());
  cnt_.resize(E_);
  share_.assign(E_, 0.0);
  rise_.assign(E_, 0.0);
  hold_.resize(RE);
  w_.resize(E_);
  L_.resize(R_);
  order_.resize(R_);
  redundant_.reserve(slot_.size());
  sshare_.resize(slot_.size());
  by_share_.resize(slot_.size());
  shares_m_.assign(R_, 0);
  drop_m_.assign(R_, 0.0);
  holds_dm_.assign(R_, 0);
  cold_.resize(E_);
  cold_value_.resize(E_);
  arrivals_.assign(R_, 0);
  is_dirty_.assign(R_, 0);
  dirty_.reserve(R_);
}

void LayerSearch::reset(std::span<const ExpertId> start, std::span<const double> load) {
  // Clear only what the previous layer set (O(R*S), not O(R*E)).
  for (int p = 0; p < R_ * S_; ++p) {
    const auto row = static_cast<std::size_t>(p / S_) * E_;
    pos_[row + slot_[p]] = -1;
    state_[row + slot_[p]] = 0;
    state_[row + start_[p]] = 0;
  }
  std::copy(start.begin(), start.end(), slot_.begin());
  std::copy(start.begin(), start.end(), start_.begin());
  std::fill(cnt_.begin(), cnt_.end(), 0);
  std::fill(arrivals_.begin(), arrivals_.end(), 0);
  std::fill(arrived_.begin(), arrived_.end(), 0);
  std::copy(load.begin(), load.end(), w_.begin());
  for (int p = 0; p < R_ * S_; ++p) {
    const int r = p / S_;
    const ExpertId e = slot_[p];
    pos_[static_cast<std::size_t>(r) * E_ + e] = p % S_;
    state_[static_cast<std::size_t>(r) * E_ + e] = kHolds | kOrig;
    hold_[static_cast<std::size_t>(e) * R_ + cnt_[e]++] = r;
  }
  multi_.clear();
  for (int e = 0; e < E_; ++e) {
    multi_at_[e] = -1;
    if (cnt_[e] >= 2) {
      multi_at_[e] = static_cast<int>(multi_.size());
      multi_.push_back(e);
    }
  }
  for (int e = 0; e < E_; ++e)
    if (cnt_[e] > 0) refresh_expert(e);
  for (int p = 0; p < R_ * S_; ++p) by_share_[p] = p % S_;
  double total = 0.0;
  for (int r = 0; r < R_; ++r) {
    recompute_rank(r);
    total += L_[r];
  }
  mean_ = total / R_;
  // Minimum gain of a move: far above rounding, far below anything that matters.
  eps_ = 1e-9 * mean_;
  transfers_ = 0;
  for (int r = 0; r < R_; ++r) order_[r] = r;
  sort_ranks();
  for (int e = 0; e < E_; ++e) {
    cold_[e] = e;
    cold_value_[e] = w_[e] / (cnt_[e] + 1);
  }
  std::sort(cold_.begin(), cold_.end(), [&](ExpertId a, ExpertId b) {
    return cold_value_[a] < cold_value_[b] || (cold_value_[a] == cold_value_[b] && a < b);
  });
}

void LayerSearch::refresh_expert(ExpertId e) {
  share_[e] = w_[e] / cnt_[e];
  rise_[e] = cnt_[e] >= 2 ? w_[e] / (cnt_[e] - 1) - share_[e] : 0.0;
}

void LayerSearch::recompute_rank(int r) {
  double s = 0.0;
  for (int p = r * S_; p < (r + 1) * S_; ++p) {
    sshare_[p] = share(slot_[p]);
    s += sshare_[p];
  }
  L_[r] = s;
  if (!is_dirty_[r]) {
    is_dirty_[r] = 1;
    dirty_.push_back(r);
  }
  // Insertion sort of the rank's slots by share (ties: slot order); S is small.
  int* ord = &by_share_[static_cast<std::size_t>(r) * S_];
  const double* sh = &sshare_[static_cast<std::size_t>(r) * S_];
  for (int i = 1; i < S_; ++i) {
    const int k = ord[i];
    int j = i - 1;
    while (j >= 0 && (sh[ord[j]] > sh[k] || (sh[ord[j]] == sh[k] && ord[j] > k))) {
      ord[j + 1] = ord[j];
      --j;
    }
    ord[j + 1] = k;
  }
  double* sorted = &sorted_share_[static_cast<std::size_t>(r) * S_];
  int* q_of = &share_pos_[static_cast<std::size_t>(r) * S_];
  for (int i = 0; i < S_; ++i) {
    sorted[i] = sh[ord[i]];
    q_of[ord[i]] = i;
  }
}

bool LayerSearch::heavier(int a, int b) const {
  return L_[a] > L_[b] || (L_[a] == L_[b] && a < b);
}

void LayerSearch::sort_ranks() {
  // Full insertion sort (the start of a layer). Ties by rank id.
  for (int i = 1; i < R_; ++i) {
    const int r = order_[i];
    int j = i - 1;
    while (j >= 0 && heavier(r, order_[j])) {
      order_[j + 1] = order_[j];
      --j;
    }
    order_[j + 1] = r;
  }
  for (int r : dirty_) is_dirty_[r] = 0;
  dirty_.clear();
}

void LayerSearch::resort_dirty_ranks() {
  // Only the ranks whose load a move changed (dirty_) can be out of place: take them out (the
  // rest stays sorted), then put each back at its place by binary search. The order is the
  // unique one by (load descending, id ascending), the same as a full sort gives.
  if (dirty_.empty()) return;
  int n = 0;
  for (int i = 0; i < R_; ++i)
    if (!is_dirty_[order_[i]]) order_[n++] = order_[i];
  for (int r : dirty_) {
    is_dirty_[r] = 0;
    const auto at = std::lower_bound(order_.begin(), order_.begin() + n, r,
                                     [&](int a, int b) { return heavier(a, b); });
    std::copy_backward(at, order_.begin() + n, order_.begin() + n + 1);
    *at = r;
    ++n;
  }
  dirty_.clear();
}

void LayerSearch::consider(Candidate& best, const Candidate& c) {
  // Every candidate has aff_max < M - eps, so any accepted move lowers the busiest rank below
  // its old load and raises no rank to it. Within the goal: fewest transfers, then the lowest
  // aff_max; a move within the goal beats one outside it; outside: lowest aff_max, then
  // fewest transfers. Near-equal values (tol) count as equal; remaining ties keep the first.
  const double tol = 1e-12 * mean_;
  bool take;
  if (best.kind == 0) {
    take = c.aff_max < best.aff_max;
  } else {
    const bool c_ok = c.aff_max <= goal_, b_ok = best.aff_max <= goal_;
    if (c_ok != b_ok)
      take = c_ok;
    else if (c_ok)
      take = c.dt < best.dt || (c.dt == best.dt && c.aff_max < best.aff_max - tol);
    else
      take = c.aff_max < best.aff_max - tol || (c.aff_max <= best.aff_max + tol && c.dt < best.dt);
  }
  if (!take) return;
  best = c;
  // The inverse of the rule above: the aff_max a candidate with a given dt must stay below.
  for (int dt = kMinDt; dt <= kMaxDt; ++dt) {
    double b;
    if (best.aff_max <= goal_)
      b = dt < best.dt ? goal_ + tol : (dt == best.dt ? best.aff_max - tol : -1.0);
    else
      b = dt < best.dt ? best.aff_max + tol : best.aff_max - tol;
    bounds_[dt - kMinDt] = b;
  }
}

void LayerSearch::update_cold(ExpertId e) {
  // cold_ is sorted by (cold_value_, id), a strict total order: find e by binary search under
  // its old value, then move it to the place of its new value, shifting only the experts in
  // between. No allocation.
  auto colder = [&](ExpertId a, double va, ExpertId b, double vb) {
    return va < vb || (va == vb && a < b);
  };
  const double old_v = cold_value_[e];
  const double v = w_[e] / (cnt_[e] + 1);
  const auto first = cold_.begin(), last = cold_.end();
  const auto at = std::lower_bound(
      first, last, e, [&](ExpertId a, ExpertId b) { return colder(a, cold_value_[a], b, old_v); });
  cold_value_[e] = v;
  if (colder(e, v, e, old_v)) {
    const auto to = std::lower_bound(
        first, at, e, [&](ExpertId a, ExpertId b) { return colder(a, cold_value_[a], b, v); });
    std::copy_backward(to, at, at + 1);
    *to = e;
  } else {
    const auto to = std::lower_bound(
        at + 1, last, e, [&](ExpertId a, ExpertId b) { return colder(a, cold_value_[a], b, v); });
    std::copy(at + 1, to, at);
    *(to - 1) = e;
  }
}

void LayerSearch::set_slot(int p, ExpertId e) {
  const int r = p / S_;
  const ExpertId x = slot_[p];
  const std::size_t row = static_cast<std::size_t>(r) * E_;
  pos_[row + x] = -1;
  state_[row + x] &= ~kHolds;
  // Arrival and departure lists of r (as many of each: the rank holds S experts): slot p's
  // expert x leaves, e comes.
  {
    const bool x_orig = orig(r, x), e_orig = orig(r, e);
    int* arr = &arrived_slots_[static_cast<std::size_t>(r) * S_];
    ExpertId* dep = &departed_[static_cast<std::size_t>(r) * S_];
    int& n = arrivals_[r];
    auto drop = [&](auto* list, auto value) {
      int k = 0;
      while (list[k] != value) ++k;
      list[k] = list[n - 1];
    };
    if (x_orig && e_orig) {
      int k = 0;
      while (dep[k] != e) ++k;
      dep[k] = x;
    } else if (x_orig) {
      arr[n] = p % S_;
      dep[n] = x;
      ++n;
    } else if (e_orig) {
      drop(arr, p % S_);
      drop(dep, e);
      --n;
    }
  }
  arrived_[p] = !orig(r, e);
  int* hx = &hold_[static_cast<std::size_t>(x) * R_];
  for (int k = 0; k < cnt_[x]; ++k)
    if (hx[k] == r) {
      // Keep holder lists in rank order (iteration order feeds tie-breaks).
      for (int j = k; j + 1 < cnt_[x]; ++j) hx[j] = hx[j + 1];
      break;
    }
  if (--cnt_[x] == 1) {  // x leaves the list of experts with replicas
    const ExpertId last = multi_.back();
    multi_[multi_at_[x]] = last;
    multi_at_[last] = multi_at_[x];
    multi_.pop_back();
    multi_at_[x] = -1;
  }
  slot_[p] = e;
  pos_[row + e] = p % S_;
  state_[row + e] |= kHolds;
  int* he = &hold_[static_cast<std::size_t>(e) * R_];
  int k = cnt_[e]++;
  while (k > 0 && he[k - 1] > r) {
    he[k] = he[k - 1];
    --k;
  }
  he[k] = r;
  if (cnt_[e] == 2) {
    multi_at_[e] = static_cast<int>(multi_.size());
    multi_.push_back(e);
  }
}

void LayerSearch::apply(const Candidate& c, Trajectory& out) {
  ExpertId x_old = -1;
  if (c.kind == 1) {
    set_slot(c.p1, c.e1);
    set_slot(c.p2, c.e2);
    recompute_rank(c.p1 / S_);
    recompute_rank(c.p2 / S_);
    out.writes.push_back({c.p1, c.e1});
    out.writes.push_back({c.p2, c.e2});
  } else {
    x_old = slot_[c.p1];
    const ExpertId x = x_old;
    set_slot(c.p1, c.e1);
    refresh_expert(x);
    refresh_expert(c.e1);
    // Every holder of x or of e1 (the slot's rank among them) changes load; each once.
    for (ExpertId e : {x, c.e1}) {
      const int* h = &hold_[static_cast<std::size_t>(e) * R_];
      for (int k = 0; k < cnt_[e]; ++k)
        if (!is_dirty_[h[k]]) recompute_rank(h[k]);
    }
    out.writes.push_back({c.p1, c.e1});
  }
  transfers_ += c.dt;
  resort_dirty_ranks();
  if (c.kind == 2) {
    update_cold(x_old);
    update_cold(c.e1);
  }
  out.step_end.push_back(static_cast<std::int32_t>(out.writes.size()));
  out.transfers.push_back(transfers_);
  out.imbalance.push_back(L_[order_[0]] / mean_);
}

void LayerSearch::run(std::span<const ExpertId> start, std::span<const double> load,
                      const SearchLimits& limits, Trajectory& out) {
  out.writes.clear();
  out.step_end.assign(1, 0);
  out.transfers.assign(1, 0);
  reset(start, load);
  if (!(mean_ > 0.0)) {
    out.imbalance.assign(1, 0.0);
    return;
  }
  out.imbalance.assign(1, L_[order_[0]] / mean_);
  const int max_steps = limits.max_steps > 0 ? limits.max_steps : 4 * R_ * S_;
  for (int step = 0; step < max_steps; ++step) {
    const int m = order_[0];
    const double M = L_[m];
    if (M <= limits.target * mean_) break;
    goal_ = limits.goal_ratio > 0.0 ? mean_ + limits.goal_ratio * (M - mean_) : -1.0;
    Candidate best;
    best.aff_max = M - eps_;
    std::fill(std::begin(bounds_), std::end(bounds_), best.aff_max);
    // Re-points first: they are the cheap moves, and a good one found early tightens the
    // bounds of the (more numerous) swaps.
    find_replicate(m, best);
    find_shed(m, best);
    find_swaps(m, best);
    if (best.kind == 0) break;
    if (limits.max_transfers >= 0 && transfers_ + best.dt > limits.max_transfers) break;
    apply(best, out);
  }
}

}  // namespace swiftbalancer::swift
