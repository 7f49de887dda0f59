#include "swiftbalancer/demo/demo_engine.h"

#include <unistd.h>

#include <cstdio>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/core/resource.h"
#include "swiftbalancer/demo/emulated_link.h"
#include "swiftbalancer/demo/token_dispatcher.h"
#include "swiftbalancer/transport/inprocess_transport.h"

namespace swiftbalancer {

CanonicalExperts::CanonicalExperts(const MlpShape& shape, int layers, int experts,
                                   std::uint64_t seed)
    : sizes_(expert_tensor_bytes(shape)), experts_(experts) {
  expert_bytes_ = sizes_[0] + sizes_[1] + sizes_[2];
  data_.resize(expert_bytes_ * static_cast<std::size_t>(layers) * experts);
  for (int l = 0; l < layers; ++l)
    for (int e = 0; e < experts; ++e) {
      std::byte* p = data_.data() + (static_cast<std::size_t>(l) * experts + e) * expert_bytes_;
      generate_expert(shape, seed, l, e, {p, sizes_[0]}, {p + sizes_[0], sizes_[1]},
                      {p + sizes_[0] + sizes_[1], sizes_[2]});
    }
}

std::span<const std::byte> CanonicalExperts::tensor(int layer, int expert, int t) const {
  std::size_t off = (static_cast<std::size_t>(layer) * experts_ + expert) * expert_bytes_;
  for (int k = 0; k < t; ++k) off += sizes_[static_cast<std::size_t>(k)];
  return {data_.data() + off, sizes_[static_cast<std::size_t>(t)]};
}

namespace {

// Resident set of this process in KiB (Linux /proc); 0 elsewhere.
std::int64_t resident_kb() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%lld %lld", &size, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  return static_cast<std::int64_t>(resident) * sysconf(_SC_PAGESIZE) / 1024;
}

// Per-rank, per-step integers exchanged at the end.
enum Field {
  kWallNs,
  kServingNs,
  kWaitNs,
  kBytes,
  kCommitted,
  kErrors,
  kVerified,
  kMismatch,
  kFlags,
  kCopyNs,
  kFields
};

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// The engine's expert memory of one rank: [layer][local slot][tensor].
using ExpertMemory = std::vector<std::vector<std::array<std::vector<std::byte>, 3>>>;

// Fills every local slot with the canonical weights of the expert the initial placement puts
// there and registers the slot's buffers with the balancer (which then writes them on commit).
ExpertMemory load_initial_experts(const CanonicalExperts& canonical, const Topology& topo,
                                  const Placement& initial, int rank, Balancer& balancer) {
  const int L = initial.layers(), S = topo.slots_per_rank;
  ExpertMemory mem(static_cast<std::size_t>(L));
  for (int l = 0; l < L; ++l) {
    mem[l].resize(static_cast<std::size_t>(S));
    for (int s = 0; s < S; ++s) {
      const int e = initial.at(l, topo.slot_id(rank, s));
      std::vector<std::span<std::byte>> spans;
      for (int t = 0; t < 3; ++t) {
        auto& buf = mem[l][s][t];
        const auto src = canonical.tensor(l, e, t);
        buf.assign(src.begin(), src.end());
        spans.emplace_back(buf);
      }
      balancer.register_expert(l, s, std::move(spans));
    }
  }
  return mem;
}

// One rank's serving loop: per step and layer, route, dispatch, record, compute the experts in
// their slots, combine and verify against the canonical weights. Buffers are sized once.
class RankEngine {
 public:
  // Experts in `mem` (host), or in `experts` when it is not null.
  RankEngine(const DemoOptions& opt, Transport& transport, const CanonicalExperts& canonical,
             const Topology& topo, const Workload& workload, Balancer& balancer,
             const ExpertMemory& mem, RankExperts* experts)
      : opt_(opt),
        canonical_(canonical),
        topo_(topo),
        workload_(workload),
        balancer_(balancer),
        mem_(mem),
        experts_elsewhere_(experts),
        rank_(transport.rank()),
        S_(opt.slots_per_rank),
        E_(opt.workload.experts),
        K_(opt.workload.topk),
        T_(opt.workload.tokens_per_rank),
        H_(opt.mlp.hidden),
        dispatcher_(transport, H_, /*tag_base=*/1, opt.dispatch_timeout),
        x_(static_cast<std::size_t>(T_) * H_),
        y_(static_cast<std::size_t>(T_) * K_ * H_),
        ref_row_(H_),
        out_row_(H_),
        ref_(H_),
        scratch_(static_cast<std::size_t>(opt.mlp.ffn)),
        experts_(static_cast<std::size_t>(T_) * K_),
        gates_(static_cast<std::size_t>(T_) * K_),
        replica_index_(static_cast<std::size_t>(E_)),
        counts_(static_cast<std::size_t>(S_)),
        assign_(static_cast<std::size_t>(T_) * K_) {}

  // Serves `step` (1-based) and writes its record (kFields + layers integers) into r.
  void serve_step(int step, std::int64_t* r) {
    const std::int64_t t0 = now_ns();
    balancer_.before_forward();
    workload_.hidden(step, rank_, H_, x_);
    for (int l = 0; l < opt_.workload.layers; ++l) serve_layer(step, l, r);
    const StepStats st = balancer_.after_forward();
    r[kWallNs] = now_ns() - t0;
    r[kServingNs] = st.serving_ns;
    r[kWaitNs] = st.wait_ns;
    r[kCopyNs] = st.copy_ns;
    r[kBytes] = st.bytes_sent;
    r[kCommitted] = st.layers_committed;
    r[kErrors] = st.errors;
    r[kFlags] = (st.gathered ? 1 : 0) | (st.rebalance_finished ? 2 : 0);
  }

 private:
  void serve_layer(int step, int l, std::int64_t* r) {
    route(step, l, balancer_.routing(l));
    dispatcher_.dispatch(assign_, x_);
    dispatcher_.slot_counts(counts_);
    balancer_.record(l, counts_);
    r[kFields + l] = dispatcher_.received();
    compute_experts(l);
    dispatcher_.combine(y_);
    combine_and_verify(l, r);
  }

  // The workload picks each token's experts; the routing table picks the slot of each (token,
  // k), spreading an expert's tokens over its replicas in turn.
  void route(int step, int l, const RoutingTable& table) {
    workload_.route(step, l, rank_, experts_, gates_);
    std::fill(replica_index_.begin(), replica_index_.end(), 0);
    for (int i = 0; i < T_ * K_; ++i) {
      const int e = experts_[static_cast<std::size_t>(i)];
      const int p = table.select(e, replica_index_[static_cast<std::size_t>(e)]++, rank_);
      assign_[static_cast<std::size_t>(i)] = {i / K_, topo_.rank_of_slot(p), p % S_};
    }
  }

  // Expert computation: each received row with the weights in its slot.
  void compute_experts(int l) {
    const auto rows = dispatcher_.received_rows();
    const auto slots = dispatcher_.received_slots();
    auto results = dispatcher_.results();
    if (experts_elsewhere_ != nullptr) {
      experts_elsewhere_->compute(l, rows, slots, results);
      return;
    }
    for (int i = 0; i < dispatcher_.received(); ++i) {
      const auto& w = mem_[l][static_cast<std::size_t>(slots[static_cast<std::size_t>(i)])];
      apply_mlp(opt_.mlp, w[0], w[1], w[2], rows.data() + static_cast<std::size_t>(i) * H_, 1,
                results.data() + static_cast<std::size_t>(i) * H_, scratch_.data());
    }
  }

  // Combine the top-k results, check against the canonical weights, then the residual.
  void combine_and_verify(int l, std::int64_t* r) {
    for (int i = 0; i < T_; ++i) {
      float* xi = x_.data() + static_cast<std::size_t>(i) * H_;
      std::fill(out_row_.begin(), out_row_.end(), 0.0f);
      std::fill(ref_.begin(), ref_.end(), 0.0f);
      for (int k = 0; k < K_; ++k) {
        const std::size_t a = static_cast<std::size_t>(i) * K_ + k;
        const float g = gates_[a];
        const float* yk = y_.data() + a * H_;
        const int e = experts_[a];
        apply_mlp(opt_.mlp, canonical_.tensor(l, e, 0), canonical_.tensor(l, e, 1),
                  canonical_.tensor(l, e, 2), xi, 1, ref_row_.data(), scratch_.data());
        for (int h = 0; h < H_; ++h) {
          out_row_[h] += g * yk[h];
          ref_[h] += g * ref_row_[h];
        }
      }
      ++r[kVerified];
      if (std::memcmp(out_row_.data(), ref_.data(), sizeof(float) * H_) != 0) ++r[kMismatch];
      for (int h = 0; h < H_; ++h) xi[h] += out_row_[h];
    }
  }

  const DemoOptions& opt_;
  const CanonicalExperts& canonical_;
  const Topology& topo_;
  const Workload& workload_;
  Balancer& balancer_;
  const ExpertMemory& mem_;  // read here; written by the balancer on commit, between steps
  RankExperts* experts_elsewhere_;
  const int rank_, S_, E_, K_, T_, H_;
  TokenDispatcher dispatcher_;
  std::vector<float> x_, y_, ref_row_, out_row_, ref_, scratch_;
  std::vector<std::int32_t> experts_;
  std::vector<float> gates_;
  std::vector<std::int64_t> replica_index_, counts_;
  std::vector<TokenDispatcher::Assignment> assign_;
};

// Tells opt.on_balancer about the rank's balancer for as long as it lives.
class BalancerAnnouncement {
 public:
  BalancerAnnouncement(const DemoOptions& opt, int rank, const Balancer& b)
      : hook_(opt.on_balancer), rank_(rank) {
    if (hook_) hook_(rank_, &b);
  }
  ~BalancerAnnouncement() {
    if (hook_) hook_(rank_, nullptr);
  }
  BalancerAnnouncement(const BalancerAnnouncement&) = delete;
  BalancerAnnouncement& operator=(const BalancerAnnouncement&) = delete;

 private:
  const std::function<void(int, const Balancer*)>& hook_;
  int rank_;
};

// Start the first step together: otherwise a rank that finished its setup early would count
// the wait for the others' setup in its first step.
void start_together(Transport& transport, Millis timeout) {
  std::vector<std::int64_t> go = {1};
  const Status s = transport.all_reduce(go, ReduceOp::kMin, timeout);
  if (!s.ok()) throw std::runtime_error("start barrier failed: " + s.to_string());
}

// One step of the report from every rank's records (all: [rank][step][F]).
DemoStep summarise_step(const std::vector<std::int64_t>& all, int R, int L, int steps, int F,
                        int step) {
  DemoStep d;
  d.rank_tokens.assign(static_cast<std::size_t>(R), 0);
  double imb = 0;
  for (int l = 0; l < L; ++l) {
    std::int64_t mx = 0, sum = 0;
    for (int q = 0; q < R; ++q) {
      const std::int64_t v = all[(static_cast<std::size_t>(q) * steps + step) * F + kFields + l];
      mx = std::max(mx, v);
      sum += v;
      d.rank_tokens[static_cast<std::size_t>(q)] += v;
    }
    imb += sum > 0 ? static_cast<double>(mx) * R / static_cast<double>(sum) : 1.0;
  }
  d.imbalance = imb / L;
  for (int q = 0; q < R; ++q) {
    const std::int64_t* rq = all.data() + (static_cast<std::size_t>(q) * steps + step) * F;
    d.wall_ms = std::max(d.wall_ms, static_cast<double>(rq[kWallNs]) / 1e6);
    d.balancer_us.push_back(static_cast<double>(rq[kServingNs]) / 1e3);
    d.wait_us.push_back(static_cast<double>(rq[kWaitNs]) / 1e3);
    d.copy_us.push_back(static_cast<double>(rq[kCopyNs]) / 1e3);
    d.bytes_moved += rq[kBytes];
    d.layers_committed = std::max(d.layers_committed, static_cast<int>(rq[kCommitted]));
    d.errors += static_cast<int>(rq[kErrors]);
    d.verified += rq[kVerified];
    d.mismatches += rq[kMismatch];
    d.gathered = d.gathered || (rq[kFlags] & 1);
    d.rebalance_finished = d.rebalance_finished || (rq[kFlags] & 2);
  }
  return d;
}

}  // namespace

namespace {

// One rank's run: `transport` for tokens and the demo's collectives, `weights` (already behind
// the emulated link, if any) for the balancer; experts in host memory unless `experts` is set.
DemoResult serve_rank(const DemoOptions& opt, Transport& transport, Transport& weights,
                      RankExperts* experts, const CanonicalExperts& canonical) {
  const int R = opt.ranks, L = opt.workload.layers;
  if (opt.recover_window < 1 || !(opt.recover_tol >= 0.0) || !std::isfinite(opt.recover_tol))
    throw InputError("recover window must be positive and recover tolerance finite, >= 0");
  if (transport.size() != R || weights.size() != R)
    throw InputError("the transport has " + std::to_string(transport.size()) +
                     " ranks, --ranks is " + std::to_string(R));
  const Topology topo = Topology::make(R, opt.slots_per_rank);
  throw_if_error(topo.validate(opt.workload.experts));
  const Placement initial = contiguous_placement(topo, L, opt.workload.experts);
  WorkloadSpec ws = opt.workload;
  ws.ranks = R;
  const Workload workload(ws);

  std::shared_ptr<const Policy> policy = make_policy(opt.policy);
  if (experts != nullptr) experts->load(canonical, topo, initial, transport.rank());
  std::optional<Balancer> balancer;
  if (experts != nullptr)
    balancer.emplace(topo, transport.rank(), weights, policy, initial, experts->store(),
                     opt.balancer);
  else
    balancer.emplace(topo, transport.rank(), weights, policy, initial, opt.balancer);
  const BalancerAnnouncement announced(opt, transport.rank(), *balancer);  // gone before it
  // Registered with the balancer, which writes it on commit; moving the vector keeps its buffers.
  ExpertMemory mem;
  if (experts == nullptr)
    mem = load_initial_experts(canonical, topo, initial, transport.rank(), *balancer);
  RankEngine engine(opt, transport, canonical, topo, workload, *balancer, mem, experts);

  // Serve, one record of F integers per step.
  const int F = kFields + L;
  std::vector<std::int64_t> rec(static_cast<std::size_t>(opt.steps) * F, 0);
  start_together(transport, opt.dispatch_timeout);
  const auto t_start = Clock::now();
  const int warm_step = std::max(1, opt.steps / 5);
  std::int64_t rss_warm_kb = 0;
  for (int step = 1; step <= opt.steps; ++step) {
    engine.serve_step(step, rec.data() + static_cast<std::size_t>(step - 1) * F);
    if (step == warm_step) rss_warm_kb = resident_kb();
  }
  // Sampled between two barriers: in-process ranks share the process, and the report exchange
  // below allocates buffers that grow with the steps; no rank may start it before every rank
  // has sampled.
  std::vector<std::int64_t> barrier = {1};
  (void)transport.all_reduce(barrier, ReduceOp::kSum, opt.dispatch_timeout);
  const std::int64_t rss_end_kb = resident_kb();
  (void)transport.all_reduce(barrier, ReduceOp::kSum, opt.dispatch_timeout);
  const double seconds = std::chrono::duration<double>(Clock::now() - t_start).count();

  // Every rank gets every rank's records.
  std::vector<std::int64_t> all(rec.size() * static_cast<std::size_t>(R));
  const Status s = transport.all_gather(rec, all, opt.dispatch_timeout);
  if (!s.ok()) throw std::runtime_error("report exchange failed: " + s.to_string());

  DemoResult out;
  out.mode = balancer_mode_name(opt.balancer.mode);
  out.counters = balancer->counters();
  std::vector<std::int64_t> peak = {out.counters.peak_staging_bytes, rss_warm_kb, rss_end_kb};
  if (const Status p = transport.all_reduce(peak, ReduceOp::kMax, opt.dispatch_timeout); !p.ok())
    throw std::runtime_error("report exchange failed: " + p.to_string());
  out.peak_staging_bytes = peak[0];
  out.rss_warm_kb = peak[1];
  out.rss_end_kb = peak[2];
  // The balancer's pool: staging_regions() layer regions (more with a faster shift rate).
  out.staging_bound_bytes = static_cast<std::int64_t>(staging_regions(opt.balancer)) *
                            opt.slots_per_rank *
                            static_cast<std::int64_t>(canonical.expert_bytes());
  out.seconds = seconds;
  out.steps.reserve(static_cast<std::size_t>(opt.steps));
  for (int step = 0; step < opt.steps; ++step) {
    out.steps.push_back(summarise_step(all, R, L, opt.steps, F, step));
    out.verified += out.steps.back().verified;
    out.mismatches += out.steps.back().mismatches;
  }
  for (int sw : opt.workload.switch_at)
    out.recover_steps.push_back(
        demo_recovery_steps(out.steps, sw, opt.recover_window, opt.recover_tol));
  return out;
}

std::optional<EmulatedLinkTransport> emulated_link(const DemoOptions& opt, Transport& inner) {
  if (opt.link_gbps < 0) throw InputError("link bandwidth must not be negative");
  std::optional<EmulatedLinkTransport> link;
  if (opt.link_gbps > 0)
    link.emplace(inner, EmulatedLinkTransport::gbps_to_bytes_per_second(opt.link_gbps));
  return link;
}

}  // namespace

std::int64_t demo_recovery_steps(const std::vector<DemoStep>& steps, int switch_step, int window,
                                 double tol) {
  std::vector<double> imbalance;
  imbalance.reserve(steps.size());
  for (const DemoStep& d : steps) imbalance.push_back(d.imbalance);
  // Step k (1-based) is index k - 1: the switch's first step on the new load is index
  // switch_step - 1, and the window before it ends with step switch_step - 1.
  return recovery_steps(imbalance, static_cast<std::int64_t>(switch_step) - 1, window, tol);
}

DemoResult run_demo_rank(const DemoOptions& opt, Transport& base_transport,
                         const CanonicalExperts& canonical) {
  std::optional<EmulatedLinkTransport> link = emulated_link(opt, base_transport);
  Transport& transport = link ? static_cast<Transport&>(*link) : base_transport;
  return serve_rank(opt, transport, transport, nullptr, canonical);
}

DemoResult run_demo_rank(const DemoOptions& opt, Transport& tokens, Transport& weights,
                         RankExperts& experts, const CanonicalExperts& canonical) {
  std::optional<EmulatedLinkTransport> link = emulated_link(opt, weights);
  return serve_rank(opt, tokens, link ? static_cast<Transport&>(*link) : weights, &experts,
                    canonical);
}

DemoResult run_ranks_as_threads(int ranks, const std::function<DemoResult(int)>& rank_main) {
  std::vector<DemoResult> results(static_cast<std::size_t>(ranks));
  std::mutex mu;
  std::exception_ptr first;
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(ranks));
  // A rank thread that cannot start ends the run with a ResourceError; the ranks already
  // started are joined first (their waits are bounded: without the missing rank they fail).
  std::exception_ptr start_failure;
  for (int r = 0; r < ranks && !start_failure; ++r) {
    try {
      threads.emplace_back([&, r] {
        try {
          results[static_cast<std::size_t>(r)] = rank_main(r);
        } catch (...) {
          std::lock_guard lock(mu);
          if (!first) first = std::current_exception();
        }
      });
    } catch (const std::system_error& e) {
      start_failure = std::make_exception_ptr(
          ResourceError("cannot start the thread of rank " + std::to_string(r) + " of " +
                        std::to_string(ranks) + " (" + e.what() + ")"));
    }
  }
  for (auto& t : threads) t.join();
  if (start_failure) std::rethrow_exception(start_failure);
  if (first) std::rethrow_exception(first);
  return results[0];
}

DemoResult run_demo_inprocess(const DemoOptions& opt) {
  InProcessWorld world(opt.ranks);
  const CanonicalExperts canonical(opt.mlp, opt.workload.layers, opt.workload.experts,
                                   opt.workload.seed);
  std::vector<std::unique_ptr<Transport>> ts;
  ts.reserve(static_cast<std::size_t>(opt.ranks));
  for (int r = 0; r < opt.ranks; ++r) ts.push_back(world.transport(r));
  return run_ranks_as_threads(opt.ranks, [&](int r) {
    return run_demo_rank(opt, *ts[static_cast<std::size_t>(r)], canonical);
  });
}

}  // namespace swiftbalancer
