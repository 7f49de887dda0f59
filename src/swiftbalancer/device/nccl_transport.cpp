#include "swiftbalancer/device/nccl_transport.h"

#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "swiftbalancer/device/cuda_util.h"

namespace swiftbalancer::device {

// A post must not start while NCCL still enqueues the previous group in the background (a
// non-blocking communicator): it waits this long for it, then gives up and aborts.
constexpr Millis kSettle{2000};

struct NcclTransport::Shared {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  bool owned = false;
  bool broken = false;
  std::string why;  // why it broke
  std::mutex mu;

  // Aborts the communicator once (it is gone afterwards); later posts fail at once.
  void abort(const std::string& reason) {
    std::lock_guard lock(mu);
    if (broken) return;
    broken = true;
    why = reason;
    (void)ncclCommAbort(comm);
    comm = nullptr;
  }
  // ncclSuccess, ncclInProgress (a non-blocking communicator still enqueueing) or an error.
  ncclResult_t state() {
    std::lock_guard lock(mu);
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

class NcclBatch final : public TransferBatch {
 public:
  explicit NcclBatch(std::shared_ptr<NcclTransport::Shared> sh) : sh_(std::move(sh)) {}
  ~NcclBatch() override {
    (void)cancel();
    if (done_) (void)cudaEventDestroy(done_);
  }

  State poll() override {
    if (state_ != State::kPending) return state_;
    if (!recorded_) {
      // NCCL enqueues a non-blocking group in the background: the event may only be recorded
      // once the communicator says the group is on the stream.
      const ncclResult_t st = sh_->state();
      if (st == ncclInProgress) return state_;
      if (st != ncclSuccess)
        return fail(sh_->broken ? "NCCL communicator aborted: " + sh_->why
                                : nccl_message(st, "NCCL group"));
      cudaError_t err = cudaEventCreateWithFlags(&done_, cudaEventDisableTiming);
      if (err == cudaSuccess) err = cudaEventRecord(done_, sh_->stream);
      if (err != cudaSuccess) return fail(cuda_message(err, "NCCL batch event"));
      recorded_ = true;
    }
    const cudaError_t q = cudaEventQuery(done_);
    if (q == cudaSuccess) return state_ = State::kCompleted;
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
  bool recorded_ = false;
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
  return std::unique_ptr<NcclTransport>(new NcclTransport(std::move(sh), host));
}

NcclTransport::~NcclTransport() {
  std::lock_guard lock(sh_->mu);
  if (!sh_->owned || sh_->broken || sh_->comm == nullptr) return;
  // Owned and healthy: flush and free. A finalize that does not settle is aborted instead.
  ncclResult_t st = ncclCommFinalize(sh_->comm);
  const auto deadline = Clock::now() + kSettle;
  while (st == ncclInProgress && Clock::now() < deadline) {
    ncclResult_t async = ncclSuccess;
    st = ncclCommGetAsyncError(sh_->comm, &async) == ncclSuccess ? async : ncclInternalError;
    if (st == ncclInProgress) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  if (st == ncclSuccess)
    (void)ncclCommDestroy(sh_->comm);
  else
    (void)ncclCommAbort(sh_->comm);
  sh_->comm = nullptr;
}

bool NcclTransport::broken() const {
  std::lock_guard lock(sh_->mu);
  return sh_->broken;
}

std::unique_ptr<TransferBatch> NcclTransport::post(std::span<const P2POp> ops) {
  if (Status s = check_p2p_ops(ops, *this); !s.ok()) return failed_batch(std::move(s));
  {
    std::lock_guard lock(sh_->mu);
    if (sh_->broken)
      return failed_batch(Status::TransportError("NCCL transport broken (" + sh_->why + ")"));
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
            ? ncclSend(op.data, op.size, ncclUint8, op.peer, sh_->comm, sh_->stream)
            : ncclRecv(op.data, op.size, ncclUint8, op.peer, sh_->comm, sh_->stream);
  }
  const ncclResult_t end = ncclGroupEnd();
  if (r == ncclSuccess || r == ncclInProgress) r = end;
  if (r != ncclSuccess && r != ncclInProgress) {
    // The peers posted their halves: pairing is lost, so the communicator cannot be trusted.
    sh_->abort(nccl_message(r, "NCCL post"));
    return failed_batch(Status::TransportError(nccl_message(r, "NCCL post")));
  }
  return std::make_unique<NcclBatch>(sh_);
}

}  // namespace swiftbalancer::device
