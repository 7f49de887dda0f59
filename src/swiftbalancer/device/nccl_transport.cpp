#include "swiftbalancer/device/nccl_transport.h"

#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "swiftbalancer/device/cuda_util.h"

namespace swiftbalancer::device {

// A post must not start while NCCL still enqueues the previous group in the background (a
// non-blocking communicator): it waits this long for it, then gives up and aborts.
constexpr Millis kSettle{2000};
// ncclCommAbort may itself hang (a peer gone mid-connection, a kernel that does not exit): the
// caller waits at most this long for it, then leaves it to finish on a helper thread.
constexpr Millis kAbortBound{2000};

namespace {

// Runs ncclCommAbort(comm) on a helper thread and waits for it until `bound` (issue 19, item 11:
// no host wait without a bound). False when it was still running then; the helper then finishes
// in the background (it holds nothing of ours but the communicator handle).
bool abort_bounded(ncclComm_t comm, Millis bound) {
  if (comm == nullptr) return true;
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread helper([comm, done] {
    (void)ncclCommAbort(comm);
    done->store(true, std::memory_order_release);
  });
  const auto deadline = Clock::now() + bound;
  while (!done->load(std::memory_order_acquire) && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  if (done->load(std::memory_order_acquire)) {
    helper.join();
    return true;
  }
  helper.detach();
  return false;
}

}  // namespace

struct NcclTransport::Shared {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  bool owned = false;
  bool broken = false;
  std::string why;  // why it broke
  std::mutex mu;    // guards the fields above; never held across a call that can block

  // Aborts the communicator once (it is gone afterwards); later posts fail at once, and every
  // batch not yet seen complete reports failure (NCCL's kernels exit on abort, so their events
  // complete with the receive buffers unfilled). The abort runs without the mutex held and
  // bounded by kAbortBound.
  void abort(const std::string& reason) {
    ncclComm_t c = nullptr;
    {
      std::lock_guard lock(mu);
      if (broken) return;
      broken = true;
      why = reason;
      c = std::exchange(comm, nullptr);
    }
    if (!abort_bounded(c, kAbortBound)) {
      std::lock_guard lock(mu);
      why += " (ncclCommAbort still running after " + std::to_string(kAbortBound.count()) +
             " ms; left to finish in the background)";
    }
  }
  bool is_broken() {
    std::lock_guard lock(mu);
    return broken;
  }
  std::string reason() {
    std::lock_guard lock(mu);
    return why;
  }
  // ncclSuccess, ncclInProgress (a non-blocking communicator still enqueueing) or an error.
  ncclResult_t state() {
    std::lock_guard lock(mu);  // ncclCommGetAsyncError does not block
    if (broken) return ncclInvalidUsage;
    ncclResult_t st = ncclSuccess;
    const ncclResult_t r = ncclCommGetAsyncError(comm, &st);
    return r != ncclSuccess ? r : st;
  }
  // Waits (bounded) until the communicator is not ncclInProgress.
  ncclResult_t settle(Clock::time_point deadline) {
    for (;;) {
      const ncclResult_t st = state();
      if (st != ncclInProgress || Clock::now() >= deadline) return st;
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }
};

namespace {

std::string nccl_message(ncclResult_t r, const char* what) {
  return std::string(what) + ": " + ncclGetErrorString(r);
}

// A posted group. post() returns one only once NCCL has put the group on the stream (the
// communicator settled) and the batch's event is recorded behind it, so nothing else is ever
// queued on the stream while a group is ncclInProgress (issue 19, item 8).
class NcclBatch final : public TransferBatch {
 public:
  NcclBatch(std::shared_ptr<NcclTransport::Shared> sh, cudaEvent_t done)
      : sh_(std::move(sh)), done_(done) {}
  ~NcclBatch() override {
    (void)cancel();
    if (done_) (void)cudaEventDestroy(done_);
  }

  State poll() override {
    if (state_ != State::kPending) return state_;
    // After an abort NCCL's kernels exit and the event completes with the buffers unfilled: a
    // batch not seen complete before the abort has failed (issue 19, item 10).
    if (sh_->is_broken()) return fail("NCCL communicator aborted: " + sh_->reason());
    const cudaError_t q = query_event(done_);
    if (q == cudaSuccess) {
      // The abort may have come between the check above and the query.
      if (sh_->is_broken()) return fail("NCCL communicator aborted: " + sh_->reason());
      return state_ = State::kCompleted;
    }
    if (q != cudaErrorNotReady) return fail(cuda_message(q, "NCCL batch"));
    return state_;
  }

  Status wait(Clock::time_point deadline) override {
    for (int polls = 0;; ++polls) {
      const State s = poll();
      if (s == State::kCompleted) return Status::Ok();
      if (s == State::kFailed) return Status::TransportError(error_);
      if (Clock::now() >= deadline) {
        // NCCL cannot withdraw posted operations: abort the communicator.
        sh_->abort("a transfer missed its deadline");
        error_ = "NCCL transfers not done by the deadline; communicator aborted";
        state_ = State::kFailed;
        return Status::Timeout(error_);
      }
      if (polls < 64)
        std::this_thread::yield();
      else
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  Status cancel() override {
    if (poll() == State::kCompleted) return Status::Ok();
    // Whatever NCCL had queued may still write the receive buffers after an abort returns.
    sh_->abort("a transfer was cancelled");
    return Status::TransportError(
        "NCCL transfers cannot be withdrawn: communicator aborted, buffers must be kept");
  }

 private:
  State fail(std::string why) {
    error_ = std::move(why);
    return state_ = State::kFailed;
  }
  std::shared_ptr<NcclTransport::Shared> sh_;
  cudaEvent_t done_ = nullptr;
  State state_ = State::kPending;
  std::string error_;
};

}  // namespace

NcclTransport::NcclTransport(std::shared_ptr<Shared> shared, Transport& host)
    : sh_(std::move(shared)), host_(host) {}

NcclTransport::NcclTransport(ncclComm_t comm, cudaStream_t stream, Transport& host)
    : sh_(std::make_shared<Shared>()), host_(host) {
  int count = 0, me = 0;
  if (comm == nullptr || ncclCommCount(comm, &count) != ncclSuccess ||
      ncclCommUserRank(comm, &me) != ncclSuccess)
    throw InputError("NcclTransport: not a usable NCCL communicator");
  if (count != host.size() || me != host.rank())
    throw InputError("NcclTransport: the communicator's rank " + std::to_string(me) + " of " +
                     std::to_string(count) + " differs from the host transport's rank " +
                     std::to_string(host.rank()) + " of " + std::to_string(host.size()));
  sh_->comm = comm;
  sh_->stream = stream;
}

std::unique_ptr<NcclTransport> NcclTransport::bootstrap(Transport& host, cudaStream_t stream,
                                                        Millis timeout) {
  static_assert(sizeof(ncclUniqueId) % sizeof(std::int64_t) == 0);
  constexpr std::size_t kWords = sizeof(ncclUniqueId) / sizeof(std::int64_t);
  std::vector<std::int64_t> mine(kWords, 0), all(kWords * static_cast<std::size_t>(host.size()));
  ncclUniqueId id{};
  if (host.rank() == 0) {
    if (ncclResult_t r = ncclGetUniqueId(&id); r != ncclSuccess)
      throw DeviceError(nccl_message(r, "ncclGetUniqueId"));
    std::memcpy(mine.data(), &id, sizeof(id));
  }
  if (Status s = host.all_gather(mine, all, timeout); !s.ok())
    throw DeviceError("NCCL bootstrap: exchanging the unique id failed: " + s.to_string());
  std::memcpy(&id, all.data(), sizeof(id));  // rank 0's words

  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // so that a deadline can end in ncclCommAbort
  auto sh = std::make_shared<Shared>();
  sh->stream = stream;
  sh->owned = true;
  const ncclResult_t r = ncclCommInitRankConfig(&sh->comm, host.size(), id, host.rank(), &config);
  if (r != ncclSuccess && r != ncclInProgress) {
    if (sh->comm) (void)ncclCommAbort(sh->comm);
    throw DeviceError(nccl_message(r, "ncclCommInitRankConfig"));
  }
  const ncclResult_t st = sh->settle(Clock::now() + timeout);
  if (st != ncclSuccess) {
    sh->abort("bootstrap failed");
    throw DeviceError(st == ncclInProgress
                          ? "NCCL bootstrap: the communicator was not ready within " +
                                std::to_string(timeout.count()) + " ms"
                          : nccl_message(st, "NCCL bootstrap"));
  }
  std::unique_ptr<NcclTransport> t(new NcclTransport(std::move(sh), host));
  if (Status w = t->warm_up(timeout); !w.ok())
    throw DeviceError("NCCL bootstrap: " + w.to_string());
  return t;
}

NcclTransport::~NcclTransport() {
  ncclComm_t comm = nullptr;
  {
    std::lock_guard lock(sh_->mu);
    if (!sh_->owned || sh_->broken || sh_->comm == nullptr) return;
    comm = std::exchange(sh_->comm, nullptr);
    sh_->broken = true;  // batches still alive see it gone
    sh_->why = "the transport was destroyed";
  }
  // Owned and healthy: flush and free, without the mutex held. A finalize that does not settle
  // within kSettle is aborted instead (bounded too).
  ncclResult_t st = ncclCommFinalize(comm);
  const auto deadline = Clock::now() + kSettle;
  while (st == ncclInProgress && Clock::now() < deadline) {
    ncclResult_t async = ncclSuccess;
    st = ncclCommGetAsyncError(comm, &async) == ncclSuccess ? async : ncclInternalError;
    if (st == ncclInProgress) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  if (st == ncclSuccess)
    (void)ncclCommDestroy(comm);
  else
    (void)abort_bounded(comm, kAbortBound);
}

bool NcclTransport::broken() const {
  std::lock_guard lock(sh_->mu);
  return sh_->broken;
}

std::unique_ptr<TransferBatch> NcclTransport::post(std::span<const P2POp> ops) {
  if (Status s = check_p2p_ops(ops, *this); !s.ok()) return failed_batch(std::move(s));
  ncclComm_t comm = nullptr;
  {
    std::lock_guard lock(sh_->mu);
    if (sh_->broken)
      return failed_batch(Status::TransportError("NCCL transport broken (" + sh_->why + ")"));
    comm = sh_->comm;  // only this thread posts; an abort elsewhere makes the group fail
  }
  if (const ncclResult_t st = sh_->settle(Clock::now() + kSettle); st != ncclSuccess) {
    sh_->abort("the communicator did not settle before a post");
    return failed_batch(Status::TransportError(nccl_message(st, "NCCL before a post")));
  }
  ncclResult_t r = ncclGroupStart();
  for (const P2POp& op : ops) {
    if (r != ncclSuccess) break;
    if (op.size == 0) continue;  // both sides skip empty messages alike
    r = op.kind == P2POp::Kind::kSend
            ? ncclSend(op.data, op.size, ncclUint8, op.peer, comm, sh_->stream)
            : ncclRecv(op.data, op.size, ncclUint8, op.peer, comm, sh_->stream);
  }
  const ncclResult_t end = ncclGroupEnd();
  if (r == ncclSuccess || r == ncclInProgress) r = end;
  // A non-blocking group may still be enqueueing: wait (bounded) until it is on the stream,
  // before anything else (the batch's event, the store's copies) is queued there.
  if (r == ncclInProgress) r = sh_->settle(Clock::now() + kSettle);
  if (r != ncclSuccess) {
    // The peers posted their halves: pairing is lost, so the communicator cannot be trusted.
    sh_->abort(nccl_message(r, "NCCL post"));
    return failed_batch(Status::TransportError(nccl_message(r, "NCCL post")));
  }
  cudaEvent_t done = nullptr;
  cudaError_t err = cudaEventCreateWithFlags(&done, cudaEventDisableTiming);
  if (err == cudaSuccess) err = cudaEventRecord(done, sh_->stream);
  if (err != cudaSuccess) {
    if (done) (void)cudaEventDestroy(done);
    // The group is queued and cannot be withdrawn; without an event nobody can tell when it
    // ends, so the communicator is given up.
    sh_->abort(cuda_message(err, "NCCL batch event"));
    return failed_batch(cuda_status(err, "NCCL batch event"));
  }
  return std::make_unique<NcclBatch>(sh_, done);
}

Status NcclTransport::warm_up(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  const int n = size();
  // One byte each way with every rank (itself included): NCCL connects a pair on its first
  // send/receive, which can take far longer than a transfer deadline (issue 19, item 3).
  std::byte* buf = nullptr;
  if (Status s = cuda_status(cudaMalloc(reinterpret_cast<void**>(&buf), 2 * std::size_t(n)),
                             "NCCL warm-up: cudaMalloc");
      !s.ok())
    return s;
  std::vector<P2POp> ops;
  for (int p = 0; p < n; ++p) {
    ops.push_back(
        P2POp::send(p, 0, std::span<const std::byte>(buf + p, 1), true, MemoryKind::kDevice));
    ops.push_back(
        P2POp::recv(p, 0, std::span<std::byte>(buf + n + p, 1), true, MemoryKind::kDevice));
  }
  Status s;
  {
    auto batch = post(ops);
    s = batch->wait(deadline);
    if (!s.ok())
      s = Status::Timeout("NCCL warm-up (first connection of every pair): " + s.to_string());
    if (!s.ok() && !batch->cancel().ok()) buf = nullptr;  // NCCL may still write it: keep it
  }
  if (buf) (void)consume_error(cudaFree(buf));
  return s;
}

}  // namespace swiftbalancer::device
