#include "swiftbalancer/device/single_gpu_transport.h"

#include <algorithm>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "swiftbalancer/device/cuda_util.h"
#include "swiftbalancer/transport/inprocess_transport.h"
#include "swiftbalancer/transport/internal/mailbox.h"

namespace swiftbalancer::device {
namespace {

// An event owned by whoever holds the last pointer to it.
struct Event {
  cudaEvent_t e = nullptr;
  Event() {
    if (consume_error(cudaEventCreateWithFlags(&e, cudaEventDisableTiming)) != cudaSuccess)
      e = nullptr;
  }
  ~Event() {
    if (e) (void)cudaEventDestroy(e);
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
};

// One side of a message, owned by its batch; every field after `stream` is guarded by the
// world's mutex once the operation is queued.
struct PendingOp {
  int owner = -1, peer = -1, tag = 0;
  std::byte* data = nullptr;
  std::size_t size = 0;
  bool recv = false;
  cudaStream_t stream = nullptr;
  std::shared_ptr<Event> ready;  // sends: recorded on the sender's stream at post
  bool matched = false, done = false, failed = false;
  std::shared_ptr<Event> copied;  // set when the copy is queued (both sides share it)
  std::string error;
};

}  // namespace

struct SingleGpuWorld::Impl {
  explicit Impl(int r) : ranks(r), boxes(static_cast<std::size_t>(r)), host(r) {}
  int ranks;
  std::mutex mu;
  std::vector<Mailbox<PendingOp>> boxes;  // transport/internal/mailbox.h, guarded by mu
  InProcessWorld host;                    // collectives

  // Queues the copy of a matched pair (mutex not held: CUDA calls can take microseconds).
  void copy(PendingOp* send, PendingOp* recv) {
    std::string err;
    auto ev = std::make_shared<Event>();
    if (send->size != recv->size) {
      err = "message from rank " + std::to_string(send->owner) + " (tag " +
            std::to_string(send->tag) + ") has " + std::to_string(send->size) +
            " bytes, the receive expects " + std::to_string(recv->size);
    } else if (ev->e == nullptr || send->ready == nullptr || send->ready->e == nullptr) {
      err = "could not create a CUDA event";
    } else {
      cudaError_t e = cudaStreamWaitEvent(recv->stream, send->ready->e, 0);
      if (e == cudaSuccess && send->size > 0)
        e = cudaMemcpyAsync(recv->data, send->data, send->size, cudaMemcpyDeviceToDevice,
                            recv->stream);
      if (e == cudaSuccess) e = cudaEventRecord(ev->e, recv->stream);
      if (consume_error(e) != cudaSuccess) err = cuda_message(e, "single-GPU copy");
    }
    std::lock_guard lock(mu);
    for (PendingOp* op : {send, recv}) {
      if (err.empty()) {
        op->copied = ev;
      } else {
        op->done = op->failed = true;
        op->error = err;
      }
    }
  }
};

namespace {

class SingleGpuBatch final : public TransferBatch {
 public:
  SingleGpuBatch(std::shared_ptr<SingleGpuWorld::Impl> w, int rank, cudaStream_t stream)
      : w_(std::move(w)), rank_(rank), stream_(stream) {}
  ~SingleGpuBatch() override { (void)cancel(); }

  // Queues one operation (a send records its event first) and queues the copy when it meets
  // its other half.
  void add(const P2POp& op) {
    ops_.push_back(std::make_unique<PendingOp>());
    PendingOp* me = ops_.back().get();
    me->owner = rank_;
    me->peer = op.peer;
    me->tag = op.tag;
    me->data = op.data;
    me->size = op.size;
    me->recv = op.kind == P2POp::Kind::kRecv;
    me->stream = stream_;
    if (!me->recv) {
      me->ready = std::make_shared<Event>();
      if (me->ready->e == nullptr ||
          consume_error(cudaEventRecord(me->ready->e, stream_)) != cudaSuccess) {
        me->done = me->failed = true;
        me->error = "could not record the send's event";
        return;
      }
    }
    PendingOp* other = nullptr;
    {
      std::lock_guard lock(w_->mu);
      auto& box = w_->boxes[static_cast<std::size_t>(me->recv ? rank_ : op.peer)];
      if (box.offer(me, &other) == Mailbox<PendingOp>::Outcome::kAbsorbed) {
        me->done = true;  // its receive was cancelled: dropped
        return;
      }
    }
    if (other != nullptr) w_->copy(me->recv ? other : me, me->recv ? me : other);
  }

  State poll() override {
    std::lock_guard lock(w_->mu);
    return state_locked();
  }

  Status wait(Clock::time_point deadline) override {
    for (int polls = 0;; ++polls) {
      const State s = poll();
      if (s == State::kCompleted) return Status::Ok();
      if (s == State::kFailed || Clock::now() >= deadline) {
        const std::string why = describe(s);
        (void)cancel();
        return s == State::kFailed ? Status::TransportError(why) : Status::Timeout(why);
      }
      if (polls < 64)
        std::this_thread::yield();
      else
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  Status cancel() override {
    const auto deadline = Clock::now() + SingleGpuWorld::kCancelWait;
    Status result = Status::Ok();
    for (auto& op : ops_) {
      std::shared_ptr<Event> copied;
      {
        std::lock_guard lock(w_->mu);
        if (op->done) continue;
        if (w_->boxes[static_cast<std::size_t>(op->recv ? rank_ : op->peer)].withdraw(op.get())) {
          op->done = op->failed = true;
          op->error = "cancelled";
          continue;
        }
        copied = op->copied;
      }
      // Matched: the copy is queued (or about to be, by the peer's thread); wait for it.
      Status s = Status::Ok();
      while (copied == nullptr && Clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::microseconds(20));
        std::lock_guard lock(w_->mu);
        if (op->done) break;
        copied = op->copied;
      }
      if (copied != nullptr) s = wait_event(copied->e, deadline, "single-GPU copy on cancel");
      std::lock_guard lock(w_->mu);
      if (s.ok() && (copied != nullptr || op->done)) {
        op->done = true;
      } else if (result.ok()) {
        result = Status::TransportError("a matched copy did not finish; buffers must be kept (" +
                                        s.to_string() + ")");
      }
    }
    return result;
  }

 private:
  // With the world's mutex held. Completed copies are noticed here (cudaEventQuery).
  State state_locked() {
    bool all = true;
    for (auto& op : ops_) {
      if (!op->done && op->copied != nullptr) {
        const cudaError_t q = query_event(op->copied->e);
        if (q == cudaSuccess) {
          op->done = true;
        } else if (q != cudaErrorNotReady) {
          op->done = op->failed = true;
          op->error = cuda_message(q, "single-GPU copy");
        }
      }
      if (op->failed) return State::kFailed;
      all = all && op->done;
    }
    return all ? State::kCompleted : State::kPending;
  }

  std::string describe(State s) {
    std::lock_guard lock(w_->mu);
    for (auto& op : ops_) {
      if (s == State::kFailed && op->failed) return op->error;
      if (s == State::kPending && !op->done)
        return std::string(op->recv ? "receive from" : "send to") + " rank " +
               std::to_string(op->peer) + " (tag " + std::to_string(op->tag) +
               ") did not complete by the deadline";
    }
    return "transfer failed";
  }

  std::shared_ptr<SingleGpuWorld::Impl> w_;
  int rank_;
  cudaStream_t stream_;
  std::vector<std::unique_ptr<PendingOp>> ops_;
};

class SingleGpuTransport final : public Transport {
 public:
  SingleGpuTransport(std::shared_ptr<SingleGpuWorld::Impl> w, int rank, cudaStream_t stream)
      : w_(std::move(w)), rank_(rank), stream_(stream), host_(w_->host.transport(rank)) {}
  int rank() const override { return rank_; }
  int size() const override { return w_->ranks; }
  std::string name() const override { return "single-gpu"; }
  bool broken() const override { return false; }
  bool can_move(MemoryKind kind) const override { return kind == MemoryKind::kDevice; }

  Status all_gather(std::span<const std::int64_t> mine, std::span<std::int64_t> out,
                    Millis timeout) override {
    return host_->all_gather(mine, out, timeout);
  }
  Status all_reduce(std::span<std::int64_t> values, ReduceOp op, Millis timeout) override {
    return host_->all_reduce(values, op, timeout);
  }
  std::unique_ptr<TransferBatch> post(std::span<const P2POp> ops) override {
    if (Status s = check_p2p_ops(ops, *this); !s.ok()) return failed_batch(std::move(s));
    auto batch = std::make_unique<SingleGpuBatch>(w_, rank_, stream_);
    for (const P2POp& op : ops) batch->add(op);
    return batch;
  }

 private:
  std::shared_ptr<SingleGpuWorld::Impl> w_;
  int rank_;
  cudaStream_t stream_;
  std::unique_ptr<Transport> host_;
};

}  // namespace

SingleGpuWorld::SingleGpuWorld(int ranks) {
  if (ranks < 1) throw InputError("a single-GPU world needs at least one rank");
  impl_ = std::make_shared<Impl>(ranks);
}
SingleGpuWorld::~SingleGpuWorld() = default;
int SingleGpuWorld::size() const {
  return impl_->ranks;
}
std::unique_ptr<Transport> SingleGpuWorld::transport(int rank, cudaStream_t stream) {
  if (rank < 0 || rank >= impl_->ranks)
    throw InputError("rank " + std::to_string(rank) + " out of range for a world of " +
                     std::to_string(impl_->ranks));
  return std::make_unique<SingleGpuTransport>(impl_, rank, stream);
}

}  // namespace swiftbalancer::device
