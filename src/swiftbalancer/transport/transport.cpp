#include "swiftbalancer/transport/transport.h"

#include <algorithm>
#include <exception>
#include <string>
#include <utility>
#include <vector>

namespace swiftbalancer {
namespace {

class FailedBatch final : public TransferBatch {
 public:
  explicit FailedBatch(Status why) : why_(std::move(why)) {}
  State poll() override { return State::kFailed; }
  Status wait(Clock::time_point) override { return why_; }
  Status cancel() override { return Status::Ok(); }  // nothing was posted

 private:
  Status why_;
};

// A collective already run to its end: its status and values.
class CompletedCollective final : public PendingCollective {
 public:
  CompletedCollective(Status status, std::vector<std::int64_t> values)
      : status_(std::move(status)), values_(std::move(values)) {}
  Status wait(std::span<std::int64_t> out) override {
    if (status_.ok()) std::copy(values_.begin(), values_.end(), out.begin());
    return status_;
  }

 private:
  Status status_;
  std::vector<std::int64_t> values_;
};

}  // namespace

std::unique_ptr<PendingCollective> Transport::start_all_reduce(std::span<const std::int64_t> values,
                                                               ReduceOp op, Millis timeout) {
  std::vector<std::int64_t> v(values.begin(), values.end());
  Status s = Status::Ok();
  try {
    s = all_reduce(v, op, timeout);
  } catch (const std::exception& e) {
    s = Status::TransportError(std::string("all-reduce failed: ") + e.what());
  }
  return std::make_unique<CompletedCollective>(std::move(s), std::move(v));
}

std::unique_ptr<PendingCollective> Transport::start_all_gather(std::span<const std::int64_t> mine,
                                                               Millis timeout) {
  std::vector<std::int64_t> v(mine.size() * static_cast<std::size_t>(size()));
  Status s = Status::Ok();
  try {
    s = all_gather(mine, v, timeout);
  } catch (const std::exception& e) {
    s = Status::TransportError(std::string("all-gather failed: ") + e.what());
  }
  return std::make_unique<CompletedCollective>(std::move(s), std::move(v));
}

std::unique_ptr<TransferBatch> failed_batch(Status why) {
  return std::make_unique<FailedBatch>(std::move(why));
}

Status check_p2p_ops(std::span<const P2POp> ops, const Transport& transport) {
  for (const P2POp& op : ops) {
    if (op.peer < 0 || op.peer >= transport.size())
      return Status::InvalidInput("transfer peer " + std::to_string(op.peer) + " out of range");
    if (op.tag < 0 || op.tag >= Transport::kMaxTag)
      return Status::InvalidInput("transfer tag " + std::to_string(op.tag) + " out of range");
    if (!transport.can_move(op.memory))
      return Status::InvalidInput("the " + transport.name() + " transport cannot move " +
                                  memory_kind_name(op.memory) + " memory");
  }
  return Status::Ok();
}

}  // namespace swiftbalancer
