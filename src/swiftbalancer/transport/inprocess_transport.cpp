#include "swiftbalancer/transport/inprocess_transport.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "swiftbalancer/transport/internal/mailbox.h"

namespace swiftbalancer {
namespace {

// One side of a point-to-point message. Owned by its batch. A receive's done/failed/error are
// guarded by the receiver's mailbox mutex, a send's by the sender's; `matched` by the mutex of
// the mailbox the operation was queued in (the receiver's).
struct PendingOp {
  int owner = -1;  // the rank that posted it
  int peer = -1;
  int tag = 0;
  std::byte* data = nullptr;
  std::size_t size = 0;
  bool bulk = false;
  bool recv = false;
  bool matched = false;
  bool done = false;
  bool failed = false;
  std::string error;
};

// One rank's mailbox (transport/internal/mailbox.h) and the mutex and condition its waiters use.
struct RankBox {
  std::mutex mu;
  std::condition_variable cv;
  Mailbox<PendingOp> box;
};

struct CopyJob {
  PendingOp* send;
  PendingOp* recv;
};

constexpr std::chrono::microseconds kCopyPoll{500};

enum class CollKind { kGather, kReduce };

struct Round {
  CollKind kind = CollKind::kGather;
  ReduceOp op = ReduceOp::kMin;
  std::size_t n = 0;
  std::vector<std::int64_t> data;
  int arrived = 0;
  int left = 0;
  bool done = false;
  bool abandoned = false;
  bool mismatch = false;
};

}  // namespace

struct InProcessWorld::Impl {
  explicit Impl(int r) : ranks(r), boxes(static_cast<std::size_t>(r)), seq(r, 0) {
    copier = std::thread([this] { copy_loop(); });
  }
  ~Impl() {
    {
      std::lock_guard lock(copy_mu);
      stop = true;
    }
    copy_cv.notify_all();
    copier.join();
  }
  int ranks;
  std::vector<RankBox> boxes;

  // The copy engine: performs bulk copies in the background.
  std::thread copier;
  std::mutex copy_mu;
  std::condition_variable copy_cv;
  std::deque<CopyJob> copy_queue;
  bool stop = false;

  void copy_loop();
  // Called with neither mailbox locked: copies (or fails on a size mismatch) and completes both.
  void complete(PendingOp* send, PendingOp* recv);
  void matched(PendingOp* send, PendingOp* recv) {
    if (send->bulk || recv->bulk) {
      // Not notified: the copy engine polls (every kCopyPoll), so that posting never hands the
      // CPU to it in the middle of the poster's step. Bulk transfers are waited for a forward
      // pass later, so the poll latency is hidden.
      std::lock_guard lock(copy_mu);
      copy_queue.push_back({send, recv});
    } else {
      complete(send, recv);
    }
  }

  std::mutex coll_mu;
  std::condition_variable coll_cv;
  std::vector<std::uint64_t> seq;  // per-rank count of collectives called
  std::map<std::uint64_t, Round> rounds;

  Status collective(int rank, CollKind kind, ReduceOp op, std::span<const std::int64_t> in,
                    std::span<std::int64_t> out, Millis timeout);
};

namespace {

void reduce_into(std::span<std::int64_t> acc, std::span<const std::int64_t> in, ReduceOp op) {
  for (std::size_t i = 0; i < acc.size(); ++i) {
    switch (op) {
      case ReduceOp::kMin:
        acc[i] = std::min(acc[i], in[i]);
        break;
      case ReduceOp::kMax:
        acc[i] = std::max(acc[i], in[i]);
        break;
      case ReduceOp::kSum:
        acc[i] += in[i];
        break;
    }
  }
}

}  // namespace

Status InProcessWorld::Impl::collective(int rank, CollKind kind, ReduceOp op,
                                        std::span<const std::int64_t> in,
                                        std::span<std::int64_t> out, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  std::unique_lock lock(coll_mu);
  const std::uint64_t k = seq[static_cast<std::size_t>(rank)]++;
  // Not a structured binding: clang before 16 (the fuzz build) cannot capture one.
  const auto emplaced = rounds.try_emplace(k);
  const auto it = emplaced.first;
  const bool fresh = emplaced.second;
  Round& r = it->second;
  auto finish = [&](Status s) {
    if (++r.left == ranks) rounds.erase(it);
    return s;
  };
  if (fresh) {
    r.kind = kind;
    r.op = op;
    r.n = in.size();
    r.data.assign(kind == CollKind::kGather ? in.size() * ranks : in.size(), 0);
    if (kind == CollKind::kReduce) std::copy(in.begin(), in.end(), r.data.begin());
  } else if (r.kind != kind || r.n != in.size() || (kind == CollKind::kReduce && r.op != op)) {
    r.mismatch = true;
  }
  if (r.abandoned)
    return finish(Status::Timeout("collective " + std::to_string(k) +
                                  " was abandoned by a rank that timed out"));
  if (!fresh && !r.mismatch) {
    if (kind == CollKind::kGather)
      std::copy(in.begin(), in.end(), r.data.begin() + static_cast<std::ptrdiff_t>(rank * r.n));
    else
      reduce_into(r.data, in, op);
  } else if (fresh && kind == CollKind::kGather) {
    std::copy(in.begin(), in.end(), r.data.begin() + static_cast<std::ptrdiff_t>(rank * r.n));
  }
  if (++r.arrived == ranks) {
    r.done = true;
    coll_cv.notify_all();
  }
  if (!coll_cv.wait_until(lock, deadline, [&] { return r.done || r.abandoned; })) {
    r.abandoned = true;
    coll_cv.notify_all();
    return finish(Status::Timeout("collective " + std::to_string(k) +
                                  ": not every rank arrived within " +
                                  std::to_string(timeout.count()) + " ms"));
  }
  if (r.abandoned)
    return finish(Status::Timeout("collective " + std::to_string(k) +
                                  " was abandoned by a rank that timed out"));
  if (r.mismatch)
    return finish(Status::TransportError("collective " + std::to_string(k) +
                                         ": ranks disagree on its kind or size"));
  std::copy(r.data.begin(), r.data.end(), out.begin());
  return finish(Status::Ok());
}

void InProcessWorld::Impl::complete(PendingOp* send, PendingOp* recv) {
  std::string err;
  if (send->size != recv->size) {
    err = "message from rank " + std::to_string(send->owner) + " (tag " +
          std::to_string(send->tag) + ") has " + std::to_string(send->size) +
          " bytes, the receive expects " + std::to_string(recv->size);
  } else if (send->size > 0) {
    std::memcpy(recv->data, send->data, send->size);
  }
  for (PendingOp* op : {recv, send}) {
    RankBox& box = boxes[static_cast<std::size_t>(op->owner)];
    {
      std::lock_guard lock(box.mu);
      op->done = true;
      op->failed = !err.empty();
      op->error = err;
    }
    box.cv.notify_all();
  }
}

void InProcessWorld::Impl::copy_loop() {
  for (;;) {
    CopyJob job;
    {
      std::unique_lock lock(copy_mu);
      while (!stop && copy_queue.empty()) copy_cv.wait_for(lock, kCopyPoll);
      if (copy_queue.empty()) return;  // stop, and nothing left to copy
      job = copy_queue.front();
      copy_queue.pop_front();
    }
    complete(job.send, job.recv);
  }
}

namespace {

class InProcessBatch final : public TransferBatch {
 public:
  InProcessBatch(std::shared_ptr<InProcessWorld::Impl> w, int rank)
      : w_(std::move(w)), rank_(rank) {}
  ~InProcessBatch() override { (void)cancel(); }

  void add(const P2POp& op) {
    ops_.push_back(std::make_unique<PendingOp>());
    PendingOp* me = ops_.back().get();
    me->owner = rank_;
    me->peer = op.peer;
    me->tag = op.tag;
    me->data = op.data;
    me->size = op.size;
    me->bulk = op.bulk;
    const bool is_send = op.kind == P2POp::Kind::kSend;
    me->recv = !is_send;
    // Both kinds meet in the receiver's mailbox.
    RankBox& box = w_->boxes[static_cast<std::size_t>(is_send ? op.peer : rank_)];
    PendingOp* other = nullptr;
    {
      std::lock_guard lock(box.mu);
      if (box.box.offer(me, &other) == Mailbox<PendingOp>::Outcome::kAbsorbed) {
        me->done = true;  // its receive was cancelled: dropped; nobody else sees `me`
        return;
      }
    }
    if (other != nullptr) w_->matched(is_send ? me : other, is_send ? other : me);
  }

  State poll() override {
    RankBox& box = mine();
    std::lock_guard lock(box.mu);
    return state_locked();
  }

  Status wait(Clock::time_point deadline) override {
    State s;
    std::string msg;
    {
      RankBox& box = mine();
      std::unique_lock lock(box.mu);
      box.cv.wait_until(lock, deadline, [&] { return state_locked() != State::kPending; });
      s = state_locked();
      if (s == State::kCompleted) return Status::Ok();
      for (const auto& op : ops_) {
        if (s == State::kFailed && op->failed) {
          msg = op->error;
          break;
        }
        if (s == State::kPending && !op->done) {
          msg = std::string(op->peer == rank_ ? "self-" : "") +
                (is_recv(*op) ? "receive from" : "send to") + " rank " + std::to_string(op->peer) +
                " (tag " + std::to_string(op->tag) + ") did not complete by the deadline";
          break;
        }
      }
    }
    (void)cancel();
    return s == State::kFailed ? Status::TransportError(msg) : Status::Timeout(msg);
  }

  Status cancel() override {
    for (auto& op : ops_) {
      {
        std::lock_guard lock(mine().mu);
        if (op->done) continue;
      }
      // Unmatched: withdraw it from the receiver's mailbox. Matched: a copy is under way or
      // queued; it is short, so wait for it (the copy engine always makes progress).
      const bool recv = is_recv(*op);
      RankBox& box = w_->boxes[static_cast<std::size_t>(recv ? rank_ : op->peer)];
      bool withdrawn = false;
      {
        std::lock_guard lock(box.mu);
        withdrawn = box.box.withdraw(op.get());
      }
      RankBox& own = mine();
      std::unique_lock lock(own.mu);
      if (withdrawn) {
        op->done = op->failed = true;
        op->error = "cancelled";
      } else {
        own.cv.wait(lock, [&] { return op->done; });
      }
    }
    return Status::Ok();
  }

 private:
  RankBox& mine() { return w_->boxes[static_cast<std::size_t>(rank_)]; }
  static bool is_recv(const PendingOp& op) { return op.recv; }

  State state_locked() const {
    bool all = true;
    for (const auto& op : ops_) {
      if (op->failed) return State::kFailed;
      all = all && op->done;
    }
    return all ? State::kCompleted : State::kPending;
  }

 private:
  std::shared_ptr<InProcessWorld::Impl> w_;
  int rank_;
  std::vector<std::unique_ptr<PendingOp>> ops_;
};

class InProcessTransport final : public Transport {
 public:
  InProcessTransport(std::shared_ptr<InProcessWorld::Impl> w, int rank)
      : w_(std::move(w)), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return w_->ranks; }
  std::string name() const override { return "inprocess"; }
  bool broken() const override { return false; }

  Status all_gather(std::span<const std::int64_t> mine, std::span<std::int64_t> out,
                    Millis timeout) override {
    if (out.size() != mine.size() * static_cast<std::size_t>(w_->ranks))
      return Status::InvalidInput("all_gather: output size must be ranks x input size");
    return w_->collective(rank_, CollKind::kGather, ReduceOp::kMin, mine, out, timeout);
  }
  Status all_reduce(std::span<std::int64_t> values, ReduceOp op, Millis timeout) override {
    return w_->collective(rank_, CollKind::kReduce, op, values, values, timeout);
  }

  std::unique_ptr<TransferBatch> post(std::span<const P2POp> ops) override {
    if (Status s = check_p2p_ops(ops, *this); !s.ok()) return failed_batch(std::move(s));
    auto batch = std::make_unique<InProcessBatch>(w_, rank_);
    for (const P2POp& op : ops) batch->add(op);
    return batch;
  }

 private:
  std::shared_ptr<InProcessWorld::Impl> w_;
  int rank_;
};

}  // namespace

InProcessWorld::InProcessWorld(int ranks) {
  if (ranks < 1) throw InputError("an in-process world needs at least one rank");
  impl_ = std::make_shared<Impl>(ranks);
}
InProcessWorld::~InProcessWorld() = default;
int InProcessWorld::size() const {
  return impl_->ranks;
}
std::unique_ptr<Transport> InProcessWorld::transport(int rank) {
  if (rank < 0 || rank >= impl_->ranks)
    throw InputError("rank " + std::to_string(rank) + " out of range for a world of " +
                     std::to_string(impl_->ranks));
  return std::make_unique<InProcessTransport>(impl_, rank);
}

}  // namespace swiftbalancer
