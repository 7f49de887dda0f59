// EmulatedLinkTransport: wraps any Transport and makes its bulk transfers (P2POp::bulk, the
// balancer's expert weights) take the time a link of a given bandwidth would need. Owner: demo
// component (only the demo uses it; any Transport can be wrapped).
//
// Why: the demo's experts are small (tens of KB) and its ranks share one machine's memory, so
// moving weights costs almost nothing and the difference between moving one layer per step
// (async) and every layer at once (sync) cannot be seen. A real deployment moves tens of MB per
// expert over a link of tens of GB/s; scaling the link down with the experts keeps the ratio of
// transfer time to step time representative.
//
// Model: every rank has one full-duplex port of `bytes_per_second` in each direction. The bulk
// bytes a batch sends are serialised on the rank's egress (after what earlier batches queued),
// the bulk bytes it receives on its ingress; the batch completes when the wrapped transport has
// completed it AND both its egress and ingress shares have elapsed since posting. Non-bulk
// operations and collectives pass through untouched (they are small; the demo's compute is not
// scaled). A wait that reaches the emulated completion time sleeps (never spins); one whose
// deadline comes first sleeps until the deadline and reports kTimeout, as a slow link would.
//
// Threading: like any Transport, one object per rank, used by one thread at a time; its batches
// may outlive it (they hold only their completion time and the wrapped batch).
#pragma once

#include <memory>

#include "swiftbalancer/transport/transport.h"

namespace swiftbalancer {

class EmulatedLinkTransport final : public Transport {
 public:
  // `inner` must outlive this object. bytes_per_second must be positive and finite (InputError).
  EmulatedLinkTransport(Transport& inner, double bytes_per_second);

  static double gbps_to_bytes_per_second(double gbps) { return gbps * 1e9 / 8.0; }
  double bytes_per_second() const { return bytes_per_second_; }

  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::string name() const override;
  bool broken() const override { return inner_.broken(); }
  // Only delays completions, so it moves whatever memory the wrapped transport moves.
  bool can_move(MemoryKind kind) const override { return inner_.can_move(kind); }
  Status all_gather(std::span<const std::int64_t> mine, std::span<std::int64_t> out,
                    Millis timeout) override {
    return inner_.all_gather(mine, out, timeout);
  }
  Status all_reduce(std::span<std::int64_t> values, ReduceOp op, Millis timeout) override {
    return inner_.all_reduce(values, op, timeout);
  }
  std::unique_ptr<TransferBatch> post(std::span<const P2POp> ops) override;

 private:
  Transport& inner_;
  double bytes_per_second_;
  Clock::time_point egress_free_{}, ingress_free_{};  // when this rank's port is free again
};

}  // namespace swiftbalancer
