// MPI transport (compiled only when CMake finds MPI). See mpi_transport.h for the contract.
//
// Safety under timeouts: MPI cannot always cancel a request that has started. So collectives
// and receives go through buffers the transport owns (a receive is copied into the caller's
// buffer only once it has completed), and requests that cannot be cancelled are parked with
// their buffers until MPI finishes with them. The caller's buffers are never written after a
// call returns a failure. Sends read the caller's buffer directly (no copy on the serving
// thread); a send that never matches is never read again.
#include <mpi.h>

#include <algorithm>
#include <cstring>
#include <list>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "swiftbalancer/transport/mpi_transport.h"

namespace swiftbalancer {

bool mpi_transport_built() {
  return true;
}

namespace {

std::string mpi_error(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, buf, &len);
  return std::string(buf, static_cast<std::size_t>(len));
}

// Polls with a bounded cost on an oversubscribed machine: spin a little, then yield, then nap.
class Backoff {
 public:
  void pause() {
    if (++n_ < 64) return;
    if (n_ < 512) {
      std::this_thread::yield();
      return;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }

 private:
  int n_ = 0;
};

// Requests that could not be cancelled, with the buffers they may still write.
struct Parked {
  std::vector<MPI_Request> reqs;
  std::vector<std::vector<std::byte>> bufs;
  std::vector<std::vector<std::int64_t>> ints;
};

struct Shared {
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0, size = 1;
  std::size_t chunk = 1 << 22;
  bool broken = false;
  std::list<Parked> parked;

  void reap() {
    for (auto it = parked.begin(); it != parked.end();) {
      int done = 0;
      MPI_Testall(static_cast<int>(it->reqs.size()), it->reqs.data(), &done, MPI_STATUSES_IGNORE);
      it = done ? parked.erase(it) : std::next(it);
    }
  }
};

class MpiBatch final : public TransferBatch {
 public:
  MpiBatch(std::shared_ptr<Shared> sh, std::span<const P2POp> ops) : sh_(std::move(sh)) {
    if (sh_->broken) {
      error_ = "MPI transport is broken";
      return;
    }
    for (const P2POp& op : ops) {
      std::size_t off = 0;
      const std::size_t chunk = std::max<std::size_t>(sh_->chunk, 1);
      // At least one message, also for an empty buffer, so both sides agree on the count.
      do {
        const std::size_t n = std::min(chunk, op.size - off);
        MPI_Request req;
        int rc;
        if (op.kind == P2POp::Kind::kSend) {
          rc = MPI_Isend(op.data + off, static_cast<int>(n), MPI_BYTE, op.peer, op.tag, sh_->comm,
                         &req);
        } else {
          // One extra byte of room: a longer message then shows up as a count mismatch rather
          // than an MPI truncation error.
          bounce_.emplace_back(n + 1);
          recv_.push_back({op.data + off, n, bounce_.size() - 1, reqs_.size()});
          rc = MPI_Irecv(bounce_.back().data(), static_cast<int>(n + 1), MPI_BYTE, op.peer, op.tag,
                         sh_->comm, &req);
        }
        if (rc != MPI_SUCCESS) {
          error_ = "MPI post failed: " + mpi_error(rc);
          return;
        }
        reqs_.push_back(req);
        peers_.push_back(op.kind == P2POp::Kind::kSend ? op.peer : -1 - op.peer);
        off += n;
      } while (off < op.size);
    }
    statuses_.resize(reqs_.size());
  }
  ~MpiBatch() override { (void)cancel(); }

  State poll() override {
    if (!error_.empty()) return State::kFailed;
    if (done_) return State::kCompleted;
    int flag = 0;
    const int rc =
        MPI_Testall(static_cast<int>(reqs_.size()), reqs_.data(), &flag, statuses_.data());
    if (rc != MPI_SUCCESS) {
      error_ = "MPI transfer failed: " + mpi_error(rc);
      return State::kFailed;
    }
    if (!flag) return State::kPending;
    for (const Recv& r : recv_) {
      int count = 0;
      MPI_Get_count(&statuses_[r.req], MPI_BYTE, &count);
      if (static_cast<std::size_t>(count) != r.size) {
        error_ = "message from rank " + std::to_string(statuses_[r.req].MPI_SOURCE) + " has " +
                 std::to_string(count) + " bytes in a chunk, the receive expects " +
                 std::to_string(r.size);
        return State::kFailed;
      }
    }
    for (const Recv& r : recv_)
      if (r.size > 0) std::memcpy(r.dst, bounce_[r.bounce].data(), r.size);  // dst may be null
    done_ = true;
    reqs_.clear();
    return State::kCompleted;
  }

  Status wait(Clock::time_point deadline) override {
    Backoff backoff;
    for (;;) {
      const State s = poll();
      if (s == State::kCompleted) return Status::Ok();
      if (s == State::kFailed) {
        (void)cancel();
        return Status::TransportError(error_);
      }
      if (Clock::now() >= deadline) {
        std::string what = "MPI transfers did not complete by the deadline" + pending_peers();
        (void)cancel();
        return Status::Timeout(what);
      }
      backoff.pause();
    }
  }

  Status cancel() override {
    if (done_ || reqs_.empty()) return Status::Ok();
    for (MPI_Request& r : reqs_)
      if (r != MPI_REQUEST_NULL) MPI_Cancel(&r);
    // Cancelled requests still have to complete; give them a moment, then park what is left.
    const auto until = Clock::now() + std::chrono::milliseconds(50);
    Backoff backoff;
    int flag = 0;
    while (true) {
      MPI_Testall(static_cast<int>(reqs_.size()), reqs_.data(), &flag, MPI_STATUSES_IGNORE);
      if (flag || Clock::now() >= until) break;
      backoff.pause();
    }
    if (!flag) sh_->parked.push_back({std::move(reqs_), std::move(bounce_), {}});
    reqs_.clear();
    done_ = true;
    return Status::Ok();
  }

 private:
  // " (still waiting on rank 3: 2 receives, 1 send; ...)", ranks ascending: the peers whose
  // messages are not complete (a dead or stuck rank shows up here). MPI_Testall that returns
  // false leaves every request as it was, so each can still be asked.
  std::string pending_peers() const {
    std::map<int, std::pair<int, int>> by_rank;  // rank -> (receives, sends)
    for (std::size_t i = 0; i < reqs_.size(); ++i) {
      if (reqs_[i] == MPI_REQUEST_NULL) continue;
      int flag = 0;
      MPI_Request_get_status(reqs_[i], &flag, MPI_STATUS_IGNORE);
      if (flag) continue;
      const bool send = peers_[i] >= 0;
      auto& n = by_rank[send ? peers_[i] : -1 - peers_[i]];
      ++(send ? n.second : n.first);
    }
    if (by_rank.empty()) return "";
    std::string out = " (still waiting on ";
    bool first = true;
    for (const auto& [rank, n] : by_rank) {
      if (!first) out += "; ";
      first = false;
      out.append("rank ").append(std::to_string(rank)).append(":");
      if (n.first > 0)
        out.append(" ")
            .append(std::to_string(n.first))
            .append(n.first == 1 ? " receive" : " receives");
      if (n.second > 0) {
        if (n.first > 0) out.append(",");
        out.append(" ").append(std::to_string(n.second)).append(n.second == 1 ? " send" : " sends");
      }
    }
    out.append(")");
    return out;
  }

  struct Recv {
    std::byte* dst;
    std::size_t size;
    std::size_t bounce;
    std::size_t req;
  };
  std::shared_ptr<Shared> sh_;
  std::vector<MPI_Request> reqs_;
  std::vector<int> peers_;  // per request: the peer of a send, -1 - the peer of a receive
  std::vector<MPI_Status> statuses_;
  std::vector<std::vector<std::byte>> bounce_;
  std::vector<Recv> recv_;
  std::string error_;
  bool done_ = false;
};

class MpiTransport final : public Transport {
 public:
  explicit MpiTransport(std::size_t chunk) : sh_(std::make_shared<Shared>()) {
    MPI_Comm_dup(MPI_COMM_WORLD, &sh_->comm);
    MPI_Comm_set_errhandler(sh_->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(sh_->comm, &sh_->rank);
    MPI_Comm_size(sh_->comm, &sh_->size);
    sh_->chunk = std::min<std::size_t>(chunk, 1u << 30);
  }
  ~MpiTransport() override {
    sh_->reap();
    if (sh_->parked.empty()) MPI_Comm_free(&sh_->comm);
  }
  int rank() const override { return sh_->rank; }
  int size() const override { return sh_->size; }
  std::string name() const override { return "mpi"; }
  bool broken() const override { return sh_->broken; }

  Status all_gather(std::span<const std::int64_t> mine, std::span<std::int64_t> out,
                    Millis timeout) override {
    if (out.size() != mine.size() * static_cast<std::size_t>(sh_->size))
      return Status::InvalidInput("all_gather: output size must be ranks x input size");
    std::vector<std::int64_t> in(mine.begin(), mine.end()), res(out.size());
    MPI_Request req;
    const int rc = MPI_Iallgather(in.data(), static_cast<int>(in.size()), MPI_INT64_T, res.data(),
                                  static_cast<int>(in.size()), MPI_INT64_T, sh_->comm, &req);
    Status s = finish(rc, req, timeout, "all-gather", std::move(in), std::move(res), out);
    return s;
  }

  Status all_reduce(std::span<std::int64_t> values, ReduceOp op, Millis timeout) override {
    const MPI_Op mop = op == ReduceOp::kMin ? MPI_MIN : op == ReduceOp::kMax ? MPI_MAX : MPI_SUM;
    std::vector<std::int64_t> in(values.begin(), values.end()), res(values.size());
    MPI_Request req;
    const int rc = MPI_Iallreduce(in.data(), res.data(), static_cast<int>(in.size()), MPI_INT64_T,
                                  mop, sh_->comm, &req);
    return finish(rc, req, timeout, "all-reduce", std::move(in), std::move(res), values);
  }

  std::unique_ptr<TransferBatch> post(std::span<const P2POp> ops) override {
    if (Status s = check_p2p_ops(ops, *this); !s.ok()) return failed_batch(std::move(s));
    sh_->reap();
    return std::make_unique<MpiBatch>(sh_, ops);
  }

 private:
  Status finish(int rc, MPI_Request& req, Millis timeout, const char* what,
                std::vector<std::int64_t> in, std::vector<std::int64_t> res,
                std::span<std::int64_t> out) {
    if (sh_->broken) {
      if (rc == MPI_SUCCESS) sh_->parked.push_back({{req}, {}, {std::move(in), std::move(res)}});
      return Status::TransportError(std::string(what) + ": MPI transport is broken");
    }
    if (rc != MPI_SUCCESS) return Status::TransportError(std::string(what) + ": " + mpi_error(rc));
    const auto deadline = Clock::now() + timeout;
    Backoff backoff;
    for (;;) {
      int flag = 0;
      const int t = MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
      if (t != MPI_SUCCESS) {
        sh_->broken = true;
        return Status::TransportError(std::string(what) + ": " + mpi_error(t));
      }
      if (flag) break;
      if (Clock::now() >= deadline) {
        // A collective cannot be cancelled: keep its buffers alive, and give up on the
        // transport, since ranks may now disagree on which collectives completed.
        sh_->broken = true;
        sh_->parked.push_back({{req}, {}, {std::move(in), std::move(res)}});
        return Status::Timeout(std::string(what) + ": not every rank arrived within " +
                               std::to_string(timeout.count()) + " ms; MPI transport disabled");
      }
      backoff.pause();
    }
    std::copy(res.begin(), res.end(), out.begin());
    return Status::Ok();
  }

  std::shared_ptr<Shared> sh_;
};

}  // namespace

MpiSession::MpiSession(int* argc, char*** argv) {
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    int provided = 0;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

std::unique_ptr<Transport> MpiSession::transport(std::size_t chunk_bytes) const {
  return std::make_unique<MpiTransport>(chunk_bytes);
}

}  // namespace swiftbalancer
