// The process-group transport's shared state: a gloo operation, a batch's stages, a collective
// the posting thread starts, and the TransferBatch the transport hands out. Seen by the
// transport's two files only (process_group_transport.cpp, process_group_batch.cpp); owner: the
// torch component.
#pragma once

#include <ATen/ATen.h>

#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "swiftbalancer/torch/process_group_transport.h"

namespace swiftbalancer::torch_engine {

// A view of an operation's bytes as a uint8 tensor on `device` (no copy).
at::Tensor bytes_view(const P2POp& op, c10::Device device);
// The first line of an error text: c10's errors may carry a C++ backtrace after it.
std::string brief(const char* what);
std::string what_of(const std::exception_ptr& e);

// One gloo operation the waiter thread waits on.
struct ProcessGroupTransport::Op {
  // Released by the waiter once the operation completed (state kDone), under mu_.
  c10::intrusive_ptr<c10d::Work> work;
  std::weak_ptr<BatchState> batch;  // whose stage it belongs to
  enum class State { kPending, kDone, kFailed } state = State::kPending;  // guarded by mu_
  std::string error;
};

// A batch: its operations in pair order, cut into stages, and the stage in flight. `ops` and
// `stages` are fixed once post() returns. On gloo the rest is shared by the serving, posting and
// waiting threads and guarded by the transport's mu_; otherwise it is the serving thread's.
struct ProcessGroupTransport::BatchState {
  std::vector<P2POp> ops;
  std::vector<std::vector<std::size_t>> stages;  // indices into ops
  std::size_t stage = 0;                         // the stage posted last (or being posted)
  std::size_t ops_left = 0;                      // gloo: of that stage, not completed yet
  bool posting = false;    // gloo: the posting thread is calling send/recv for it
  bool cancelled = false;  // gloo: no further stage is posted
  // The stage in flight: gloo operations (waited on by the waiter thread) or one coalesced
  // work per stage (other backends).
  std::vector<std::shared_ptr<Op>> gloo_ops;
  c10::intrusive_ptr<c10d::Work> group_work;
  std::optional<Status> result;  // set once completed (Ok) or failed
};

// A collective asked for on a CPU control group, started by the posting thread in the order
// asked for. `values`, `start` and `what` are fixed when queued; the rest is guarded by mu_.
struct ProcessGroupTransport::CollectiveJob {
  const char* what = "";
  std::vector<std::int64_t> values;  // the caller's values, copied: the caller may go on
  Starter start;
  bool started = false;    // start() returned, or failed (`failed` then says why)
  bool abandoned = false;  // the asker stopped waiting: it is not started any more
  Started s;
  std::optional<Status> failed;
};

class ProcessGroupBatch final : public TransferBatch {
 public:
  ProcessGroupBatch(ProcessGroupTransport& t, std::shared_ptr<ProcessGroupTransport::BatchState> b)
      : t_(t), b_(std::move(b)) {}
  ~ProcessGroupBatch() override {
    if (!finished()) (void)cancel();
  }
  State poll() override;
  Status wait(Clock::time_point deadline) override;
  Status cancel() override;

 private:
  // Checks the stage in flight and, off gloo, posts the next one when it completed (on gloo the
  // transport's threads do that).
  State advance();
  bool finished() const;
  Status cancel_once();
  ProcessGroupTransport& t_;
  std::shared_ptr<ProcessGroupTransport::BatchState> b_;
  // The answer of the first cancel(), given again to every later call: wait() cancels a failed
  // batch itself, and the caller's own cancel() must still learn that buffers stay in use.
  std::optional<Status> cancelled_;
};

}  // namespace swiftbalancer::torch_engine
