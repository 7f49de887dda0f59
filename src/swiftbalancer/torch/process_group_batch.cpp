// ProcessGroupBatch: a batch's completion, wait and cancel (see process_group_transport.h).
#include "swiftbalancer/torch/process_group_state.h"

#include <mutex>
#include <utility>

#include "swiftbalancer/core/status.h"

namespace swiftbalancer::torch_engine {

at::Tensor bytes_view(const P2POp& op, c10::Device device) {
  return at::from_blob(op.data, {static_cast<std::int64_t>(op.size)},
                       at::TensorOptions().dtype(at::kByte).device(device));
}

std::string brief(const char* what) {
  const std::string s(what);
  return s.substr(0, s.find('\n'));
}

std::string what_of(const std::exception_ptr& e) {
  if (!e) return "unknown error";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return brief(x.what());
  } catch (...) {
  }
  return "unknown error";
}

bool ProcessGroupBatch::finished() const {
  if (!t_.gloo_weights_) return b_->result.has_value();
  std::lock_guard<std::mutex> lock(t_.mu_);
  return b_->result.has_value();
}

TransferBatch::State ProcessGroupBatch::advance() {
  ProcessGroupTransport::BatchState& b = *b_;
  if (t_.gloo_weights_) {
    std::lock_guard<std::mutex> lock(t_.mu_);
    if (!b.result) return State::kPending;
    return b.result->ok() ? State::kCompleted : State::kFailed;
  }
  for (;;) {
    if (b.result) return b.result->ok() ? State::kCompleted : State::kFailed;
    bool done = true;
    if (b.group_work) {
      if (!b.group_work->isCompleted()) {
        done = false;
      } else if (!b.group_work->isSuccess()) {
        b.result = Status::TransportError("transfer failed: " + what_of(b.group_work->exception()));
        continue;
      }
    }
    if (!done) return State::kPending;
    if (b.stage + 1 >= b.stages.size()) {
      b.result = Status::Ok();
      continue;
    }
    ++b.stage;
    try {
      t_.post_stage(b);
    } catch (const std::exception& e) {
      b.result =
          Status::TransportError(std::string("posting transfers failed: ") + brief(e.what()));
    }
  }
}

TransferBatch::State ProcessGroupBatch::poll() {
  if (cancelled_) return State::kFailed;
  return advance();
}

Status ProcessGroupBatch::wait(Clock::time_point deadline) {
  if (cancelled_) return Status::Cancelled("the batch was cancelled");
  for (;;) {
    const State s = advance();
    if (s == State::kCompleted) return Status::Ok();
    if (s == State::kFailed) {
      Status why = Status::Ok();
      {
        std::optional<std::lock_guard<std::mutex>> lock;
        if (t_.gloo_weights_) lock.emplace(t_.mu_);
        why = *b_->result;
      }
      (void)cancel();
      return why;
    }
    if (Clock::now() >= deadline) {
      const Status c = cancel();
      (void)c;
      return Status::Timeout("transfers did not complete by the deadline");
    }
    if (t_.gloo_weights_) {
      std::unique_lock<std::mutex> lock(t_.mu_);
      t_.post_cv_.notify_one();  // a stage still queued is posted now: this thread blocks anyway
      t_.done_cv_.wait_until(lock, deadline, [&] { return b_->result.has_value(); });
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }
}

Status ProcessGroupBatch::cancel() {
  if (!cancelled_) cancelled_ = cancel_once();
  return *cancelled_;
}

Status ProcessGroupBatch::cancel_once() {
  ProcessGroupTransport::BatchState& b = *b_;
  bool outstanding = false;
  if (t_.gloo_weights_) {
    // Copies taken under the lock: the waiter releases an operation's work once it completed.
    std::vector<c10::intrusive_ptr<c10d::Work>> pending;
    {
      std::unique_lock<std::mutex> lock(t_.mu_);
      if (b.result && b.result->ok()) return Status::Ok();
      b.cancelled = true;  // the posting thread posts no further stage
      // A stage being posted is known once its send/recv calls returned (they only enqueue).
      t_.done_cv_.wait(lock, [&] { return !b.posting; });
      for (const auto& op : b.gloo_ops)
        if (op->state == ProcessGroupTransport::Op::State::kPending) pending.push_back(op->work);
      if (!b.result) b.result = Status::Cancelled("the batch was cancelled");
    }
    for (const auto& work : pending) work->abort();
    // An aborted gloo receive stays posted (a late message may still land): the buffers stay
    // in use. Operations that had already ended leave nothing behind.
    outstanding = !pending.empty();
  } else if (b.result && b.result->ok()) {
    return Status::Ok();
  } else if (b.group_work && !b.group_work->isCompleted()) {
    // NCCL cannot withdraw posted operations: the abort tears the communicator down.
    b.group_work->abort();
    t_.mark_broken("a transfer was aborted on " + t_.weights_->getBackendName() +
                   " (the communicator is torn down)");
    outstanding = true;
  }
  if (!b.result) b.result = Status::Cancelled("the batch was cancelled");
  if (!outstanding) return Status::Ok();
  t_.park(b_);
  return Status::TransportError(
      "operations still posted on the " + t_.weights_->getBackendName() +
      " group: their buffers must be kept (a late message may still land)");
}

}  // namespace swiftbalancer::torch_engine
