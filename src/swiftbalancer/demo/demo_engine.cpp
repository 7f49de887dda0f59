#include "swiftbalancer/demo/demo_engine.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

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

}  // namespace

DemoResult run_demo_rank(const DemoOptions& opt, Transport& base_transport,
                         const CanonicalExperts& canonical) {
  if (opt.link_gbps < 0) throw InputError("link bandwidth must not be negative");
  std::optional<EmulatedLinkTransport> link;
  if (opt.link_gbps > 0)
    link.emplace(base_transport, EmulatedLinkTransport::gbps_to_bytes_per_second(opt.link_gbps));
  Transport& transport = link ? static_cast<Transport&>(*link) : base_transport;
  const int R = opt.ranks, S = opt.slots_per_rank, L = opt.workload.layers,
            E = opt.workload.experts, K = opt.workload.topk, T = opt.workload.tokens_per_rank,
            H = opt.mlp.hidden;
  const int rank = transport.rank();
  if (transport.size() != R)
    throw InputError("the transport has " + std::to_string(transport.size()) +
                     " ranks, --ranks is " + std::to_string(R));
  const Topology topo = Topology::make(R, S);
  throw_if_error(topo.validate(E));
  const Placement initial = contiguous_placement(topo, L, E);
  WorkloadSpec ws = opt.workload;
  ws.ranks = R;
  const Workload workload(ws);

  // The engine's expert memory: [layer][slot][tensor], filled from the initial placement.
  std::vector<std::vector<std::array<std::vector<std::byte>, 3>>> mem(static_cast<std::size_t>(L));
  std::shared_ptr<const Policy> policy = make_policy(opt.policy);
  Balancer balancer(topo, rank, transport, policy, initial, opt.balancer);
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

  TokenDispatcher dispatcher(transport, H, /*tag_base=*/1, opt.dispatch_timeout);
  std::vector<float> x(static_cast<std::size_t>(T) * H), y(static_cast<std::size_t>(T) * K * H),
      ref_row(H), out_row(H), ref(H), scratch(static_cast<std::size_t>(opt.mlp.ffn));
  std::vector<std::int32_t> experts(static_cast<std::size_t>(T) * K);
  std::vector<float> gates(static_cast<std::size_t>(T) * K);
  std::vector<std::int64_t> replica_index(static_cast<std::size_t>(E)),
      counts(static_cast<std::size_t>(S));
  std::vector<TokenDispatcher::Assignment> assign(static_cast<std::size_t>(T) * K);
  const int F = kFields + L;
  std::vector<std::int64_t> rec(static_cast<std::size_t>(opt.steps) * F, 0);

  // Start the first step together: otherwise a rank that finished its setup early would count
  // the wait for the others' setup in its first step.
  {
    std::vector<std::int64_t> go = {1};
    const Status s = transport.all_reduce(go, ReduceOp::kMin, opt.dispatch_timeout);
    if (!s.ok()) throw std::runtime_error("start barrier failed: " + s.to_string());
  }
  const auto t_start = Clock::now();
  for (int step = 1; step <= opt.steps; ++step) {
    const std::int64_t t0 = now_ns();
    std::int64_t* r = rec.data() + static_cast<std::size_t>(step - 1) * F;
    balancer.before_forward();
    workload.hidden(step, rank, H, x);
    for (int l = 0; l < L; ++l) {
      const RoutingTable& table = balancer.routing(l);
      workload.route(step, l, rank, experts, gates);
      std::fill(replica_index.begin(), replica_index.end(), 0);
      for (int i = 0; i < T * K; ++i) {
        const int e = experts[static_cast<std::size_t>(i)];
        const int p = table.select(e, replica_index[static_cast<std::size_t>(e)]++, rank);
        assign[static_cast<std::size_t>(i)] = {i / K, topo.rank_of_slot(p), p % S};
      }
      dispatcher.dispatch(assign, x);
      dispatcher.slot_counts(counts);
      balancer.record(l, counts);
      r[kFields + l] = dispatcher.received();
      // Expert computation: each received row with the weights in its slot.
      const auto rows = dispatcher.received_rows();
      const auto slots = dispatcher.received_slots();
      auto results = dispatcher.results();
      for (int i = 0; i < dispatcher.received(); ++i) {
        const auto& w = mem[l][static_cast<std::size_t>(slots[static_cast<std::size_t>(i)])];
        apply_mlp(opt.mlp, w[0], w[1], w[2], rows.data() + static_cast<std::size_t>(i) * H, 1,
                  results.data() + static_cast<std::size_t>(i) * H, scratch.data());
      }
      dispatcher.combine(y);
      // Combine the top-k results, check against the canonical weights, then the residual.
      for (int i = 0; i < T; ++i) {
        float* xi = x.data() + static_cast<std::size_t>(i) * H;
        std::fill(out_row.begin(), out_row.end(), 0.0f);
        std::fill(ref.begin(), ref.end(), 0.0f);
        for (int k = 0; k < K; ++k) {
          const std::size_t a = static_cast<std::size_t>(i) * K + k;
          const float g = gates[a];
          const float* yk = y.data() + a * H;
          const int e = experts[a];
          apply_mlp(opt.mlp, canonical.tensor(l, e, 0), canonical.tensor(l, e, 1),
                    canonical.tensor(l, e, 2), xi, 1, ref_row.data(), scratch.data());
          for (int h = 0; h < H; ++h) {
            out_row[h] += g * yk[h];
            ref[h] += g * ref_row[h];
          }
        }
        ++r[kVerified];
        if (std::memcmp(out_row.data(), ref.data(), sizeof(float) * H) != 0) ++r[kMismatch];
        for (int h = 0; h < H; ++h) xi[h] += out_row[h];
      }
    }
    const StepStats st = balancer.after_forward();
    r[kWallNs] = now_ns() - t0;
    r[kServingNs] = st.serving_ns;
    r[kWaitNs] = st.wait_ns;
    r[kCopyNs] = st.copy_ns;
    r[kBytes] = st.bytes_sent;
    r[kCommitted] = st.layers_committed;
    r[kErrors] = st.errors;
    r[kFlags] = (st.gathered ? 1 : 0) | (st.rebalance_finished ? 2 : 0);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t_start).count();

  // Every rank gets every rank's records.
  std::vector<std::int64_t> all(rec.size() * static_cast<std::size_t>(R));
  const Status s = transport.all_gather(rec, all, opt.dispatch_timeout);
  if (!s.ok()) throw std::runtime_error("report exchange failed: " + s.to_string());

  DemoResult out;
  out.mode = balancer_mode_name(opt.balancer.mode);
  out.counters = balancer.counters();
  out.seconds = seconds;
  out.steps.resize(static_cast<std::size_t>(opt.steps));
  for (int step = 0; step < opt.steps; ++step) {
    DemoStep& d = out.steps[static_cast<std::size_t>(step)];
    d.rank_tokens.assign(static_cast<std::size_t>(R), 0);
    double imb = 0;
    for (int l = 0; l < L; ++l) {
      std::int64_t mx = 0, sum = 0;
      for (int q = 0; q < R; ++q) {
        const std::int64_t v =
            all[(static_cast<std::size_t>(q) * opt.steps + step) * F + kFields + l];
        mx = std::max(mx, v);
        sum += v;
        d.rank_tokens[static_cast<std::size_t>(q)] += v;
      }
      imb += sum > 0 ? static_cast<double>(mx) * R / static_cast<double>(sum) : 1.0;
    }
    d.imbalance = imb / L;
    for (int q = 0; q < R; ++q) {
      const std::int64_t* rq = all.data() + (static_cast<std::size_t>(q) * opt.steps + step) * F;
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
    out.verified += d.verified;
    out.mismatches += d.mismatches;
  }
  return out;
}

DemoResult run_demo_inprocess(const DemoOptions& opt) {
  InProcessWorld world(opt.ranks);
  const CanonicalExperts canonical(opt.mlp, opt.workload.layers, opt.workload.experts,
                                   opt.workload.seed);
  std::vector<std::unique_ptr<Transport>> ts;
  ts.reserve(static_cast<std::size_t>(opt.ranks));
  for (int r = 0; r < opt.ranks; ++r) ts.push_back(world.transport(r));
  std::vector<DemoResult> results(static_cast<std::size_t>(opt.ranks));
  std::mutex mu;
  std::exception_ptr first;
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(opt.ranks));
  for (int r = 0; r < opt.ranks; ++r)
    threads.emplace_back([&, r] {
      try {
        results[static_cast<std::size_t>(r)] =
            run_demo_rank(opt, *ts[static_cast<std::size_t>(r)], canonical);
      } catch (...) {
        std::lock_guard lock(mu);
        if (!first) first = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  if (first) std::rethrow_exception(first);
  return results[0];
}

}  // namespace swiftbalancer
