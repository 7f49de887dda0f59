// SingleGpuWorld against the in-process transport: the same random message plans (ranks as
// threads, several tags, self-messages, FIFO per source and tag) deliver the same bytes.
#include "swiftbalancer/device/single_gpu_transport.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "device/device_support.h"
#include "swiftbalancer/core/splitmix.h"
#include "swiftbalancer/transport/inprocess_transport.h"

namespace swiftbalancer::device {
namespace {

using namespace std::chrono_literals;
using swiftbalancer::testing::DeviceBytes;
using swiftbalancer::testing::Stream;

constexpr int kRanks = 4;

struct Message {
  int src, dst, tag;
  std::vector<std::byte> bytes;
};

std::vector<Message> random_plan(std::uint64_t seed) {
  std::uint64_t s = seed;
  std::vector<Message> plan(40);
  for (Message& m : plan) {
    m.src = static_cast<int>(splitmix64_next(s) % kRanks);
    m.dst = static_cast<int>(splitmix64_next(s) % kRanks);
    m.tag = static_cast<int>(splitmix64_next(s) % 3);
    m.bytes.resize(1 + splitmix64_next(s) % 5000);
    for (std::byte& b : m.bytes) b = static_cast<std::byte>(splitmix64_next(s) & 0xFF);
  }
  return plan;
}

void run_threads(const std::function<void(int)>& fn) {
  std::mutex mu;
  std::exception_ptr first;
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r)
    threads.emplace_back([&, r] {
      try {
        fn(r);
      } catch (...) {
        std::lock_guard lock(mu);
        if (!first) first = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  if (first) std::rethrow_exception(first);
}

// Each rank posts one batch, in plan order: its sends and its receives. Returns what every
// receive got, [message index] (empty for messages this rank does not receive).
std::vector<std::vector<std::byte>> run_inprocess(const std::vector<Message>& plan) {
  InProcessWorld world(kRanks);
  std::vector<std::vector<std::byte>> got(plan.size());
  run_threads([&](int rank) {
    auto t = world.transport(rank);
    std::vector<P2POp> ops;
    for (std::size_t i = 0; i < plan.size(); ++i) {
      const Message& m = plan[i];
      if (m.src == rank) ops.push_back(P2POp::send(m.dst, m.tag, m.bytes, true));
      if (m.dst == rank) {
        got[i].resize(m.bytes.size());
        ops.push_back(P2POp::recv(m.src, m.tag, got[i], true));
      }
    }
    auto batch = t->post(ops);
    const Status s = batch->wait(Clock::now() + 20s);
    if (!s.ok()) throw std::runtime_error("in-process: " + s.to_string());
  });
  return got;
}

std::vector<std::vector<std::byte>> run_single_gpu(const std::vector<Message>& plan) {
  SingleGpuWorld world(kRanks);
  std::vector<std::vector<std::byte>> got(plan.size());
  run_threads([&](int rank) {
    check_cuda(cudaSetDevice(0), "cudaSetDevice");
    Stream stream;
    auto t = world.transport(rank, stream.s);
    std::vector<std::unique_ptr<DeviceBytes>> sent(plan.size()), recvd(plan.size());
    std::vector<P2POp> ops;
    for (std::size_t i = 0; i < plan.size(); ++i) {
      const Message& m = plan[i];
      if (m.src == rank) {
        sent[i] = std::make_unique<DeviceBytes>(m.bytes.size());
        sent[i]->upload(m.bytes.data());
        ops.push_back(P2POp::send(m.dst, m.tag, sent[i]->span(), true, MemoryKind::kDevice));
      }
      if (m.dst == rank) {
        recvd[i] = std::make_unique<DeviceBytes>(m.bytes.size());
        ops.push_back(P2POp::recv(m.src, m.tag, recvd[i]->span(), true, MemoryKind::kDevice));
      }
    }
    auto batch = t->post(ops);
    const Status s = batch->wait(Clock::now() + 20s);
    if (!s.ok()) throw std::runtime_error("single-GPU: " + s.to_string());
    for (std::size_t i = 0; i < plan.size(); ++i)
      if (plan[i].dst == rank) got[i] = recvd[i]->download();
  });
  return got;
}

TEST(SingleGpuTransport, MatchesTheInProcessTransportByteForByte) {
  SKIP_WITHOUT_DEVICE();
  for (std::uint64_t seed = 1; seed <= 6; ++seed) {
    const std::vector<Message> plan = random_plan(seed);
    const auto want = run_inprocess(plan);
    const auto got = run_single_gpu(plan);
    for (std::size_t i = 0; i < plan.size(); ++i) {
      ASSERT_EQ(want[i], plan[i].bytes) << "in-process, seed " << seed << " message " << i;
      ASSERT_EQ(got[i], want[i]) << "single-GPU, seed " << seed << " message " << i;
    }
  }
}

TEST(SingleGpuTransport, RefusesHostMemoryAndTimesOutAnUnmatchedReceive) {
  SKIP_WITHOUT_DEVICE();
  SingleGpuWorld world(2);
  Stream stream;
  auto t = world.transport(0, stream.s);
  std::vector<std::byte> host(16);
  auto refused = t->post(std::vector<P2POp>{P2POp::recv(1, 0, host, true)});
  EXPECT_EQ(refused->wait(Clock::now() + 1s).code(), StatusCode::kInvalidInput);
  DeviceBytes d(16);
  auto lonely = t->post(std::vector<P2POp>{P2POp::recv(1, 5, d.span(), true, MemoryKind::kDevice)});
  EXPECT_EQ(lonely->wait(Clock::now() + 20ms).code(), StatusCode::kTimeout);
  EXPECT_TRUE(lonely->cancel().ok());
  // The cancelled receive absorbs the late send; the next receive gets the next message.
  auto peer = world.transport(1, stream.s);
  DeviceBytes a(16), b(16), into(16);
  a.upload(std::vector<std::byte>(16, std::byte{1}).data());
  b.upload(std::vector<std::byte>(16, std::byte{2}).data());
  auto sends =
      peer->post(std::vector<P2POp>{P2POp::send(0, 5, a.span(), true, MemoryKind::kDevice),
                                    P2POp::send(0, 5, b.span(), true, MemoryKind::kDevice)});
  auto recv =
      t->post(std::vector<P2POp>{P2POp::recv(1, 5, into.span(), true, MemoryKind::kDevice)});
  ASSERT_TRUE(recv->wait(Clock::now() + 10s).ok());
  ASSERT_TRUE(sends->wait(Clock::now() + 10s).ok());
  EXPECT_EQ(into.download(), std::vector<std::byte>(16, std::byte{2}));
}

}  // namespace
}  // namespace swiftbalancer::device
