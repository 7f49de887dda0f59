// Per-layer local search of the swift policy. Owner: policy component (swift).
//
// LayerSearch improves one layer's placement by single moves on the busiest rank m:
//   - swap:      expert a on m <-> expert b on another rank r (2 transfers);
//   - replicate: give a hot expert y of m one more replica by re-pointing a redundant slot
//                (a replica of an expert x with >= 2 replicas) on another rank (1 transfer);
//   - shed:      re-point a redundant slot on m itself to another expert y (1 transfer).
// A move's value is the highest load, after it, among m and the ranks it raises. A move is
// admissible only when that value is below m's load, so the layer's maximum never rises.
// Choice (SearchLimits::goal_ratio = b > 0): a move that leaves every rank it touches at or
// below the goal mean + b (M - mean) is good enough, and among those the fewest transfers win
// (then the lowest value): cheap moves are preferred while they cut a fair share of the
// excess. Without such a move, or with b = 0, the lowest value wins (then fewest transfers).
// The trajectory records each step's writes, and after each step the cumulative transfers
// against the start and the imbalance, so that the caller can cut it at any step (the
// whole-model budget allocation does; swift_budget.h).
//
// Not thread-safe: one LayerSearch per thread. Buffers are sized once per topology and reused
// for every layer; the search loop itself allocates nothing (the trajectory vectors grow).
// Move enumeration is in swift_moves.cpp, state and bookkeeping in swift_search.cpp.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/core/topology.h"

namespace swiftbalancer::swift {

// One slot write of a move: slot p now holds expert e.
struct SlotWrite {
  std::int32_t slot;
  ExpertId expert;
};

struct Trajectory {
  // Step k (1-based) consists of writes[step_end[k-1] .. step_end[k]); step_end[0] = 0.
  std::vector<SlotWrite> writes;
  std::vector<std::int32_t> step_end;
  // After k steps (k = 0 is the start): cross-rank transfers against the start, imbalance.
  std::vector<std::int32_t> transfers;
  std::vector<double> imbalance;
  int steps() const { return static_cast<int>(transfers.size()) - 1; }
};

struct SearchLimits {
  int max_steps = 0;  // 0: 4 x the number of slots
  // Stop once this many transfers are used (negative: unlimited). Moves that would exceed it
  // are not taken.
  std::int32_t max_transfers = -1;
  // Stop once the layer's imbalance is at most this (1.0: never stop early).
  double target = 1.0;
  // Goal as a fraction of the busiest rank's excess over the mean (0: plain steepest descent).
  double goal_ratio = 0.0;
};

class LayerSearch {
 public:
  LayerSearch(const Topology& topo, int experts);

  // Runs the search on `start` (a valid layer) under `load` (size experts), filling `out`.
  void run(std::span<const ExpertId> start, std::span<const double> load,
           const SearchLimits& limits, Trajectory& out);

 private:
  struct Candidate {
    int kind = 0;  // 0 none, 1 swap, 2 re-point
    int p1 = -1, p2 = -1;
    ExpertId e1 = -1, e2 = -1;
    double aff_max = 0.0;  // highest load among the ranks the move touches, after it
    int dt = 0;            // change of the transfers against the start
  };

  void reset(std::span<const ExpertId> start, std::span<const double> load);
  double share(ExpertId e) const { return share_[e]; }
  void refresh_expert(ExpertId e);  // share_ and rise_ of e after its count changed
  int pos(int r, ExpertId e) const { return pos_[static_cast<std::size_t>(r) * E_ + e]; }
  bool orig(int r, ExpertId e) const {
    return (state_[static_cast<std::size_t>(r) * E_ + e] & kOrig) != 0;
  }
  void recompute_rank(int r);
  bool heavier(int a, int b) const;  // a comes before b in order_
  void sort_ranks();
  void resort_dirty_ranks();
  // Takes c if it beats best, and then refreshes the bounds.
  void consider(Candidate& best, const Candidate& c);
  // A candidate that changes the transfers by `dt` must have aff_max below this to beat the
  // best one so far (the bounds follow from consider()'s rule; `best` names what they bound).
  double bound_for(const Candidate& /*best*/, int dt) const { return bounds_[dt - kMinDt]; }
  // The loosest of those bounds (any dt).
  double bound(const Candidate& best) const { return bound_for(best, kMinDt); }
  void update_cold(ExpertId e);
  void apply(const Candidate& c, Trajectory& out);
  void set_slot(int p, ExpertId e);  // bookkeeping of pos_, holders, counts (no loads)

  // Move enumeration (swift_moves.cpp). Each offers its admissible moves to consider().
  void find_swaps(int m, Candidate& best);
  void find_replicate(int m, Candidate& best);
  void find_shed(int m, Candidate& best);
  // find_replicate in steps: the smallest new share of one of m's experts (-1: none can gain
  // a replica) and the largest drop of m; the ranks sharing an expert with m; the redundant
  // slots worth trying; the moves that give m's i-th expert the replica.
  bool replicate_can_win(int m, const Candidate& best, double& ny_min, double& dy_max) const;
  void mark_holders_of_m(int m);
  void gather_redundant(int m, double ny_min, double dy_max, double lim);
  void try_replicas_of(int m, int i, Candidate& best);
  void shed_slot(int m, int i, Candidate& best);

  Topology topo_;
  int R_, S_, E_;
  std::vector<ExpertId> slot_;
  std::vector<ExpertId> start_;  // the layer at the start of the search
  std::vector<int> pos_;         // [R][E] local slot of e on r, or -1
  // [R][E] bits: kHolds (e is on r now, pos >= 0), kOrig (e was on r at the start). One byte
  // answers both questions a swap asks about an expert and a rank.
  static constexpr unsigned char kHolds = 1, kOrig = 2;
  std::vector<unsigned char> state_;
  std::vector<char> arrived_;         // [R*S] the slot's expert was not on its rank at the start
  std::vector<double> sorted_share_;  // [R][S] each rank's shares, ascending (by_share_ order)
  std::vector<int> cnt_;              // [E] replica count
  std::vector<int> hold_;             // [E][R] holder ranks, first cnt_[e] valid
  std::vector<double> w_;             // [E] load
  std::vector<double> share_;         // [E] w / count (for experts with a replica)
  // [E] w / (count - 1) - w / count: how much the other holders rise when one replica goes
  // (0 for a single replica).
  std::vector<double> rise_;
  std::vector<double> L_;       // [R] rank load
  std::vector<double> sshare_;  // [R*S] share of each slot's expert (w / count)
  std::vector<int> by_share_;   // [R][S] local slots of each rank by share, ascending
  // find_swaps scratch.
  std::vector<int> low_;        // a rank's share positions of partners that cost less than 1
  int n_low_ = 0;               // entries of low_ in use
  std::vector<int> m_arr_;      // local slots of m holding an arrival, ascending
  std::vector<int> a_slots_;    // local slots of m worth a swap with one rank
  std::vector<int> share_pos_;  // [R*S] position of the slot in its rank's by_share_ order
  std::vector<int> holds_dm_;   // [R] == dm_mark_: holds an expert that left the busiest rank
  int dm_mark_ = 0;
  std::vector<int> order_;      // ranks by load, heaviest first (ties: lower id)
  std::vector<int> dirty_;      // ranks whose load changed since order_ was last sorted
  std::vector<char> is_dirty_;  // [R] rank is in dirty_
  struct Redundant {
    double base;     // load of the slot's rank without it
    double dx;       // rise of the other holders of its expert if it is re-pointed
    double xrise;    // highest load among those holders (m excluded) after the rise
    double dx_m;     // dx if m holds the expert, else 0
    bool exact;      // xrise may overstate: evaluate x's side exactly
    bool x_arrived;  // x was not on the slot's rank at the start
    int slot;
    int rank;    // the slot's rank
    ExpertId x;  // the slot's expert
  };
  std::vector<Redundant> redundant_;  // scratch, rebuilt per step
  std::vector<ExpertId> cold_;        // experts by w / (count + 1), ascending (ties: id)
  std::vector<ExpertId> multi_;       // experts with >= 2 replicas (any order)
  std::vector<int> multi_at_;         // [E] index in multi_, or -1
  std::vector<int> shares_m_;         // [R] == mark_: holds one of the busiest rank's experts
  std::vector<double> drop_m_;        // [R] where shares_m_: the most it drops (mark_holders_of_m)
  int mark_ = 0;
  std::vector<double> cold_value_;  // [E] w / (count + 1)
  // [R][S] per rank, first arrivals_[r] valid (any order): local slots holding an expert the
  // rank did not hold at the start, and the experts it held at the start and no longer holds.
  std::vector<int> arrived_slots_;
  std::vector<ExpertId> departed_;
  std::vector<int> arrivals_;  // [R] slots holding an expert the rank did not hold at start
  int transfers_ = 0;
  double mean_ = 0.0;
  double eps_ = 0.0;
  double goal_ = -1.0;                           // this step's goal load, or -1 (no goal)
  static constexpr int kMinDt = -2, kMaxDt = 2;  // a move changes the transfers by -2 .. 2
  double bounds_[kMaxDt - kMinDt + 1] = {};      // bound_for(dt), by dt - kMinDt
};

}  // namespace swiftbalancer::swift
