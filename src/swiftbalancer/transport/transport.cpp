#include "swiftbalancer/transport/transport.h"

#include <string>
#include <utility>

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

}  // namespace

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
