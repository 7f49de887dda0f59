#include "swiftbalancer/policy/swift_search.h"

#include <algorithm>
#include <cmath>

namespace swiftbalancer::swift {

LayerSearch::LayerSearch(const Topology& topo, int experts)
    : topo_(topo), R_(topo.ranks), S_(topo.slots_per_rank), E_(experts) {
  const auto RE = static_cast<std::size_t>(R_) * E_;
  slot_.assign(static_cast<std::size_t>(R_) * S_, 0);
  start_.assign(slot_.size(), 0);
  multi_.reserve(E_);
  multi_at_.assign(E_, -1);
  pos_.assign(RE, -1);
  orig_.assign(RE, 0);
  cnt_.resize(E_);
  hold_.resize(RE);
  w_.resize(E_);
  L_.resize(R_);
  order_.resize(R_);
  redundant_.reserve(slot_.size());
  sshare_.resize(slot_.size());
  shares_m_.assign(R_, 0);
  cold_.resize(E_);
  cold_value_.resize(E_);
}

void LayerSearch::reset(std::span<const ExpertId> start, std::span<const double> load) {
  // Clear only what the previous layer set (O(R*S), not O(R*E)).
  for (int p = 0; p < R_ * S_; ++p) {
    const auto row = static_cast<std::size_t>(p / S_) * E_;
    pos_[row + slot_[p]] = -1;
    orig_[row + start_[p]] = 0;
  }
  std::copy(start.begin(), start.end(), slot_.begin());
  std::copy(start.begin(), start.end(), start_.begin());
  std::fill(cnt_.begin(), cnt_.end(), 0);
  std::copy(load.begin(), load.end(), w_.begin());
  for (int p = 0; p < R_ * S_; ++p) {
    const int r = p / S_;
    const ExpertId e = slot_[p];
    pos_[static_cast<std::size_t>(r) * E_ + e] = p % S_;
    orig_[static_cast<std::size_t>(r) * E_ + e] = 1;
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

void LayerSearch::recompute_rank(int r) {
  double s = 0.0;
  for (int p = r * S_; p < (r + 1) * S_; ++p) {
    sshare_[p] = share(slot_[p]);
    s += sshare_[p];
  }
  L_[r] = s;
}

void LayerSearch::sort_ranks() {
  // Insertion sort: after a move only a few ranks are out of place. Ties by rank id.
  for (int i = 1; i < R_; ++i) {
    const int r = order_[i];
    int j = i - 1;
    while (j >= 0 && (L_[order_[j]] < L_[r] || (L_[order_[j]] == L_[r] && order_[j] > r))) {
      order_[j + 1] = order_[j];
      --j;
    }
    order_[j + 1] = r;
  }
}

void LayerSearch::consider(Candidate& best, const Candidate& c) const {
  // Key: the largest load over the ranks the move touches (lower is better), then transfers.
  // Every candidate has aff_max < M - eps, so any accepted move lowers the busiest rank
  // below its old load and raises no rank to it.
  if (best.kind == 0) {
    if (c.aff_max < best.aff_max) best = c;
    return;
  }
  const double tol = 1e-12 * mean_;
  if (c.aff_max < best.aff_max - tol || (c.aff_max <= best.aff_max + tol && c.dt < best.dt))
    best = c;
}

void LayerSearch::find_swaps(int m, Candidate& best) {
  const double M = L_[m];
  for (int idx = R_ - 1; idx >= 0; --idx) {
    const int r = order_[idx];
    if (r == m) continue;
    const double Lr = L_[r];
    // A swap leaves both ranks at >= (M + Lr) / 2; ranks come lightest first.
    if ((M + Lr) * 0.5 >= bound(best)) break;
    const double* sr = &sshare_[static_cast<std::size_t>(r) * S_];
    for (int i = 0; i < S_; ++i) {
      const ExpertId a = slot_[m * S_ + i];
      const double sa = sshare_[m * S_ + i];
      // aff < bound needs M - bound < d = sa - sb < bound - Lr.
      const double lim = bound(best);
      if (sa <= M - lim) continue;
      if (pos(r, a) >= 0) continue;
      for (int j = 0; j < S_; ++j) {
        const double d = sa - sr[j];
        if (d <= M - lim || d >= lim - Lr) continue;
        const double aff = std::max(M - d, Lr + d);
        if (aff >= bound(best)) continue;
        const ExpertId b = slot_[r * S_ + j];
        if (pos(m, b) >= 0) continue;
        Candidate c;
        c.kind = 1;
        c.p1 = m * S_ + i;
        c.e1 = b;
        c.p2 = r * S_ + j;
        c.e2 = a;
        c.aff_max = aff;
        c.dt = !orig(m, b) + !orig(r, a) - !orig(m, a) - !orig(r, b);
        consider(best, c);
      }
    }
  }
}

void LayerSearch::find_replicate(int m, Candidate& best) {
  const double M = L_[m];
  const double tol = 1e-12 * mean_;
  // The smallest share a new replica of one of m's experts would have: no candidate can
  // leave its rank lower than (its load without the re-pointed slot) + this.
  // m itself ends at >= M - dy (dy: the drop of y's share): if no y drops m below the bound,
  // no replicate move can win and the redundant slots need not be gathered.
  double ny_min = -1.0, dy_max = 0.0;
  for (int i = 0; i < S_; ++i) {
    const ExpertId y = slot_[m * S_ + i];
    if (w_[y] <= 0.0 || cnt_[y] >= R_) continue;
    const double ny = w_[y] / (cnt_[y] + 1);
    if (ny_min < 0.0 || ny < ny_min) ny_min = ny;
    dy_max = std::max(dy_max, sshare_[m * S_ + i] - ny);
  }
  if (ny_min < 0.0 || M - dy_max >= bound(best)) return;
  // Ranks holding one of m's experts (they drop when it gains a replica).
  ++mark_;
  for (int i = 0; i < S_; ++i) {
    const ExpertId y = slot_[m * S_ + i];
    const int* hy = &hold_[static_cast<std::size_t>(y) * R_];
    for (int k = 0; k < cnt_[y]; ++k) shares_m_[hy[k]] = mark_;
  }
  // Redundant slots (replicas of experts with >= 2) off m that could still beat the bound,
  // by the load their rank keeps without them. Per slot p holding x: dx = rise of x's other
  // holders, xrise = the highest of them after the rise (m excluded: it is handled with y).
  redundant_.clear();
  const double lim = bound(best);
  for (ExpertId x : multi_) {
    const double sx = w_[x] / cnt_[x];
    const double dx = w_[x] / (cnt_[x] - 1) - sx;
    const int* hx = &hold_[static_cast<std::size_t>(x) * R_];
    // The two heaviest holders off m, and how many holders share one of m's experts: the rise
    // of "the other holders" of a slot is then O(1).
    double top1 = -1.0, top2 = -1.0;
    int top1_rank = -1, sharing = 0;
    for (int k = 0; k < cnt_[x]; ++k) {
      const int h = hx[k];
      if (h == m) continue;
      if (L_[h] > top1) {
        top2 = top1;
        top1 = L_[h];
        top1_rank = h;
      } else if (L_[h] > top2) {
        top2 = L_[h];
      }
      sharing += shares_m_[h] == mark_;
    }
    for (int k = 0; k < cnt_[x]; ++k) {
      const int r = hx[k];
      if (r == m) continue;
      Redundant d;
      d.base = L_[r] - sx;
      if (d.base + ny_min >= lim) continue;
      const double other = r == top1_rank ? top2 : top1;
      d.dx = dx;
      d.xrise = other < 0.0 ? -1.0 : other + dx;
      // Past the bound, x's side can only come back under it where a holder of x also holds
      // one of m's experts (it then drops by that expert's dy too): keep only such slots,
      // marked for the exact evaluation.
      d.exact = false;
      if (d.xrise >= lim) {
        d.exact = sharing - (shares_m_[r] == mark_) > 0;
        if (!d.exact) continue;
      }
      d.dx_m = pos(m, x) >= 0 ? dx : 0.0;
      d.slot = r * S_ + pos(r, x);
      redundant_.push_back(d);
    }
  }
  if (redundant_.empty()) return;
  std::sort(redundant_.begin(), redundant_.end(), [](const Redundant& a, const Redundant& b) {
    return a.base < b.base || (a.base == b.base && a.slot < b.slot);
  });
  for (int i = 0; i < S_; ++i) {
    const ExpertId y = slot_[m * S_ + i];
    if (w_[y] <= 0.0 || cnt_[y] >= R_) continue;
    const double ny = w_[y] / (cnt_[y] + 1);
    const double dy = sshare_[m * S_ + i] - ny;
    if (M - dy >= bound(best)) continue;
    if (best.kind != 0 && best.dt <= -1 && M - dy >= best.aff_max - tol) continue;
    const int* hy = &hold_[static_cast<std::size_t>(y) * R_];
    const double floor_y = M - dy;  // m's new load unless it holds x
    for (const Redundant& d : redundant_) {
      const double Lr = d.base + ny;
      if (Lr >= bound(best)) break;
      // Ranks that rise: r, m (drops by dy, rises by dx if it holds x), and x's other holders
      // (by dx, or dx - dy where they also hold y). d.xrise ignores the "- dy": exact unless
      // a rank holds both x and y, which the exact pass below handles.
      const double Lm = floor_y + d.dx_m;
      const double lower = std::max(Lr, Lm);
      if (lower >= bound(best)) continue;
      double aff = d.exact ? lower : std::max(lower, d.xrise);
      if (aff >= bound(best)) continue;
      const int r = d.slot / S_;
      if (pos(r, y) >= 0) continue;
      const ExpertId x = slot_[d.slot];
      const int dt = !orig(r, y) - !orig(r, x);
      if (best.kind != 0 && dt >= best.dt && lower >= best.aff_max - tol) continue;
      bool exact = d.exact;
      if (!exact && cnt_[y] >= 2 && d.xrise >= 0.0)
        for (int k = 0; k < cnt_[y]; ++k) exact |= hy[k] != m && pos(hy[k], x) >= 0;
      if (exact) {
        aff = lower;
        const int* hx = &hold_[static_cast<std::size_t>(x) * R_];
        for (int k = 0; k < cnt_[x]; ++k) {
          const int h = hx[k];
          if (h != r && h != m) aff = std::max(aff, L_[h] + d.dx - (pos(h, y) >= 0 ? dy : 0.0));
        }
        if (aff >= bound(best)) continue;
      }
      Candidate c;
      c.kind = 2;
      c.p1 = d.slot;
      c.e1 = y;
      c.aff_max = aff;
      c.dt = dt;
      consider(best, c);
    }
  }
}

void LayerSearch::find_shed(int m, Candidate& best) {
  const double M = L_[m];
  for (int i = 0; i < S_; ++i) {
    const int p = m * S_ + i;
    const ExpertId x = slot_[p];
    if (cnt_[x] < 2) continue;
    const double sx = sshare_[p];
    const double base = M - sx;
    if (base >= bound(best)) continue;
    const double dx = w_[x] / (cnt_[x] - 1) - sx;
    const int* hx = &hold_[static_cast<std::size_t>(x) * R_];
    // Exact value of re-pointing p to y; returns false when y is not allowed.
    auto eval = [&](ExpertId y, bool& overlap) {
      overlap = false;
      if (y == x || pos(m, y) >= 0) return false;
      const double ny = cold_value_[y];
      if (base + ny >= bound(best)) return true;
      const double dy = w_[y] / cnt_[y] - ny;
      double aff = base + ny;
      for (int k = 0; k < cnt_[x] && aff < bound(best); ++k) {
        const int h = hx[k];
        if (h == m) continue;
        const bool h_has_y = pos(h, y) >= 0;
        overlap |= h_has_y;
        aff = std::max(aff, L_[h] + dx - (h_has_y ? dy : 0.0));
      }
      if (aff >= bound(best)) return true;
      Candidate c;
      c.kind = 2;
      c.p1 = p;
      c.e1 = y;
      c.aff_max = aff;
      c.dt = !orig(m, y) - !orig(m, x);
      consider(best, c);
      return true;
    };
    // m's new load rises with y's w / (c + 1), and apart from that the value depends on y
    // only where a holder of x also holds y. So the candidates that can win are: the coldest
    // allowed y that no holder of x holds, every y on a holder of x, and every y that m held
    // at the start (equal value, fewer transfers).
    bool overlap = false;
    for (ExpertId y : cold_) {
      if (base + cold_value_[y] >= bound(best)) break;
      if (eval(y, overlap) && !overlap) break;
    }
    for (int k = 0; k < cnt_[x]; ++k) {
      const int h = hx[k];
      if (h == m) continue;
      for (int j = h * S_; j < (h + 1) * S_; ++j) eval(slot_[j], overlap);
    }
    for (int j = m * S_; j < (m + 1) * S_; ++j) eval(start_[j], overlap);
  }
}

void LayerSearch::update_cold(ExpertId e) {
  // Remove e, refresh its value, insert it back (ties by id). O(E), no allocation.
  int i = 0;
  while (cold_[i] != e) ++i;
  for (; i + 1 < E_; ++i) cold_[i] = cold_[i + 1];
  const double v = w_[e] / (cnt_[e] + 1);
  cold_value_[e] = v;
  int j = E_ - 1;
  while (j > 0 &&
         (cold_value_[cold_[j - 1]] > v || (cold_value_[cold_[j - 1]] == v && cold_[j - 1] > e))) {
    cold_[j] = cold_[j - 1];
    --j;
  }
  cold_[j] = e;
}

void LayerSearch::set_slot(int p, ExpertId e) {
  const int r = p / S_;
  const ExpertId x = slot_[p];
  pos_[static_cast<std::size_t>(r) * E_ + x] = -1;
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
  pos_[static_cast<std::size_t>(r) * E_ + e] = p % S_;
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
    for (ExpertId e : {x, c.e1}) {
      const int* h = &hold_[static_cast<std::size_t>(e) * R_];
      for (int k = 0; k < cnt_[e]; ++k) recompute_rank(h[k]);
    }
    recompute_rank(c.p1 / S_);
    out.writes.push_back({c.p1, c.e1});
  }
  transfers_ += c.dt;
  sort_ranks();
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
    Candidate best;
    best.aff_max = M - eps_;
    find_swaps(m, best);
    find_replicate(m, best);
    find_shed(m, best);
    if (best.kind == 0) break;
    if (limits.max_transfers >= 0 && transfers_ + best.dt > limits.max_transfers) break;
    apply(best, out);
  }
}

}  // namespace swiftbalancer::swift
