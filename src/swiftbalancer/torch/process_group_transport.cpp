#include "swiftbalancer/torch/process_group_transport.h"

#include "swiftbalancer/torch/process_group_state.h"

#include <ATen/ATen.h>
#include <c10/core/StreamGuard.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <utility>

#include "swiftbalancer/core/status.h"
#include "swiftbalancer/exec/thread_priority.h"

namespace swiftbalancer::torch_engine {
namespace {

c10d::ReduceOp to_c10d(ReduceOp op) {
  switch (op) {
    case ReduceOp::kMin:
      return c10d::ReduceOp::MIN;
    case ReduceOp::kMax:
      return c10d::ReduceOp::MAX;
    case ReduceOp::kSum:
      break;
  }
  return c10d::ReduceOp::SUM;
}

}  // namespace

// A collective running on the control group's own threads (gloo) or stream (NCCL): started by
// start_all_reduce() or start_all_gather(), waited for with what is left of its timeout. Its
// result is the concatenation of `parts`.
class ProcessGroupPendingCollective final : public PendingCollective {
 public:
  ProcessGroupPendingCollective(ProcessGroupTransport& t, const char* what, Status failed)
      : t_(t), what_(what), failed_(std::move(failed)) {}
  ProcessGroupPendingCollective(ProcessGroupTransport& t, const char* what,
                                c10::intrusive_ptr<c10d::Work> work, std::vector<at::Tensor> inputs,
                                std::vector<at::Tensor> parts, Clock::time_point deadline)
      : t_(t),
        what_(what),
        work_(std::move(work)),
        inputs_(std::move(inputs)),
        parts_(std::move(parts)),
        deadline_(deadline) {}

  Status wait(std::span<std::int64_t> out) override {
    if (!failed_.ok()) return failed_;
    // At least 1 ms: c10d reads a zero timeout as none at all.
    const auto left = std::max(
        Millis(1), std::chrono::duration_cast<Millis>(deadline_ - Clock::now()) + Millis(1));
    if (Status s = t_.wait_work(work_, left, what_); !s.ok()) return s;
    std::size_t at = 0;
    for (const at::Tensor& part : parts_) {
      const at::Tensor got = part.cpu();
      const auto n = static_cast<std::size_t>(got.numel());
      if (at + n > out.size()) break;
      std::memcpy(out.data() + at, got.data_ptr<std::int64_t>(), n * sizeof(std::int64_t));
      at += n;
    }
    return Status::Ok();
  }

 private:
  ProcessGroupTransport& t_;
  const char* what_;
  Status failed_ = Status::Ok();
  c10::intrusive_ptr<c10d::Work> work_;
  // Owned: the collective reads and writes them in the background.
  std::vector<at::Tensor> inputs_, parts_;
  Clock::time_point deadline_;
};

ProcessGroupTransport::ProcessGroupTransport(c10::intrusive_ptr<c10d::ProcessGroup> control,
                                             c10::intrusive_ptr<c10d::ProcessGroup> weights,
                                             ProcessGroupTransportOptions options)
    : control_(std::move(control)), weights_(std::move(weights)), opt_(options) {
  if (!control_ || !weights_) throw InputError("process groups must not be None");
  if (control_->getRank() != weights_->getRank() || control_->getSize() != weights_->getSize())
    throw InputError("the control and weight groups differ in rank or size (" +
                     std::to_string(control_->getRank()) + "/" +
                     std::to_string(control_->getSize()) + " against " +
                     std::to_string(weights_->getRank()) + "/" +
                     std::to_string(weights_->getSize()) + ")");
  if (opt_.max_ops_in_flight < 1) throw InputError("max_ops_in_flight must be at least 1");
  rank_ = control_->getRank();
  size_ = control_->getSize();
  weight_kind_ = opt_.weight_device.is_cpu() ? MemoryKind::kHost : MemoryKind::kDevice;
  // CPU tensors move on gloo (torch's CPU point-to-point backend), whatever else the group has.
  gloo_weights_ = opt_.weight_device.is_cpu();
  if (gloo_weights_) {
    waiter_ = std::thread([this] { waiter_loop(); });
    poster_ = std::thread([this] { poster_loop(); });
  }
}

ProcessGroupTransport::~ProcessGroupTransport() {
  std::vector<c10::intrusive_ptr<c10d::Work>> pending;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    auto keep = [&](const std::shared_ptr<Op>& op) {
      if (op->work) pending.push_back(op->work);  // a completed one was released
    };
    for (const auto& op : queue_) keep(op);
    if (waiting_) keep(waiting_);
    for (const auto& b : parked_)
      for (const auto& op : b->gloo_ops) keep(op);
  }
  cv_.notify_all();
  post_cv_.notify_all();
  // Wakes the waiter out of a wait on an operation that will never complete.
  for (const auto& work : pending) work->abort();
  if (waiter_.joinable()) waiter_.join();
  if (poster_.joinable()) poster_.join();
}

std::string ProcessGroupTransport::name() const {
  const std::string c = control_->getBackendName(), w = weights_->getBackendName();
  return c == w && control_.get() == weights_.get() ? "torch-" + c : "torch-" + c + "+" + w;
}

void ProcessGroupTransport::mark_broken(const std::string& why) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!broken_.load(std::memory_order_relaxed)) broken_why_ = why;
  broken_.store(true, std::memory_order_release);
}

Status ProcessGroupTransport::broken_status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return Status::TransportError("the transport is broken since: " + broken_why_);
}

std::size_t ProcessGroupTransport::parked_operations() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::size_t n = 0;
  for (const auto& b : parked_) n += b->ops.size();
  return n;
}

Status ProcessGroupTransport::wait_work(const c10::intrusive_ptr<c10d::Work>& work, Millis timeout,
                                        const char* what) {
  const std::string op = std::string(what) + " on " + control_->getBackendName();
  if (opt_.control_device.is_cpu()) {
    // gloo runs collectives on its own threads; Work::wait(timeout) only waits, so an expired
    // wait leaves the collective running (and the group out of step).
    try {
      work->wait(timeout);
      return Status::Ok();
    } catch (const std::exception& e) {
      if (!work->isCompleted()) {
        mark_broken(op + " timed out");
        return Status::Timeout(op + " timed out after " + std::to_string(timeout.count()) + " ms");
      }
      mark_broken(op + " failed: " + brief(e.what()));
      return Status::TransportError(op + " failed: " + brief(e.what()));
    }
  }
  const auto deadline = Clock::now() + timeout;
  while (!work->isCompleted()) {
    if (Clock::now() >= deadline) {
      work->abort();
      mark_broken(op + " timed out");
      return Status::Timeout(op + " timed out after " + std::to_string(timeout.count()) + " ms");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  if (!work->isSuccess()) {
    mark_broken(op + " failed");
    return Status::TransportError(op + " failed: " + what_of(work->exception()));
  }
  return Status::Ok();
}

at::Tensor ProcessGroupTransport::owned_copy(std::span<const std::int64_t> values) const {
  // Never the caller's memory: a timed-out collective may still write its tensors.
  return at::from_blob(const_cast<std::int64_t*>(values.data()),
                       {static_cast<std::int64_t>(values.size())}, at::kLong)
      .to(opt_.control_device, /*non_blocking=*/false, /*copy=*/true);
}

Status ProcessGroupTransport::run_collective(
    const char* what, Millis timeout,
    const std::function<c10::intrusive_ptr<c10d::Work>()>& start) {
  try {
    return wait_work(start(), timeout, what);
  } catch (const std::exception& e) {
    const std::string why = std::string(what) + " failed: " + brief(e.what());
    mark_broken(why);
    return Status::TransportError(why);
  }
}

Status ProcessGroupTransport::all_gather(std::span<const std::int64_t> mine,
                                         std::span<std::int64_t> out, Millis timeout) {
  if (broken()) return broken_status();
  if (out.size() != mine.size() * static_cast<std::size_t>(size_))
    return Status::InvalidInput("all_gather: out holds " + std::to_string(out.size()) +
                                " values, expected " +
                                std::to_string(mine.size() * static_cast<std::size_t>(size_)));
  if (mine.empty()) return Status::Ok();
  const auto opts = at::TensorOptions().dtype(at::kLong).device(opt_.control_device);
  std::vector<std::vector<at::Tensor>> outs(1);
  for (int r = 0; r < size_; ++r)
    outs[0].push_back(at::empty({static_cast<std::int64_t>(mine.size())}, opts));
  std::vector<at::Tensor> ins{owned_copy(mine)};
  if (Status s =
          run_collective("all-gather", timeout, [&] { return control_->allgather(outs, ins); });
      !s.ok())
    return s;
  for (int r = 0; r < size_; ++r) {
    const at::Tensor got = outs[0][static_cast<std::size_t>(r)].cpu();
    std::memcpy(out.data() + static_cast<std::size_t>(r) * mine.size(),
                got.data_ptr<std::int64_t>(), mine.size() * sizeof(std::int64_t));
  }
  return Status::Ok();
}

Status ProcessGroupTransport::all_reduce(std::span<std::int64_t> values, ReduceOp op,
                                         Millis timeout) {
  if (broken()) return broken_status();
  if (values.empty()) return Status::Ok();
  std::vector<at::Tensor> ts{owned_copy(values)};
  c10d::AllreduceOptions o;
  o.reduceOp = to_c10d(op);
  if (Status s = run_collective("all-reduce", timeout, [&] { return control_->allreduce(ts, o); });
      !s.ok())
    return s;
  const at::Tensor got = ts[0].cpu();
  std::memcpy(values.data(), got.data_ptr<std::int64_t>(), values.size() * sizeof(std::int64_t));
  return Status::Ok();
}

std::unique_ptr<PendingCollective> ProcessGroupTransport::start_collective(
    const char* what, const std::function<Started()>& start) {
  using Pending = ProcessGroupPendingCollective;
  if (broken()) return std::make_unique<Pending>(*this, what, broken_status());
  try {
    Started s = start();
    return std::make_unique<Pending>(*this, what, std::move(s.work), std::move(s.inputs),
                                     std::move(s.parts), s.deadline);
  } catch (const std::exception& e) {
    const std::string why = std::string(what) + " failed: " + brief(e.what());
    mark_broken(why);
    return std::make_unique<Pending>(*this, what, Status::TransportError(why));
  }
}

std::unique_ptr<PendingCollective> ProcessGroupTransport::start_all_reduce(
    std::span<const std::int64_t> values, ReduceOp op, Millis timeout) {
  return start_collective("all-reduce", [&] {
    Started s;
    s.deadline = Clock::now() + timeout;
    s.parts = {owned_copy(values)};
    c10d::AllreduceOptions o;
    o.reduceOp = to_c10d(op);
    s.work = control_->allreduce(s.parts, o);
    return s;
  });
}

std::unique_ptr<PendingCollective> ProcessGroupTransport::start_all_gather(
    std::span<const std::int64_t> mine, Millis timeout) {
  return start_collective("all-gather", [&] {
    Started s;
    s.deadline = Clock::now() + timeout;
    s.inputs = {owned_copy(mine)};
    const auto opts = at::TensorOptions().dtype(at::kLong).device(opt_.control_device);
    std::vector<std::vector<at::Tensor>> outs(1);
    for (int r = 0; r < size_; ++r)
      outs[0].push_back(at::empty({static_cast<std::int64_t>(mine.size())}, opts));
    s.work = control_->allgather(outs, s.inputs);
    s.parts = std::move(outs[0]);
    return s;
  });
}

std::unique_ptr<TransferBatch> ProcessGroupTransport::post(std::span<const P2POp> ops) {
  if (broken()) return failed_batch(broken_status());
  if (Status s = check_p2p_ops(ops, *this); !s.ok()) return failed_batch(s);
  auto b = std::make_shared<BatchState>();
  for (const P2POp& op : ops)
    if (op.size > 0) b->ops.push_back(op);
  // Pair order: both ends of a pair see the same messages in the same order (sender's rank,
  // then tag, then posting order, which the contract makes match for one pair and tag).
  auto src = [this](const P2POp& o) { return o.kind == P2POp::Kind::kSend ? rank_ : o.peer; };
  std::stable_sort(b->ops.begin(), b->ops.end(), [&](const P2POp& x, const P2POp& y) {
    if (x.peer != y.peer) return x.peer < y.peer;
    if (src(x) != src(y)) return src(x) < src(y);
    return x.tag < y.tag;
  });
  const std::size_t per_pair =
      std::max<std::size_t>(1, static_cast<std::size_t>(opt_.max_ops_in_flight) /
                                   static_cast<std::size_t>(std::max(1, size_ - 1)));
  std::size_t k = 0;
  for (std::size_t i = 0; i < b->ops.size(); ++i) {
    k = (i > 0 && b->ops[i].peer == b->ops[i - 1].peer) ? k + 1 : 0;
    const std::size_t stage = k / per_pair;
    if (b->stages.size() <= stage) b->stages.resize(stage + 1);
    b->stages[stage].push_back(i);
  }
  if (b->stages.empty()) {
    b->result = Status::Ok();
  } else if (gloo_weights_) {
    // The posting thread calls send/recv: creating gloo's operations costs the serving thread
    // tens of microseconds each, and a stage can hold hundreds.
    {
      std::lock_guard<std::mutex> lock(mu_);
      to_post_.push_back(b);
    }
    post_cv_.notify_one();
  } else {
    try {
      post_stage(*b);
    } catch (const std::exception& e) {
      b->result =
          Status::TransportError(std::string("posting transfers failed: ") + brief(e.what()));
    }
  }
  return std::make_unique<ProcessGroupBatch>(*this, std::move(b));
}

void ProcessGroupTransport::post_stage(BatchState& b) {
  const std::vector<std::size_t>& idx = b.stages[b.stage];
  b.group_work.reset();
  std::optional<c10::StreamGuard> guard;
  if (stream_) guard.emplace(*stream_);
  const c10::DeviceType type = opt_.weight_device.type();
  weights_->startCoalescing(type);
  for (std::size_t i : idx) {
    const P2POp& op = b.ops[i];
    std::vector<at::Tensor> t{bytes_view(op, opt_.weight_device)};
    if (op.kind == P2POp::Kind::kSend)
      weights_->send(t, op.peer, 0);
    else
      weights_->recv(t, op.peer, 0);
  }
  b.group_work = weights_->endCoalescing(type);
}

// gloo: posts the stages handed over by post() (stage 0) and by the waiter (a stage completed,
// the next is due). send/recv only enqueue work with gloo, so this thread never blocks for
// long, and a stage is posted as soon as the previous one completed, whatever the serving
// thread is doing. Every rank posts a batch's stages in the same order, as before.
void ProcessGroupTransport::poster_loop() {
  (void)make_current_thread_batch();  // never preempts the serving thread that hands it work
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    post_cv_.wait(lock, [&] { return stop_ || !to_post_.empty(); });
    if (stop_) return;
    std::shared_ptr<BatchState> b = std::move(to_post_.front());
    to_post_.pop_front();
    if (b->cancelled || b->result) continue;
    b->posting = true;
    const std::vector<std::size_t>& idx = b->stages[b->stage];
    lock.unlock();
    std::vector<std::shared_ptr<Op>> posted;
    std::optional<Status> failed;
    try {
      for (std::size_t i : idx) {
        const P2POp& op = b->ops[i];
        std::vector<at::Tensor> t{bytes_view(op, opt_.weight_device)};
        auto o = std::make_shared<Op>();
        o->work = op.kind == P2POp::Kind::kSend ? weights_->send(t, op.peer, op.tag)
                                                : weights_->recv(t, op.peer, op.tag);
        o->batch = b;
        posted.push_back(std::move(o));
      }
    } catch (const std::exception& e) {
      // What was posted stays referenced: the serving thread's cancel aborts and parks it.
      failed = Status::TransportError(std::string("posting transfers failed: ") + brief(e.what()));
    }
    lock.lock();
    b->posting = false;
    b->ops_left = posted.size();
    if (failed && !b->result) b->result = std::move(failed);
    queue_.insert(queue_.end(), posted.begin(), posted.end());
    b->gloo_ops = std::move(posted);
    cv_.notify_all();
    done_cv_.notify_all();
  }
}

void ProcessGroupTransport::waiter_loop() {
  (void)make_current_thread_batch();
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    std::shared_ptr<Op> op = queue_.front();
    queue_.pop_front();
    waiting_ = op;
    lock.unlock();
    Op::State state = Op::State::kDone;
    std::string error;
    try {
      // No timeout: gloo's own (the group's) bounds it; an abort() ends it early.
      if (!op->work->wait()) {
        state = Op::State::kFailed;
        error = "aborted";
      }
    } catch (const std::exception& e) {
      state = Op::State::kFailed;
      error = brief(e.what());
    }
    // A completed operation's work (its tensor views, gloo's buffer) is released here, on this
    // thread: the serving thread, which drops the batch at the commit, has no teardown left to
    // do. A failed one keeps it: cancel() and parking may still need it.
    c10::intrusive_ptr<c10d::Work> done;
    lock.lock();
    waiting_.reset();
    op->state = state;
    op->error = std::move(error);
    if (state == Op::State::kDone) done = std::move(op->work);
    if (std::shared_ptr<BatchState> b = op->batch.lock()) {
      if (state == Op::State::kFailed) {
        if (!b->result) b->result = Status::TransportError("transfer failed: " + op->error);
      } else if (--b->ops_left == 0 && !b->result && !b->cancelled) {
        if (b->stage + 1 < b->stages.size()) {
          ++b->stage;
          to_post_.push_back(b);
          post_cv_.notify_one();
        } else {
          b->result = Status::Ok();
        }
      }
    }
    done_cv_.notify_all();
    if (done) {
      lock.unlock();
      done.reset();
      lock.lock();
    }
  }
}

void ProcessGroupTransport::park(std::shared_ptr<BatchState> b) {
  std::lock_guard<std::mutex> lock(mu_);
  parked_.push_back(std::move(b));
}

}  // namespace swiftbalancer::torch_engine
