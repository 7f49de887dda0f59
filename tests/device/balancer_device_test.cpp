// The whole device path on one GPU: four ranks as threads, each with its experts in device
// memory (DeviceExpertStore), counts recorded on the device (DeviceRecorder) and gathered to the
// host, weights moved over the single-GPU transport on the store's side stream. Every step,
// every rank reads each slot on its engine stream (as a forward would) and checks the bytes are
// those of the expert its routing table names: weights first, then the table.
#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "device/device_support.h"
#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/device/device_expert_store.h"
#include "swiftbalancer/device/device_recorder.h"
#include "swiftbalancer/device/single_gpu_transport.h"
#include "swiftbalancer/policy/policy.h"
#include "swiftbalancer/runtime/balancer.h"

namespace swiftbalancer::device {
namespace {

using namespace std::chrono_literals;
using swiftbalancer::testing::DeviceBytes;
using swiftbalancer::testing::Stream;

constexpr int kRanks = 4, kSlots = 3, kExperts = 8, kLayers = 3, kSteps = 60;
const std::size_t kTensorBytes[2] = {8192, 256};  // weights and scales move together

std::byte pattern(int layer, int expert, int tensor, std::size_t i) {
  return static_cast<std::byte>((layer * 37 + expert * 11 + tensor * 101 + i) & 0xFF);
}
std::int32_t expert_load(int layer, int expert) {
  return expert == layer ? 600 : 100;
}

struct RankResult {
  BalancerCounters counters;
  Placement final_placement;
  int bad_slots = 0;
};

TEST(DeviceBalancer, MovesExpertsOnOneGpuWithBytesChecked) {
  SKIP_WITHOUT_DEVICE();
  const Topology topo = Topology::make(kRanks, kSlots);
  const Placement initial = contiguous_placement(topo, kLayers, kExperts);
  std::shared_ptr<const Policy> policy = make_policy("deepseek-global");
  BalancerConfig cfg;
  cfg.mode = BalancerMode::kAsync;
  cfg.interval_steps = 5;
  cfg.window_intervals = 2;
  cfg.decision_poll_steps = 1;
  cfg.transfer_timeout = 5000ms;
  cfg.collective_timeout = 10000ms;
  cfg.worker_timeout = 10000ms;
  cfg.background_worker = false;
  cfg.log = [](LogSeverity, const std::string&) {};
  SingleGpuWorld world(kRanks);
  std::vector<RankResult> results(kRanks);
  std::mutex mu;
  std::exception_ptr first;

  auto rank_main = [&](int rank) {
    check_cuda(cudaSetDevice(0), "cudaSetDevice");
    RankResult& res = results[static_cast<std::size_t>(rank)];
    Stream engine;
    DeviceExpertStore store(kLayers, kSlots, engine.s);
    std::vector<std::unique_ptr<DeviceBytes>> mem;  // [layer][slot][tensor]
    auto slot_tensor = [&](int l, int s, int k) -> DeviceBytes& {
      return *mem[static_cast<std::size_t>((l * kSlots + s) * 2 + k)];
    };
    for (int l = 0; l < kLayers; ++l)
      for (int s = 0; s < kSlots; ++s) {
        const int e = initial.at(l, topo.slot_id(rank, s));
        std::vector<std::span<std::byte>> tensors;
        for (int k = 0; k < 2; ++k) {
          std::vector<std::byte> host(kTensorBytes[k]);
          for (std::size_t i = 0; i < host.size(); ++i) host[i] = pattern(l, e, k, i);
          mem.push_back(std::make_unique<DeviceBytes>(kTensorBytes[k]));
          mem.back()->upload(host.data());
          tensors.push_back(mem.back()->span());
        }
        store.register_expert(l, s, tensors);
      }
    auto transport = world.transport(rank, store.side_stream());
    Balancer b(topo, rank, *transport, policy, initial, store, cfg);
    DeviceRecorder recorder(kLayers, kSlots);
    DeviceBytes d_counts(sizeof(std::int32_t) * kLayers * kSlots);
    std::vector<std::int32_t> counts(kLayers * kSlots);
    std::vector<std::int64_t> interval(kLayers * kSlots);
    std::vector<std::byte> seen;

    for (int step = 1; step <= kSteps; ++step) {
      std::vector<std::int64_t> barrier = {1};
      if (!transport->all_reduce(barrier, ReduceOp::kSum, 10000ms).ok())
        throw std::runtime_error("barrier failed");
      b.before_forward();
      for (int l = 0; l < kLayers; ++l) {
        const RoutingTable& table = b.routing(l);
        const auto reps = replica_counts(table.phy2log(), kExperts);
        for (int s = 0; s < kSlots; ++s) {
          const int e = table.expert_at(topo.slot_id(rank, s));
          // The forward reads the slot on the engine stream.
          for (int k = 0; k < 2; ++k) {
            seen.resize(kTensorBytes[k]);
            check_cuda(cudaMemcpyAsync(seen.data(), slot_tensor(l, s, k).ptr, seen.size(),
                                       cudaMemcpyDeviceToHost, engine.s),
                       "forward read");
            check_cuda(cudaStreamSynchronize(engine.s), "forward read");
            for (std::size_t i = 0; i < seen.size(); ++i)
              if (seen[i] != pattern(l, e, k, i)) {
                ++res.bad_slots;
                break;
              }
          }
          counts[l * kSlots + s] = expert_load(l, e) / reps[e];
        }
      }
      // The dispatcher's counts, recorded on the device, gathered and handed to the balancer.
      check_cuda(cudaMemcpyAsync(d_counts.ptr, counts.data(), d_counts.size, cudaMemcpyHostToDevice,
                                 engine.s),
                 "counts upload");
      for (int l = 0; l < kLayers; ++l)
        recorder.add_counts(l, d_counts.as<std::int32_t>() + l * kSlots, engine.s);
      if (!recorder.start_gather(engine.s).ok() || !recorder.wait_gather(Clock::now() + 10s).ok())
        throw std::runtime_error("gather failed");
      recorder.take_interval(interval);
      for (int l = 0; l < kLayers; ++l)
        b.record(l, std::span<const std::int64_t>(interval).subspan(l * kSlots, kSlots));
      b.after_forward();
    }
    check_cuda(cudaStreamSynchronize(engine.s), "engine stream");
    res.counters = b.counters();
    res.final_placement = b.placement();
  };

  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r)
    threads.emplace_back([&, r] {
      try {
        rank_main(r);
      } catch (...) {
        std::lock_guard lock(mu);
        if (!first) first = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  if (first) std::rethrow_exception(first);

  for (const RankResult& r : results) {
    EXPECT_EQ(r.bad_slots, 0);
    EXPECT_EQ(r.counters.errors, 0) << r.counters.last_error;
    EXPECT_GE(r.counters.rebalances, 1);
    EXPECT_GT(r.counters.bytes_sent + r.counters.bytes_received, 0);
    EXPECT_EQ(r.final_placement, results[0].final_placement);
  }
  EXPECT_NE(results[0].final_placement, initial);
}

}  // namespace
}  // namespace swiftbalancer::device
