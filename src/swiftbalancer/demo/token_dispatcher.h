// TokenDispatcher: one MoE layer's token exchange across ranks, through a Transport.
//   dispatch(): every (token, k) assignment's hidden row goes to the rank that owns its slot;
//   the caller computes the rows it received (grouped by local slot via received_slots());
//   combine(): the results go back, and each rank gets one row per assignment, in the order of
//   the assignments it dispatched.
// Exchanges are collective: every rank calls dispatch() and combine() for the same layers in the
// same order. A transport failure or timeout throws std::runtime_error (the engine cannot serve
// the step). Buffers are reused across calls (no allocation once sizes stop growing).
// Thread-safety: one object per rank, used by that rank's serving thread.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "swiftbalancer/transport/transport.h"

namespace swiftbalancer {

class TokenDispatcher {
 public:
  struct Assignment {
    int token = 0;     // row of x
    int dst_rank = 0;  // the rank owning the slot
    int dst_slot = 0;  // local slot on dst_rank
  };

  // Uses tags [tag_base, tag_base + 3).
  TokenDispatcher(Transport& transport, int hidden, int tag_base, Millis timeout);

  // x: [tokens][hidden].
  void dispatch(std::span<const Assignment> assignments, std::span<const float> x);

  int received() const { return static_cast<int>(recv_slots_.size()); }
  std::span<const std::int32_t> received_slots() const { return recv_slots_; }
  std::span<const float> received_rows() const { return recv_rows_; }
  // The caller writes the result of received row i at results()[i * hidden ...].
  std::span<float> results() { return results_; }
  // Per local slot: number of rows received in the last dispatch (size slots).
  void slot_counts(std::span<std::int64_t> out) const;

  // out: [assignments][hidden], row i for the i-th assignment given to dispatch().
  void combine(std::span<float> out);

 private:
  void run(std::vector<P2POp>& ops, const char* what);

  Transport& t_;
  int hidden_, tag_base_;
  Millis timeout_;
  int R_;
  std::vector<std::int64_t> send_counts_, all_counts_;
  std::vector<int> order_;  // assignment indices grouped by destination rank (stable)
  std::vector<std::size_t> send_off_, recv_off_;
  std::vector<std::int32_t> send_slots_, recv_slots_;
  std::vector<float> send_rows_, recv_rows_, results_, back_rows_;
  std::vector<P2POp> ops_;
};

}  // namespace swiftbalancer
