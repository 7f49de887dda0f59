// Balancer implementation. Owner: runtime component.
//
// State machine of a rank (identical on every rank, because every transition is taken at a step
// number all ranks share, on the result of a collective all ranks share):
//   kIdle --gather step--> kDeciding --agreed ready--> kMoving --last layer--> kIdle
//                               \--agreed failed / collective failed--> kIdle
// The worker thread only ever touches a Job and its CycleResult; the serving thread reads the
// result after observing state != pending (acquire), so no lock guards the result itself.
#include "swiftbalancer/runtime/balancer.h"

#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>

#if defined(__linux__)
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "swiftbalancer/stats/recorder.h"
#include "swiftbalancer/stats/window.h"

namespace swiftbalancer {

const char* balancer_mode_name(BalancerMode mode) {
  switch (mode) {
    case BalancerMode::kAsync:
      return "async";
    case BalancerMode::kSync:
      return "sync";
    case BalancerMode::kOff:
      return "off";
  }
  return "?";
}

BalancerMode parse_balancer_mode(const std::string& name) {
  if (name == "async") return BalancerMode::kAsync;
  if (name == "sync") return BalancerMode::kSync;
  if (name == "off") return BalancerMode::kOff;
  throw InputError("unknown mode '" + name + "' (known: async, sync, off)");
}

const char* fault_kind_name(FaultInjection::Kind kind) {
  switch (kind) {
    case FaultInjection::Kind::kNone:
      return "none";
    case FaultInjection::Kind::kTransferTimeout:
      return "transfer-timeout";
    case FaultInjection::Kind::kWorkerException:
      return "worker-exception";
    case FaultInjection::Kind::kBadPlacement:
      return "bad-placement";
  }
  return "?";
}

FaultInjection::Kind parse_fault_kind(const std::string& name) {
  for (auto k : {FaultInjection::Kind::kNone, FaultInjection::Kind::kTransferTimeout,
                 FaultInjection::Kind::kWorkerException, FaultInjection::Kind::kBadPlacement})
    if (name == fault_kind_name(k)) return k;
  throw InputError("unknown fault '" + name +
                   "' (known: none, transfer-timeout, worker-exception, bad-placement)");
}

namespace {

constexpr std::int64_t kVoteFailed = 0, kVotePending = 1, kVoteReady = 2;

std::int64_t elapsed_ns(Clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - since).count();
}

// This rank's part of moving one layer, prepared by the worker.
struct LayerWork {
  int layer = 0;
  std::vector<ExpertId> new_row;
  std::unique_ptr<RoutingTable> table;
  struct Send {
    int dst_rank, src_slot;
  };
  struct Install {
    int src_rank, src_slot, dst_slot;  // src_rank == this rank: a local copy
  };
  std::vector<Send> sends;        // in plan order
  std::vector<Install> installs;  // in plan order; staging[i] belongs to installs[i]
  std::vector<std::vector<std::vector<std::byte>>> staging;  // [install][tensor]
  std::int64_t bytes_in = 0, bytes_out = 0;
};

enum class FailKind { kNone, kWorker, kInvalid };

struct CycleResult {
  std::int64_t cycle = 0;
  Clock::time_point started;
  std::atomic<std::int64_t> state{kVotePending};
  std::atomic<bool> cancelled{false};
  // Written by the producer before state is set, read by the serving thread after.
  FailKind fail = FailKind::kNone;
  std::string error;
  std::int64_t hash = 0;
  std::vector<LayerWork> layers;  // layers whose placement changes, increasing layer order
};

struct Job {
  std::int64_t cycle = 0;
  LoadMatrix load;
  Placement current;
  std::shared_ptr<CycleResult> result;
};

std::int64_t placement_hash(const Placement& p) {
  std::uint64_t h = 1469598103934665603ull;
  for (ExpertId e : p.data()) {
    h ^= static_cast<std::uint64_t>(static_cast<std::uint32_t>(e));
    h *= 1099511628211ull;
  }
  return static_cast<std::int64_t>(h >> 2);  // non-negative, so that -hash never overflows
}

// Lowest normal priority for the calling thread (Linux threads have their own nice value).
// Best effort: returns false where it is not possible; the worker then runs at normal priority.
bool lower_current_thread_priority() {
#if defined(__linux__)
  return setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19) == 0;
#else
  return false;
#endif
}

bool fault_hits(const FaultInjection& f, FaultInjection::Kind kind, int rank, std::int64_t cycle) {
  return f.kind == kind && f.rank == rank && (f.cycle < 0 || f.cycle == cycle);
}

}  // namespace

struct Balancer::Impl {
  Impl(Balancer& b, const Topology& t, int r, Transport& tr, std::shared_ptr<const Policy> p)
      : self(b), topo(t), rank(r), transport(tr), policy(std::move(p)) {}

  Balancer& self;
  Topology topo;
  int rank;
  Transport& transport;
  std::shared_ptr<const Policy> policy;
  int L = 0, S = 0, E = 0;

  // Expert buffers: [layer][slot] -> tensors; sizes frozen at the first step.
  std::vector<std::vector<std::vector<std::span<std::byte>>>> slots;
  std::vector<std::vector<std::size_t>> tensor_sizes;  // [layer][tensor]
  bool frozen = false;

  // Routing tables: live and retired one commit late.
  std::vector<std::unique_ptr<RoutingTable>> live, retired;

  Recorder recorder;
  LoadWindow window;
  // Counts recorded before a layer's commit in this interval, under interval_start's rows (a
  // layer commits at most once per interval: a cycle starts only at a gather and cycles never
  // overlap). Gathered with the current counts so no interval loses a layer's load.
  std::vector<std::int64_t> carry;
  Placement interval_start;
  std::vector<std::int64_t> send_buf, gathered, cur_all, carry_all;
  LoadMatrix interval_load;

  enum class Phase { kIdle, kDeciding, kMoving } phase = Phase::kIdle;
  std::int64_t next_cycle = 0;
  std::int64_t next_poll = 0;
  std::shared_ptr<CycleResult> cycle;  // the cycle in flight
  std::size_t next_layer = 0;          // index into cycle->layers
  int committed_in_cycle = 0, failed_in_cycle = 0;
  bool withheld_once = false;
  struct Posted {
    LayerWork* work;
    std::unique_ptr<TransferBatch> batch;
  };
  std::vector<Posted> posted;

  // Per-step accounting (serving thread).
  std::int64_t record_ns = 0, before_ns = 0, wait_ns = 0, copy_ns = 0;
  StepStats step_stats;

  mutable std::mutex counters_mu;
  BalancerCounters counters;

  // Worker.
  std::thread worker;
  std::mutex worker_mu;
  std::condition_variable worker_cv;
  std::deque<Job> jobs;
  bool stop = false;

  // ---- helpers ----
  void log(const std::string& msg, LogSeverity severity = LogSeverity::kInfo) {
    const std::string line = "rank " + std::to_string(rank) + ": " + msg;
    if (self.cfg_.log) {
      self.cfg_.log(severity, line);
    } else if (severity != LogSeverity::kInfo) {
      std::fprintf(stderr, "swiftbalancer %s: %s\n", log_severity_name(severity), line.c_str());
    }
  }
  void error(const std::string& msg, std::int64_t BalancerCounters::*counter) {
    log("error: " + msg, LogSeverity::kError);
    ++step_stats.errors;
    std::lock_guard lock(counters_mu);
    if (counter != nullptr) ++(counters.*counter);
    ++counters.errors;
    counters.last_error = msg;
  }
  void count(std::int64_t BalancerCounters::*counter, std::int64_t by = 1) {
    std::lock_guard lock(counters_mu);
    counters.*counter += by;
  }
  Status timed_collective(const std::function<Status()>& fn) {
    const auto t0 = Clock::now();
    Status s = fn();
    wait_ns += elapsed_ns(t0);
    return s;
  }

  void freeze() {
    if (frozen) return;
    frozen = true;
    if (self.cfg_.mode == BalancerMode::kOff) return;
    tensor_sizes.assign(static_cast<std::size_t>(L), {});
    for (int l = 0; l < L; ++l) {
      for (int s = 0; s < S; ++s) {
        const auto& t = slots[static_cast<std::size_t>(l)][static_cast<std::size_t>(s)];
        if (t.empty())
          throw InputError("expert buffers of layer " + std::to_string(l) + " slot " +
                           std::to_string(s) + " were not registered");
        std::vector<std::size_t> sizes;
        for (const auto& b : t) sizes.push_back(b.size());
        if (s == 0) {
          tensor_sizes[static_cast<std::size_t>(l)] = sizes;
        } else if (sizes != tensor_sizes[static_cast<std::size_t>(l)]) {
          throw InputError("layer " + std::to_string(l) + " slot " + std::to_string(s) +
                           ": tensor count or sizes differ from slot 0");
        }
      }
    }
  }

  // ---- decide (worker thread, or serving thread in sync mode) ----
  void decide(const Job& job, CycleResult& out) const {
    const FaultInjection& f = self.cfg_.fault;
    try {
      if (fault_hits(f, FaultInjection::Kind::kWorkerException, rank, job.cycle))
        throw std::runtime_error("injected worker exception");
      PolicyInput in{topo, job.load, &job.current, self.cfg_.policy_options};
      Placement target = policy->rebalance(in);
      if (fault_hits(f, FaultInjection::Kind::kBadPlacement, rank, job.cycle) &&
          target.num_slots() > 1)
        target.at(0, 1) = target.at(0, 0);  // two replicas on rank 0, or an expert missing
      if (target.layers() != L || target.experts() != E || target.num_slots() != topo.num_slots()) {
        out.fail = FailKind::kInvalid;
        out.error = "policy returned a placement of the wrong shape";
        out.state.store(kVoteFailed, std::memory_order_release);
        return;
      }
      const Status v = validate_placement(target, topo);
      if (!v.ok()) {
        out.fail = FailKind::kInvalid;
        out.error = "policy returned an invalid placement: " + v.message();
        out.state.store(kVoteFailed, std::memory_order_release);
        return;
      }
      for (int l = 0; l < L; ++l) {
        const std::span<const ExpertId> old_row = job.current.layer(l);
        const std::span<const ExpertId> new_row = std::as_const(target).layer(l);
        if (std::equal(old_row.begin(), old_row.end(), new_row.begin())) continue;
        const LayerPlan plan =
            make_layer_plan(old_row, new_row, l, E, topo, self.cfg_.link_weights);
        LayerWork w;
        w.layer = l;
        w.new_row.assign(new_row.begin(), new_row.end());
        w.table = std::make_unique<RoutingTable>(new_row, E);
        const auto& sizes = tensor_sizes[static_cast<std::size_t>(l)];
        std::int64_t expert_bytes = 0;
        for (auto sz : sizes) expert_bytes += static_cast<std::int64_t>(sz);
        for (const TransferOp& op : plan.ops) {
          if (op.dst_rank == rank) {
            w.installs.push_back({op.src_rank, op.src_slot, op.dst_slot});
            std::vector<std::vector<std::byte>> bufs;
            for (auto sz : sizes) bufs.emplace_back(sz);
            w.staging.push_back(std::move(bufs));
            if (!op.is_local()) w.bytes_in += expert_bytes;
          }
          if (op.src_rank == rank && !op.is_local()) {
            w.sends.push_back({op.dst_rank, op.src_slot});
            w.bytes_out += expert_bytes;
          }
        }
        out.layers.push_back(std::move(w));
      }
      out.hash = placement_hash(target);
      out.state.store(kVoteReady, std::memory_order_release);
    } catch (const std::exception& e) {
      out.fail = FailKind::kWorker;
      out.error = std::string("worker failed: ") + e.what();
      out.layers.clear();
      out.state.store(kVoteFailed, std::memory_order_release);
    }
  }

  void worker_loop() {
    if (self.cfg_.background_worker && !lower_current_thread_priority())
      log("could not lower the worker thread's priority; it runs at normal priority",
          LogSeverity::kWarning);
    for (;;) {
      Job job;
      {
        std::unique_lock lock(worker_mu);
        // Notified by start_cycle; the timeout only bounds the wait. At nice 19 a wake-up does
        // not preempt the serving thread that notifies (the worker's weight is 1.5% of theirs).
        while (!stop && jobs.empty()) worker_cv.wait_for(lock, Millis(100));
        if (stop) return;
        job = std::move(jobs.front());
        jobs.pop_front();
      }
      if (job.result->cancelled.load(std::memory_order_acquire)) continue;
      decide(job, *job.result);
    }
  }

  // ---- serving thread ----
  int tag_for(int layer) const {
    const int space = Transport::kMaxTag - self.cfg_.tag_base;
    return self.cfg_.tag_base + static_cast<int>((cycle->cycle * L + layer) % space);
  }

  void post_layers(std::size_t count) {
    // The transfer fault fires at the first layer, in its cycle or a later one, in which this
    // rank sends anything (once; once per cycle when the fault cycle is -1).
    const FaultInjection& f = self.cfg_.fault;
    const bool withhold_fault = f.kind == FaultInjection::Kind::kTransferTimeout &&
                                f.rank == rank && (f.cycle < 0 || cycle->cycle >= f.cycle);
    std::vector<P2POp> ops;
    for (std::size_t k = 0; k < count && next_layer < cycle->layers.size(); ++k) {
      LayerWork& w = cycle->layers[next_layer++];
      const int tag = tag_for(w.layer);
      const auto& lslots = slots[static_cast<std::size_t>(w.layer)];
      ops.clear();
      for (std::size_t i = 0; i < w.installs.size(); ++i) {
        const auto& in = w.installs[i];
        auto& stage = w.staging[i];
        if (in.src_rank == rank) {
          // Stage local copies now: every source is read before any destination is written.
          const auto c0 = Clock::now();
          const auto& src = lslots[static_cast<std::size_t>(in.src_slot)];
          for (std::size_t t = 0; t < stage.size(); ++t)
            std::memcpy(stage[t].data(), src[t].data(), stage[t].size());
          copy_ns += elapsed_ns(c0);
        } else {
          for (auto& buf : stage) ops.push_back(P2POp::recv(in.src_rank, tag, buf, /*bulk=*/true));
        }
      }
      const bool withhold = withhold_fault && !withheld_once && !w.sends.empty();
      if (withhold) {
        withheld_once = true;
        log("fault injection: withholding the sends of layer " + std::to_string(w.layer),
            LogSeverity::kWarning);
      } else {
        for (const auto& s : w.sends)
          for (const auto& buf : lslots[static_cast<std::size_t>(s.src_slot)])
            ops.push_back(P2POp::send(s.dst_rank, tag, buf, /*bulk=*/true));
      }
      posted.push_back({&w, transport.post(ops)});
    }
  }

  void install(LayerWork& w) {
    const auto c0 = Clock::now();
    auto& lslots = slots[static_cast<std::size_t>(w.layer)];
    for (std::size_t i = 0; i < w.installs.size(); ++i) {
      auto& dst = lslots[static_cast<std::size_t>(w.installs[i].dst_slot)];
      const auto& stage = w.staging[i];
      for (std::size_t t = 0; t < stage.size(); ++t)
        std::memcpy(dst[t].data(), stage[t].data(), stage[t].size());
    }
    copy_ns += elapsed_ns(c0);
    // Weights first, then the table.
    auto row = self.placement_.layer(w.layer);
    std::copy(w.new_row.begin(), w.new_row.end(), row.begin());
    const auto l = static_cast<std::size_t>(w.layer);
    retired[l] = std::move(live[l]);
    live[l] = std::move(w.table);
    self.tables_[l].store(live[l].get(), std::memory_order_release);
    // Counts recorded under the old placement are carried, to be folded onto the old experts.
    const auto counts = recorder.layer(w.layer);
    std::int64_t* c = carry.data() + static_cast<std::size_t>(w.layer) * S;
    for (int s = 0; s < S; ++s) c[s] += counts[static_cast<std::size_t>(s)];
    recorder.clear_layer(w.layer);
    w.staging.clear();
    w.staging.shrink_to_fit();
  }

  void finish_posted() {
    if (posted.empty()) return;
    const auto deadline = Clock::now() + self.cfg_.transfer_timeout;
    std::vector<std::int64_t> votes(posted.size(), 1);
    std::vector<std::string> why(posted.size());
    const auto t0 = Clock::now();
    // A layer that timed out must not eat the time of the layers behind it (sync mode waits for
    // all of them): each later wait gets at least a short grace.
    const auto grace = std::min<Clock::duration>(self.cfg_.transfer_timeout, Millis(10));
    for (std::size_t i = 0; i < posted.size(); ++i) {
      const Status s = posted[i].batch->wait(std::max(deadline, Clock::now() + grace));
      if (!s.ok()) {
        votes[i] = 0;
        why[i] = s.to_string();
      }
    }
    wait_ns += elapsed_ns(t0);
    const Status agreed = timed_collective(
        [&] { return transport.all_reduce(votes, ReduceOp::kMin, self.cfg_.collective_timeout); });
    if (!agreed.ok()) {
      error("layer agreement failed (" + agreed.to_string() + "); layers stay on the old placement",
            &BalancerCounters::collective_failures);
      std::fill(votes.begin(), votes.end(), 0);
    }
    for (std::size_t i = 0; i < posted.size(); ++i) {
      LayerWork& w = *posted[i].work;
      posted[i].batch.reset();
      if (votes[i] == 1) {
        install(w);
        ++step_stats.layers_committed;
        step_stats.bytes_sent += w.bytes_out;
        step_stats.bytes_received += w.bytes_in;
        ++committed_in_cycle;
      } else {
        ++step_stats.layers_failed;
        ++failed_in_cycle;
        const std::string msg = "cycle " + std::to_string(cycle->cycle) + " layer " +
                                std::to_string(w.layer) + ": transfer failed (" +
                                (why[i].empty() ? "on another rank" : why[i]) +
                                "); the layer stays on its old placement";
        error(msg, &BalancerCounters::transfer_failures);
        w.staging.clear();
      }
    }
    posted.clear();
    if (next_layer >= cycle->layers.size()) end_cycle();
  }

  void end_cycle() {
    {
      std::lock_guard lock(counters_mu);
      counters.layers_committed += committed_in_cycle;
      counters.layers_failed += failed_in_cycle;
      if (committed_in_cycle > 0) ++counters.rebalances;
    }
    log("cycle " + std::to_string(cycle->cycle) + " done at step " + std::to_string(self.step_) +
        ": " + std::to_string(committed_in_cycle) + " layers committed, " +
        std::to_string(failed_in_cycle) + " failed");
    step_stats.rebalance_finished = true;
    cycle.reset();
    phase = Phase::kIdle;
  }

  // Agreement on the worker's result. Returns true when the cycle goes on to moving.
  void poll_decision(bool final_poll) {
    std::int64_t vote = cycle->state.load(std::memory_order_acquire);
    std::string local_reason;
    if (vote == kVoteFailed) local_reason = cycle->error;
    if (vote == kVotePending &&
        (final_poll || Clock::now() - cycle->started > self.cfg_.worker_timeout)) {
      vote = kVoteFailed;
      local_reason = "worker did not finish within " +
                     std::to_string(self.cfg_.worker_timeout.count()) + " ms";
      cycle->cancelled.store(true, std::memory_order_release);
    }
    const std::int64_t h = vote == kVoteReady ? cycle->hash : 0;
    std::vector<std::int64_t> v = {vote, h, -h};
    const Status s = timed_collective(
        [&] { return transport.all_reduce(v, ReduceOp::kMin, self.cfg_.collective_timeout); });
    const std::string name = "cycle " + std::to_string(cycle->cycle);
    if (!s.ok()) {
      error(name + ": decision agreement failed (" + s.to_string() + "); cycle dropped",
            &BalancerCounters::collective_failures);
      drop_cycle();
      return;
    }
    if (v[0] == kVoteReady && v[1] != -v[2]) {
      error(name + ": ranks computed different placements; cycle dropped", nullptr);
      drop_cycle();
      return;
    }
    if (v[0] == kVoteReady) {
      count(&BalancerCounters::cycles_agreed);
      step_stats.cycle_agreed = true;
      phase = Phase::kMoving;
      next_layer = 0;
      committed_in_cycle = failed_in_cycle = 0;
      if (self.cfg_.fault.cycle < 0) withheld_once = false;
      log(name + " agreed at step " + std::to_string(self.step_) + ": " +
          std::to_string(cycle->layers.size()) + " layers to move");
      if (cycle->layers.empty()) end_cycle();
      return;
    }
    if (v[0] == kVoteFailed) {
      if (!local_reason.empty()) {
        std::int64_t BalancerCounters::*counter = cycle->fail == FailKind::kInvalid
                                                      ? &BalancerCounters::invalid_placements
                                                      : &BalancerCounters::worker_failures;
        error(name + ": " + local_reason + "; cycle dropped on every rank", counter);
      } else {
        error(name + ": another rank failed to decide; cycle dropped", nullptr);
      }
      drop_cycle();
      return;
    }
    next_poll = self.step_ + self.cfg_.decision_poll_steps;
  }

  void drop_cycle() {
    count(&BalancerCounters::cycles_dropped);
    cycle->cancelled.store(true, std::memory_order_release);
    cycle.reset();
    phase = Phase::kIdle;
  }

  void gather() {
    const std::size_t n = static_cast<std::size_t>(L) * S;
    std::copy(recorder.all().begin(), recorder.all().end(), send_buf.begin());
    std::copy(carry.begin(), carry.end(), send_buf.begin() + static_cast<std::ptrdiff_t>(n));
    const Status s = timed_collective(
        [&] { return transport.all_gather(send_buf, gathered, self.cfg_.collective_timeout); });
    recorder.clear();
    std::fill(carry.begin(), carry.end(), 0);
    const Placement& start = interval_start;
    if (!s.ok()) {
      interval_start = self.placement_;
      error("count all-gather failed (" + s.to_string() + "); interval skipped",
            &BalancerCounters::collective_failures);
      return;
    }
    for (int r = 0; r < topo.ranks; ++r) {
      const auto* block = gathered.data() + 2 * n * static_cast<std::size_t>(r);
      std::copy(block, block + n, cur_all.begin() + static_cast<std::ptrdiff_t>(n * r));
      std::copy(block + n, block + 2 * n, carry_all.begin() + static_cast<std::ptrdiff_t>(n * r));
    }
    for (int l = 0; l < L; ++l) {
      auto row = interval_load.row(l);
      std::fill(row.begin(), row.end(), 0.0);
    }
    fold_slot_counts_into(cur_all, self.placement_, topo, interval_load);
    fold_slot_counts_into(carry_all, start, topo, interval_load);
    interval_start = self.placement_;
    window.push(interval_load);
    step_stats.gathered = true;
    count(&BalancerCounters::gathers);
  }

  void start_cycle() {
    auto result = std::make_shared<CycleResult>();
    result->cycle = next_cycle++;
    result->started = Clock::now();
    count(&BalancerCounters::cycles_started);
    cycle = result;
    phase = Phase::kDeciding;
    Job job{result->cycle, window.sum(), self.placement_, result};
    if (self.cfg_.mode == BalancerMode::kSync) {
      // Stop the world: decide, agree, move and commit every layer before serving resumes.
      decide(job, *result);
      poll_decision(/*final_poll=*/true);
      if (phase == Phase::kMoving) {
        post_layers(cycle->layers.size());
        finish_posted();
      }
      return;
    }
    {
      std::lock_guard lock(worker_mu);
      jobs.push_back(std::move(job));
    }
    worker_cv.notify_one();
    next_poll = self.step_ + self.cfg_.decision_poll_steps;
  }
};

Balancer::Balancer(const Topology& topo, int rank, Transport& transport,
                   std::shared_ptr<const Policy> policy, Placement initial, BalancerConfig config)
    : tables_(static_cast<std::size_t>(initial.layers())),
      placement_(std::move(initial)),
      cfg_(std::move(config)) {
  if (policy == nullptr) throw InputError("balancer needs a policy");
  if (transport.size() != topo.ranks)
    throw InputError("transport has " + std::to_string(transport.size()) + " ranks, the topology " +
                     std::to_string(topo.ranks));
  if (rank < 0 || rank >= topo.ranks || transport.rank() != rank)
    throw InputError("rank " + std::to_string(rank) + " does not match the transport");
  if (placement_.empty()) throw InputError("balancer needs an initial placement");
  throw_if_error(validate_placement(placement_, topo));
  if (cfg_.interval_steps < 1) throw InputError("interval_steps must be at least 1");
  if (cfg_.layers_per_step < 1) throw InputError("layers_per_step must be at least 1");
  if (cfg_.decision_poll_steps < 1) throw InputError("decision_poll_steps must be at least 1");
  if (cfg_.tag_base < 0 || cfg_.tag_base >= Transport::kMaxTag)
    throw InputError("tag_base out of range");
  if (cfg_.worker_timeout.count() <= 0 || cfg_.transfer_timeout.count() <= 0 ||
      cfg_.collective_timeout.count() <= 0)
    throw InputError("timeouts must be positive");

  impl_ = std::make_unique<Impl>(*this, topo, rank, transport, std::move(policy));
  Impl& m = *impl_;
  m.L = placement_.layers();
  m.S = topo.slots_per_rank;
  m.E = placement_.experts();
  m.slots.assign(static_cast<std::size_t>(m.L),
                 std::vector<std::vector<std::span<std::byte>>>(static_cast<std::size_t>(m.S)));
  m.live.resize(static_cast<std::size_t>(m.L));
  m.retired.resize(static_cast<std::size_t>(m.L));
  for (int l = 0; l < m.L; ++l) {
    m.live[static_cast<std::size_t>(l)] = std::make_unique<RoutingTable>(placement_.layer(l), m.E);
    tables_[static_cast<std::size_t>(l)].store(m.live[static_cast<std::size_t>(l)].get(),
                                               std::memory_order_release);
  }
  m.recorder = Recorder(m.L, m.S);
  m.window = LoadWindow(m.L, m.E, cfg_.window_intervals, cfg_.window_decay);
  const std::size_t n = static_cast<std::size_t>(m.L) * m.S;
  m.carry.assign(n, 0);
  m.interval_start = placement_;
  m.send_buf.assign(2 * n, 0);
  m.gathered.assign(2 * n * static_cast<std::size_t>(topo.ranks), 0);
  m.cur_all.assign(n * static_cast<std::size_t>(topo.ranks), 0);
  m.carry_all.assign(n * static_cast<std::size_t>(topo.ranks), 0);
  m.interval_load = LoadMatrix(m.L, m.E);
  if (cfg_.mode == BalancerMode::kAsync) m.worker = std::thread([&m] { m.worker_loop(); });
}

Balancer::~Balancer() {
  if (!impl_) return;
  {
    std::lock_guard lock(impl_->worker_mu);
    impl_->stop = true;
  }
  impl_->worker_cv.notify_all();
  if (impl_->worker.joinable()) impl_->worker.join();
  impl_->posted.clear();  // cancels unfinished transfers before the staging goes away
}

void Balancer::register_expert(int layer, int local_slot,
                               std::vector<std::span<std::byte>> tensors) {
  Impl& m = *impl_;
  if (m.frozen) throw InputError("register_expert after the first step");
  if (layer < 0 || layer >= m.L || local_slot < 0 || local_slot >= m.S)
    throw InputError("register_expert: (layer " + std::to_string(layer) + ", slot " +
                     std::to_string(local_slot) + ") out of range");
  if (tensors.empty()) throw InputError("register_expert: an expert needs at least one tensor");
  m.slots[static_cast<std::size_t>(layer)][static_cast<std::size_t>(local_slot)] =
      std::move(tensors);
}

void Balancer::record(int layer, std::span<const std::int64_t> slot_counts) {
  const auto t0 = Clock::now();
  impl_->recorder.record(layer, slot_counts);
  impl_->record_ns += elapsed_ns(t0);
}

void Balancer::before_forward() {
  const auto t0 = Clock::now();
  Impl& m = *impl_;
  m.freeze();
  if (cfg_.mode == BalancerMode::kAsync && m.phase == Impl::Phase::kMoving && m.posted.empty() &&
      m.cycle && m.next_layer < m.cycle->layers.size())
    m.post_layers(static_cast<std::size_t>(cfg_.layers_per_step));
  m.before_ns += elapsed_ns(t0);
}

StepStats Balancer::after_forward() {
  const auto t0 = Clock::now();
  Impl& m = *impl_;
  m.freeze();
  m.step_stats = StepStats{};
  ++step_;
  m.step_stats.step = step_;
  if (cfg_.mode == BalancerMode::kAsync) {
    if (m.phase == Impl::Phase::kMoving) m.finish_posted();
    if (m.phase == Impl::Phase::kDeciding && step_ >= m.next_poll) m.poll_decision(false);
  }
  if (cfg_.mode != BalancerMode::kOff && step_ % cfg_.interval_steps == 0) {
    m.gather();
    if (m.phase == Impl::Phase::kIdle && m.step_stats.gathered) m.start_cycle();
  }
  StepStats out = m.step_stats;
  out.wait_ns = m.wait_ns;
  out.copy_ns = m.copy_ns;
  out.serving_ns = elapsed_ns(t0) + m.before_ns + m.record_ns - m.wait_ns - m.copy_ns;
  m.wait_ns = m.before_ns = m.record_ns = m.copy_ns = 0;
  {
    std::lock_guard lock(m.counters_mu);
    ++m.counters.steps;
    m.counters.bytes_sent += out.bytes_sent;
    m.counters.bytes_received += out.bytes_received;
  }
  return out;
}

BalancerCounters Balancer::counters() const {
  std::lock_guard lock(impl_->counters_mu);
  return impl_->counters;
}

}  // namespace swiftbalancer
