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
// start_all_reduce() or start_all_gather() (on a CPU group, by the posting thread: `job_`),
// waited for with what is left of its timeout. Its result is the concatenation of the parts.
class ProcessGroupPendingCollective final : public PendingCollective {
 public:
  using Started = ProcessGroupTransport::Started;
  using Job = ProcessGroupTransport::CollectiveJob;
  ProcessGroupPendingCollective(ProcessGroupTransport& t, const char* what, Status failed)
      : t_(t), what_(what), failed_(std::move(failed)) {}
  ProcessGroupPendingCollective(ProcessGroupTransport& t, const char* what, Started started,
                                Clock::time_point deadline)
      : t_(t), what_(what), started_(std::move(started)), deadline_(deadline) {}
  ProcessGroupPendingCollective(ProcessGroupTransport& t, const char* what,
                                std::shared_ptr<Job> job, Clock::time_point deadline)
      : t_(t), what_(what), job_(std::move(job)), deadline_(deadline) {}

  Status wait(std::span<std::int64_t> out) override {
    if (!failed_.ok()) return failed_;
    if (job_) {
      if (Status s = t_.await_start(*job_, deadline_, started_); !s.ok()) return s;
      job_.reset();
    }
    // At least 1 ms: c10d reads a zero timeout as none at all.
    const auto left = std::max(
        Millis(1), std::chrono::duration_cast<Millis>(deadline_ - Clock::now()) + Millis(1));
    if (Status s = t_.wait_work(started_.work, left, what_); !s.ok()) return s;
    std::size_t at = 0;
    for (const at::Tensor& part : started_.parts) {
      // A CPU part is read in place: a cold dispatcher call costs the serving thread more.
      const at::Tensor got = part.is_cpu() ? part : part.cpu();
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
  Started started_;
  std::shared_ptr<Job> job_;  // queued for the posting thread, until it started
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
  if (opt_.poll_interval.count() < 1) throw InputError("poll_interval must be at least 1 ms");
  rank_ = control_->getRank();
  size_ = control_->getSize();
  weight_kind_ = opt_.weight_device.is_cpu() ? MemoryKind::kHost : MemoryKind::kDevice;
  // CPU tensors move on gloo (torch's CPU point-to-point backend), whatever else the group has.
  gloo_weights_ = opt_.weight_device.is_cpu();
  if (gloo_weights_) waiter_ = std::thread([this] { waiter_loop(); });
  if (gloo_weights_ || opt_.control_device.is_cpu())
    poster_ = std::thread([this] { poster_loop(); });
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
  done_cv_.notify_all();
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
  // Done already, as async mode's collectives are when read a step after their start: what
  // Work::wait() would do then (c10d: a completed, successful work's wait returns at once, its
  // synchronize() a no-op on CPU), without its call or the error text built below.
  if (work->isCompleted() && work->isSuccess()) return Status::Ok();
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

Status ProcessGroupTransport::all_gather(std::span<const std::int64_t> mine,
                                         std::span<std::int64_t> out, Millis timeout) {
  if (broken()) return broken_status();
  if (out.size() != mine.size() * static_cast<std::size_t>(size_))
    return Status::InvalidInput("all_gather: out holds " + std::to_string(out.size()) +
                                " values, expected " +
                                std::to_string(mine.size() * static_cast<std::size_t>(size_)));
  if (mine.empty()) return Status::Ok();
  // Started and waited for like async mode's: on a CPU group it then takes its turn after the
  // collectives already asked for.
  return start_all_gather(mine, timeout)->wait(out);
}

Status ProcessGroupTransport::all_reduce(std::span<std::int64_t> values, ReduceOp op,
                                         Millis timeout) {
  if (broken()) return broken_status();
  if (values.empty()) return Status::Ok();
  return start_all_reduce(values, op, timeout)->wait(values);
}

std::unique_ptr<PendingCollective> ProcessGroupTransport::start_collective(
    const char* what, std::span<const std::int64_t> values, Millis timeout, Starter start) {
  using Pending = ProcessGroupPendingCollective;
  if (broken()) return std::make_unique<Pending>(*this, what, broken_status());
  const auto deadline = Clock::now() + timeout;
  if (opt_.control_device.is_cpu()) {
    auto job = std::make_shared<CollectiveJob>();
    job->what = what;
    job->values.assign(values.begin(), values.end());
    job->start = std::move(start);
    {
      std::lock_guard<std::mutex> lock(mu_);
      to_post_.push_back(PostJob{nullptr, job});
    }
    // Not woken: the posting thread finds it at its next look (see poster_loop).
    return std::make_unique<Pending>(*this, what, std::move(job), deadline);
  }
  try {
    return std::make_unique<Pending>(*this, what, start(values), deadline);
  } catch (const std::exception& e) {
    const std::string why = std::string(what) + " failed: " + brief(e.what());
    mark_broken(why);
    return std::make_unique<Pending>(*this, what, Status::TransportError(why));
  }
}

void ProcessGroupTransport::start_job(CollectiveJob& job) {
  Started s;
  std::optional<Status> failed;
  if (broken()) {
    failed = broken_status();
  } else {
    try {
      s = job.start(job.values);
    } catch (const std::exception& e) {
      const std::string why = std::string(job.what) + " failed: " + brief(e.what());
      mark_broken(why);
      failed = Status::TransportError(why);
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  job.s = std::move(s);
  job.failed = std::move(failed);
  job.started = true;
  done_cv_.notify_all();
}

Status ProcessGroupTransport::await_start(CollectiveJob& job, Clock::time_point deadline,
                                          Started& out) {
  std::unique_lock<std::mutex> lock(mu_);
  // About to block anyway: a wake-up of the posting thread costs nothing more now. Past the
  // deadline it is not woken for this job (it fails here; started late, it would run alone).
  if (!job.started && Clock::now() < deadline) post_cv_.notify_one();
  if (!done_cv_.wait_until(lock, deadline, [&] { return job.started || stop_; })) {
    // Never started here while the other ranks may have: the group is out of step.
    job.abandoned = true;
    lock.unlock();
    const std::string why = std::string(job.what) + " on " + control_->getBackendName() +
                            " was not started within its timeout";
    mark_broken(why);
    return Status::Timeout(why);
  }
  if (!job.started)
    return Status::TransportError(std::string(job.what) +
                                  " was not started: the transport is closing");
  if (job.failed) return *job.failed;
  out = std::move(job.s);
  return Status::Ok();
}

std::unique_ptr<PendingCollective> ProcessGroupTransport::start_all_reduce(
    std::span<const std::int64_t> values, ReduceOp op, Millis timeout) {
  return start_collective("all-reduce", values, timeout, [this, op](auto v) {
    Started s;
    s.parts = {owned_copy(v)};
    c10d::AllreduceOptions o;
    o.reduceOp = to_c10d(op);
    s.work = control_->allreduce(s.parts, o);
    return s;
  });
}

std::unique_ptr<PendingCollective> ProcessGroupTransport::start_all_gather(
    std::span<const std::int64_t> mine, Millis timeout) {
  return start_collective("all-gather", mine, timeout, [this](auto v) {
    Started s;
    s.inputs = {owned_copy(v)};
    const auto opts = at::TensorOptions().dtype(at::kLong).device(opt_.control_device);
    std::vector<std::vector<at::Tensor>> outs(1);
    for (int r = 0; r < size_; ++r)
      outs[0].push_back(at::empty({static_cast<std::int64_t>(v.size())}, opts));
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
    // tens of microseconds each, and a stage can hold hundreds. Not woken (see poster_loop).
    {
      std::lock_guard<std::mutex> lock(mu_);
      to_post_.push_back(PostJob{b, nullptr});
    }
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
// the next is due), and starts the control group's collectives, all in the order queued.
// send/recv and collectives only enqueue work with gloo, so this thread never blocks for long,
// and a stage is posted as soon as the previous one completed, whatever the serving thread is
// doing. Every rank posts a batch's stages, and starts its collectives, in the same order. A
// collective is started even when its handle was dropped unwaited: the other ranks start it.
//
// The serving thread does not wake this thread when it queues work: on a host whose cores the
// ranks share, a wake-up in the middle of a serving call was followed by the call losing its
// core for a time slice at most collective starts (4 ranks on 2 cores), even with this thread
// at SCHED_BATCH. This thread looks at its queue every poll_interval instead, and is woken only
// by threads that wait on its work (the waiter for a next stage, the serving thread when it
// blocks on a queued collective or batch).
void ProcessGroupTransport::poster_loop() {
  (void)make_current_thread_batch();  // never preempts the serving thread that hands it work
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    post_cv_.wait_for(lock, opt_.poll_interval, [&] { return stop_ || !to_post_.empty(); });
    if (stop_) return;
    if (to_post_.empty()) continue;  // this look found nothing
    PostJob job = std::move(to_post_.front());
    to_post_.pop_front();
    if (job.collective) {
      if (job.collective->abandoned) continue;
      lock.unlock();
      start_job(*job.collective);
      job.collective.reset();  // the last reference may hold tensors: released unlocked
      lock.lock();
      continue;
    }
    std::shared_ptr<BatchState> b = std::move(job.batch);
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
          to_post_.push_back(PostJob{b, nullptr});
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
