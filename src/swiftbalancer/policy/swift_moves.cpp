// Move enumeration of the swift per-layer search (swift_search.h): swaps, replicate and shed
// moves on the busiest rank m. Every function evaluates moves exactly and prunes with the
// bounds of LayerSearch::bound_for: a move that cannot beat the best one found so far is
// dropped as early as its partial value shows it. Enumeration order (ranks lightest first,
// slots in order, a swap's partners by share, experts by id) and consider()'s ties make the result
// deterministic.
#include <algorithm>

#include "swiftbalancer/policy/internal/swift_search.h"

namespace swiftbalancer::swift {
namespace {

// Ascending sort of a few distinct ints (local slots of m): cheaper than std::sort at these
// sizes, and distinct values have one sorted order.
void insertion_sort(int* v, int n) {
  for (int k = 1; k < n; ++k) {
    const int x = v[k];
    int j = k;
    for (; j > 0 && v[j - 1] > x; --j) v[j] = v[j - 1];
    v[j] = x;
  }
}

}  // namespace

void LayerSearch::find_swaps(int m, Candidate& best) {
  // A swap of a (on m) and b (on r) changes the transfers by dt = g(a) + f(b) with
  // g(a) = !orig(r, a) - !orig(m, a) and f(b) = !orig(m, b) - !orig(r, b); both are 1 unless
  // the expert already moved: g(a) <= 0 only for a that arrived on m or that r held at the
  // start (D_r), f(b) <= 0 only for b that m held at the start (D_m) or that arrived on r.
  // Two passes over the ranks: first the swaps with dt <= 1 (an expert with g or f <= 0 is
  // involved: few, looked up from the arrival lists), then those of two experts that never
  // moved (dt = 2), which can win only when no move within the goal costs less: in most steps
  // the bounds end the second pass at once. Within a pass the order is the order of a single
  // scan (ranks lightest first, m's slots in order, partners by share), and two moves with
  // different dt never tie in consider(), so the passes choose exactly what one scan would.
  const double M = L_[m];
  const double margin = 1e-12 * M;  // far above rounding, far below any gain
  const unsigned char* st_m = &state_[static_cast<std::size_t>(m) * E_];
  const int* pos_m = &pos_[static_cast<std::size_t>(m) * E_];
  // m's experts, shares and arrival flags by local slot (nothing changes them during the scan).
  const ExpertId* m_expert = &slot_[static_cast<std::size_t>(m) * S_];
  const double* m_share = &sshare_[static_cast<std::size_t>(m) * S_];
  const char* m_arrived = &arrived_[static_cast<std::size_t>(m) * S_];
  const double sa_max = *std::max_element(m_share, m_share + S_);
  // m's arrivals in slot order, and D_m.
  const int n_marr = arrivals_[m], n_dm = arrivals_[m];
  std::copy_n(&arrived_slots_[static_cast<std::size_t>(m) * S_], n_marr, m_arr_.begin());
  insertion_sort(m_arr_.data(), n_marr);
  const ExpertId* d_m = &departed_[static_cast<std::size_t>(m) * S_];
  // holds_dm_[r] == dm_mark_: r holds an expert of D_m (found from the holder lists once, not
  // by looking up every expert of D_m on every rank).
  ++dm_mark_;
  for (int k = 0; k < n_dm; ++k) {
    const int* h = &hold_[static_cast<std::size_t>(d_m[k]) * R_];
    for (int j = 0; j < cnt_[d_m[k]]; ++j) holds_dm_[h[j]] = dm_mark_;
  }
  for (int pass = 0; pass < 2; ++pass) {
    const bool fresh_pass = pass == 1;
    for (int idx = R_ - 1; idx >= 0; --idx) {
      const int r = order_[idx];
      if (r == m) continue;
      const double Lr = L_[r];
      // A swap leaves both ranks at >= (M + Lr) / 2; ranks come lightest first.
      if ((M + Lr) * 0.5 >= (fresh_pass ? bound_for(best, 2) : bound(best))) break;
      const std::size_t row = static_cast<std::size_t>(r) * S_;
      const ExpertId* slot_r = &slot_[row];
      const char* arrived_r = &arrived_[row];
      const int* ord = &by_share_[row];
      const double* sr = &sorted_share_[row];
      // A swap drops m by d = sa - sb <= sa_max - sr[0] (rounding is monotone) and must drop it
      // by more than M - bound: without that margin no swap with r can be taken in this pass.
      if (sa_max - sr[0] <= M - (fresh_pass ? bound_for(best, 2) : bound(best))) continue;
      const unsigned char* st_r = &state_[static_cast<std::size_t>(r) * E_];
      // Offers a (m's slot i, g = g(a)) with the partners of r in its share window that the
      // pass takes: kind 0 all, 1 the low_ ones (f <= 0), 2 those with f = 1. f_lo: the lowest
      // f among them, for the window's bound.
      auto scan = [&](int i, int g, int kind, int f_lo) {
        const double sa = m_share[i];
        // aff < lim needs M - lim < d = sa - sb < lim - Lr: sb in (sa - lim + Lr, sa - M + lim),
        // a window of r's slots by share (lim only falls while it is scanned).
        double lim = bound_for(best, g + f_lo);
        // The largest d is against the least share the kind admits (sr ascending, low_ too;
        // rounding is monotone): at most M - lim, no partner can be taken (shares are not
        // negative, so this also covers sa <= M - lim).
        if (sa - sr[kind == 1 ? low_[0] : 0] <= M - lim) return;
        const double lo = sa - lim + Lr;
        // false once the window is past (d falls as q grows).
        auto try_partner = [&](int q) {
          lim = bound_for(best, g + f_lo);
          const double d = sa - sr[q];
          if (d <= M - lim) return false;
          if (d >= lim - Lr) return true;
          const int j = ord[q];
          const ExpertId b = slot_r[j];
          const unsigned char b_on_m = st_m[b];
          if (b_on_m & kHolds) return true;
          const int f = !(b_on_m & kOrig) - arrived_r[j];
          if (kind == 2 && f != 1) return true;
          const int dt = g + f;
          const double aff = std::max(M - d, Lr + d);
          if (aff >= bound_for(best, dt)) return true;
          Candidate c;
          c.kind = 1;
          c.p1 = m * S_ + i;
          c.e1 = b;
          c.p2 = static_cast<int>(row) + j;
          c.e2 = m_expert[i];
          c.aff_max = aff;
          c.dt = dt;
          consider(best, c);
          return true;
        };
        if (kind == 1) {
          for (int k = 0; k < n_low_; ++k)
            if (sr[low_[k]] > lo && !try_partner(low_[k])) break;
          return;
        }
        int q = 0;
        while (q < S_ && sr[q] <= lo) ++q;
        for (; q < S_ && try_partner(q); ++q) {
        }
      };
      if (fresh_pass) {
        for (int i = 0; i < S_; ++i) {
          const unsigned char a_on_r = st_r[m_expert[i]];
          if (!(a_on_r & kHolds) && !(a_on_r & kOrig) && !m_arrived[i]) scan(i, 1, 2, 1);
        }
        continue;
      }
      // low_: r's share positions of the partners with f <= 0 (not on m), ascending; f_low:
      // their lowest f (1 without any).
      n_low_ = 0;
      int f_low = 1;
      auto add_low = [&](int q, int f) {
        int k = n_low_++;
        while (k > 0 && low_[k - 1] > q) {
          low_[k] = low_[k - 1];
          --k;
        }
        low_[k] = q;
        f_low = std::min(f_low, f);
      };
      const int* pos_r = &pos_[static_cast<std::size_t>(r) * E_];
      const int* q_of = &share_pos_[row];
      if (holds_dm_[r] == dm_mark_)
        for (int k = 0; k < n_dm; ++k)
          if (st_r[d_m[k]] & kHolds) {
            const int j = pos_r[d_m[k]];
            add_low(q_of[j], arrived_r[j] ? -1 : 0);
          }
      const int* arr_r = &arrived_slots_[row];
      const ExpertId* d_r = &departed_[row];
      for (int k = 0; k < arrivals_[r]; ++k)
        if (!(st_m[slot_r[arr_r[k]]] & (kOrig | kHolds))) add_low(q_of[arr_r[k]], 0);
      // a_slots_: m's slots whose a has g(a) <= 0 (valid with r), ascending; g_low: lowest g.
      int n_a = 0, g_low = 1;
      for (int k = 0; k < n_marr; ++k) {
        const unsigned char a_on_r = st_r[m_expert[m_arr_[k]]];
        if (a_on_r & kHolds) continue;
        a_slots_[n_a++] = m_arr_[k];
        g_low = std::min(g_low, (a_on_r & kOrig) ? -1 : 0);
      }
      for (int k = 0; k < arrivals_[r]; ++k) {
        const ExpertId e = d_r[k];
        if ((st_m[e] & kHolds) && !m_arrived[pos_m[e]]) {
          a_slots_[n_a++] = pos_m[e];
          g_low = std::min(g_low, 0);
        }
      }
      if (n_a == 0 && n_low_ == 0) continue;
      int dt_min = n_low_ > 0 ? 1 + f_low : 2;
      if (n_a > 0) dt_min = std::min(dt_min, g_low + f_low);
      if ((M + Lr) * 0.5 >= bound_for(best, dt_min)) continue;
      // a with g(a) = 1 pair only with the low_ partners, at dt >= 1 + f_low: unless that
      // bound is above the least value of a swap with r, (M + Lr) / 2 (the margin covers
      // rounding), only the a with g(a) <= 0 (a_slots_) can give a candidate. Nor can they when
      // even the largest drop of m with a low_ partner, sa_max - (their least share), is not
      // above M - bound (rounding is monotone, and the bound only falls while r is scanned).
      // The scans of the a with g(a) <= 0 are then those of a_slots_, in the same order.
      if (n_low_ > 0 && bound_for(best, 1 + f_low) > (M + Lr) * 0.5 - margin &&
          sa_max - sr[low_[0]] > M - bound_for(best, 1 + f_low)) {
        // Every a: with g(a) <= 0 against every partner, else against the low_ ones.
        for (int i = 0; i < S_; ++i) {
          const unsigned char a_on_r = st_r[m_expert[i]];
          if (a_on_r & kHolds) continue;
          const int g = !(a_on_r & kOrig) - m_arrived[i];
          scan(i, g, g <= 0 ? 0 : 1, f_low);
        }
      } else {
        insertion_sort(a_slots_.data(), n_a);
        for (int k = 0; k < n_a; ++k) {
          const int i = a_slots_[k];
          scan(i, !(st_r[m_expert[i]] & kOrig) - m_arrived[i], 0, f_low);
        }
      }
    }
  }
}

bool LayerSearch::replicate_can_win(int m, const Candidate& best, double& ny_min,
                                    double& dy_max) const {
  // ny: the share a new replica of one of m's experts y would have; m drops by at most dy_max.
  // No candidate leaves its target rank below (its load without the re-pointed slot) + ny_min,
  // nor m below M - dy_max.
  ny_min = -1.0;
  dy_max = 0.0;
  for (int i = 0; i < S_; ++i) {
    const ExpertId y = slot_[m * S_ + i];
    if (w_[y] <= 0.0 || cnt_[y] >= R_) continue;
    const double ny = cold_value_[y];
    if (ny_min < 0.0 || ny < ny_min) ny_min = ny;
    dy_max = std::max(dy_max, sshare_[m * S_ + i] - ny);
  }
  return ny_min >= 0.0 && L_[m] - dy_max < bound(best);
}

void LayerSearch::mark_holders_of_m(int m) {
  // shares_m_[h] == mark_: rank h holds one of m's experts (it drops when that one gains a
  // replica), and drop_m_[h] is then the most it can drop so: the largest dy (as
  // try_replicas_of computes it) of the experts it holds that can gain one.
  ++mark_;
  for (int i = 0; i < S_; ++i) {
    const ExpertId y = slot_[m * S_ + i];
    const double dy = w_[y] <= 0.0 || cnt_[y] >= R_ ? 0.0 : sshare_[m * S_ + i] - cold_value_[y];
    const int* hy = &hold_[static_cast<std::size_t>(y) * R_];
    for (int k = 0; k < cnt_[y]; ++k) {
      const int h = hy[k];
      if (shares_m_[h] != mark_) {
        shares_m_[h] = mark_;
        drop_m_[h] = dy;
      } else {
        drop_m_[h] = std::max(drop_m_[h], dy);
      }
    }
  }
}

void LayerSearch::gather_redundant(int m, double ny_min, double dy_max, double lim) {
  // Redundant slots (replicas of experts with >= 2) off m that could still beat `lim`, sorted
  // by the load their rank keeps without them. Per slot p holding x: dx = rise of x's other
  // holders, xrise = the highest of them after the rise (m excluded: it is handled with y).
  // Every y that try_replicas_of offers has dy <= dy_max, so m keeps at least m_floor.
  const double m_floor = L_[m] - dy_max;
  redundant_.clear();
  auto add = [&](ExpertId x, int r, double base, double other, bool other_shares, bool m_holds,
                 double other_drop) {
    // other: the heaviest holder of x besides r and m (-1: none); other_shares: a holder of x
    // besides r and m holds one of m's experts; m_holds: m is a holder of x; other_drop: the
    // most the heaviest other holder drops with y (any dy it may see is at most this).
    Redundant d;
    d.base = base;
    d.dx = rise_[x];
    d.xrise = other < 0.0 ? -1.0 : other + d.dx;
    // Past the bound, x's side can only come back under it where a holder of x also holds
    // one of m's experts (it then drops by that expert's dy too): keep only such slots,
    // marked for the exact evaluation.
    d.exact = false;
    if (d.xrise >= lim) {
      d.exact = other_shares;
      if (!d.exact) return;
      // The exact value keeps the heaviest other holder at >= xrise - other_drop (rounding is
      // monotone): at lim or above, it cannot come back under it.
      if (d.xrise - other_drop >= lim) return;
    }
    d.dx_m = m_holds ? d.dx : 0.0;
    // m keeps at least m_floor + dx_m (try_replicas_of's floor_y >= m_floor; rounding is
    // monotone): at lim or above, no move with this slot can be taken.
    if (m_holds && m_floor + d.dx_m >= lim) return;
    d.rank = r;
    d.x = x;
    d.slot = r * S_ + pos(r, x);
    d.x_arrived = arrived_[d.slot] != 0;  // == !orig(r, x)
    redundant_.push_back(d);
  };
  for (ExpertId x : multi_) {
    const double sx = share_[x];
    const int* hx = &hold_[static_cast<std::size_t>(x) * R_];
    if (cnt_[x] == 2) {
      // Most redundant experts have two replicas: the other holder is the one to check.
      const int h0 = hx[0], h1 = hx[1];
      if (h0 != m) {
        const double base = L_[h0] - sx;
        if (base + ny_min < lim)
          add(x, h0, base, h1 == m ? -1.0 : L_[h1], h1 != m && shares_m_[h1] == mark_, h1 == m,
              shares_m_[h1] == mark_ ? drop_m_[h1] : 0.0);
      }
      if (h1 != m) {
        const double base = L_[h1] - sx;
        if (base + ny_min < lim)
          add(x, h1, base, h0 == m ? -1.0 : L_[h0], h0 != m && shares_m_[h0] == mark_, h0 == m,
              shares_m_[h0] == mark_ ? drop_m_[h0] : 0.0);
      }
      continue;
    }
    // The two heaviest holders off m, and how many holders share one of m's experts: the rise
    // of "the other holders" of a slot is then O(1).
    double top1 = -1.0, top2 = -1.0;
    int top1_rank = -1, sharing = 0;
    bool m_holds = false;
    for (int k = 0; k < cnt_[x]; ++k) {
      const int h = hx[k];
      if (h == m) {
        m_holds = true;
        continue;
      }
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
      const double base = L_[r] - sx;
      if (base + ny_min >= lim) continue;
      add(x, r, base, r == top1_rank ? top2 : top1, sharing - (shares_m_[r] == mark_) > 0, m_holds,
          dy_max);
    }
  }
  std::sort(redundant_.begin(), redundant_.end(), [](const Redundant& a, const Redundant& b) {
    return a.base < b.base || (a.base == b.base && a.slot < b.slot);
  });
}

void LayerSearch::try_replicas_of(int m, int i, Candidate& best) {
  const ExpertId y = slot_[m * S_ + i];
  if (w_[y] <= 0.0 || cnt_[y] >= R_) return;
  const double ny = cold_value_[y];
  const double dy = sshare_[m * S_ + i] - ny;
  const double floor_y = L_[m] - dy;  // m's new load unless it holds x
  if (floor_y >= bound(best)) return;
  const int* hy = &hold_[static_cast<std::size_t>(y) * R_];
  for (const Redundant& d : redundant_) {
    const double Lr = d.base + ny;
    if (Lr >= bound(best)) break;
    // Ranks that rise: r, m (drops by dy, rises by dx if it holds x), and x's other holders
    // (by dx, or dx - dy where they also hold y). d.xrise ignores the "- dy": exact unless a
    // rank holds both x and y, which the exact evaluation below handles.
    const double lower = std::max(Lr, floor_y + d.dx_m);
    // A re-point changes the transfers by -1 .. 1, and the bounds fall as dt grows.
    if (lower >= bound_for(best, -1)) continue;
    const int r = d.rank;
    const unsigned char y_on_r = state_[static_cast<std::size_t>(r) * E_ + y];
    if (y_on_r & kHolds) continue;
    const ExpertId x = d.x;
    const int dt = !(y_on_r & kOrig) - d.x_arrived;
    const double lim = bound_for(best, dt);
    if (lower >= lim) continue;
    bool exact = d.exact;
    if (!exact && cnt_[y] >= 2 && d.xrise >= 0.0)
      for (int k = 0; k < cnt_[y]; ++k)
        exact |= hy[k] != m && (state_[static_cast<std::size_t>(hy[k]) * E_ + x] & kHolds);
    double aff;
    if (exact) {
      // x's other holders rise by dx, and drop by dy where they also hold y.
      aff = lower;
      const int* hx = &hold_[static_cast<std::size_t>(x) * R_];
      for (int k = 0; k < cnt_[x]; ++k) {
        const int h = hx[k];
        if (h != r && h != m)
          aff = std::max(
              aff,
              L_[h] + d.dx - ((state_[static_cast<std::size_t>(h) * E_ + y] & kHolds) ? dy : 0.0));
      }
    } else {
      aff = std::max(lower, d.xrise);
    }
    if (aff >= lim) continue;
    Candidate c;
    c.kind = 2;
    c.p1 = d.slot;
    c.e1 = y;
    c.aff_max = aff;
    c.dt = dt;
    consider(best, c);
  }
}

void LayerSearch::find_replicate(int m, Candidate& best) {
  double ny_min;
  double dy_max;
  if (!replicate_can_win(m, best, ny_min, dy_max)) return;
  mark_holders_of_m(m);
  gather_redundant(m, ny_min, dy_max, bound(best));
  for (int i = 0; i < S_ && !redundant_.empty(); ++i) try_replicas_of(m, i, best);
}

void LayerSearch::shed_slot(int m, int i, Candidate& best) {
  const int p = m * S_ + i;
  const ExpertId x = slot_[p];
  if (cnt_[x] < 2) return;
  const double base = L_[m] - sshare_[p];
  if (base >= bound(best)) return;
  const double dx = rise_[x];
  const int* hx = &hold_[static_cast<std::size_t>(x) * R_];
  const unsigned char* st_m = &state_[static_cast<std::size_t>(m) * E_];
  const int x_arrived = arrived_[p];
  // Exact value of re-pointing p to y; returns false when y is not allowed. `overlap`: a
  // holder of x also holds y.
  auto eval = [&](ExpertId y, bool& overlap) {
    overlap = false;
    const unsigned char y_on_m = st_m[y];
    if (y == x || (y_on_m & kHolds)) return false;
    const int dt = !(y_on_m & kOrig) - x_arrived;
    const double lim = bound_for(best, dt);
    const double ny = cold_value_[y];
    if (base + ny >= lim) return true;
    const double dy = share_[y] - ny;
    double aff = base + ny;
    for (int k = 0; k < cnt_[x] && aff < lim; ++k) {
      const int h = hx[k];
      if (h == m) continue;
      const bool h_has_y = (state_[static_cast<std::size_t>(h) * E_ + y] & kHolds) != 0;
      overlap |= h_has_y;
      aff = std::max(aff, L_[h] + dx - (h_has_y ? dy : 0.0));
    }
    if (aff >= lim) return true;
    Candidate c;
    c.kind = 2;
    c.p1 = p;
    c.e1 = y;
    c.aff_max = aff;
    c.dt = dt;
    consider(best, c);
    return true;
  };
  // m's new load rises with y's w / (c + 1), and apart from that the value depends on y only
  // where a holder of x also holds y. So the candidates that can win are: the coldest allowed
  // y that no holder of x holds, every y on a holder of x, and every y that m held at the
  // start (equal value, fewer transfers).
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
  // An expert still in its start slot is on m, which eval rejects: only the others are tried.
  for (int j = m * S_; j < (m + 1) * S_; ++j)
    if (start_[j] != slot_[j]) eval(start_[j], overlap);
}

void LayerSearch::find_shed(int m, Candidate& best) {
  // Only a replica of an expert with another one can be re-pointed (shed_slot checks it too;
  // checked here it saves the call for most slots).
  for (int i = 0; i < S_; ++i)
    if (cnt_[slot_[m * S_ + i]] >= 2) shed_slot(m, i, best);
}

}  // namespace swiftbalancer::swift
