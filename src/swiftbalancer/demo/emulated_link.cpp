#include "swiftbalancer/demo/emulated_link.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <thread>
#include <utility>

namespace swiftbalancer {
namespace {

class EmulatedLinkBatch final : public TransferBatch {
 public:
  EmulatedLinkBatch(std::unique_ptr<TransferBatch> inner, Clock::time_point ready)
      : inner_(std::move(inner)), ready_(ready) {}

  State poll() override {
    const State s = inner_->poll();
    if (s == State::kCompleted && Clock::now() < ready_) return State::kPending;
    return s;
  }

  Status wait(Clock::time_point deadline) override {
    Status s = inner_->wait(deadline);
    if (!s.ok()) return s;  // the wrapped batch cancelled itself
    if (ready_ > deadline) {
      std::this_thread::sleep_until(deadline);
      return Status::Timeout(
          "emulated link: the transfer needs until " +
          std::to_string(
              std::chrono::duration_cast<std::chrono::microseconds>(ready_ - deadline).count()) +
          " us past the deadline");
    }
    std::this_thread::sleep_until(ready_);
    return Status::Ok();
  }

  Status cancel() override { return inner_->cancel(); }

 private:
  std::unique_ptr<TransferBatch> inner_;
  Clock::time_point ready_;
};

}  // namespace

EmulatedLinkTransport::EmulatedLinkTransport(Transport& inner, double bytes_per_second)
    : inner_(inner), bytes_per_second_(bytes_per_second) {
  if (!(bytes_per_second > 0) || !std::isfinite(bytes_per_second))
    throw InputError("emulated link bandwidth must be positive and finite");
}

std::string EmulatedLinkTransport::name() const {
  std::ostringstream os;
  os << inner_.name() << "+link(" << bytes_per_second_ * 8.0 / 1e9 << " Gbit/s)";
  return os.str();
}

std::unique_ptr<TransferBatch> EmulatedLinkTransport::post(std::span<const P2POp> ops) {
  std::size_t out = 0, in = 0;
  for (const P2POp& op : ops) {
    if (!op.bulk || op.peer == inner_.rank()) continue;  // a self-transfer uses no link
    (op.kind == P2POp::Kind::kSend ? out : in) += op.size;
  }
  auto batch = inner_.post(ops);  // validates the operations (may throw InputError)
  if (out == 0 && in == 0) return batch;
  const auto now = Clock::now();
  auto occupy = [&](Clock::time_point& free_at, std::size_t bytes) {
    if (bytes == 0) return now;
    const auto d = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(static_cast<double>(bytes) / bytes_per_second_));
    free_at = std::max(free_at, now) + d;
    return free_at;
  };
  const auto ready = std::max(occupy(egress_free_, out), occupy(ingress_free_, in));
  return std::make_unique<EmulatedLinkBatch>(std::move(batch), ready);
}

}  // namespace swiftbalancer
