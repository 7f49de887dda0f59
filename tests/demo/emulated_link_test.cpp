// EmulatedLinkTransport: bulk transfers take bytes / bandwidth (serialised per rank and
// direction), everything else passes through; a deadline before that time is a timeout.
#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "swiftbalancer/demo/emulated_link.h"
#include "transport/rank_threads.h"

namespace swiftbalancer {
namespace {

using testing::run_ranks;
using namespace std::chrono_literals;

std::vector<std::byte> pattern(std::size_t n, int seed) {
  std::vector<std::byte> b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::byte>((seed * 7 + i * 13) & 0xFF);
  return b;
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

TEST(EmulatedLink, BulkTransferTakesBytesOverBandwidth) {
  // 100 kB at 5 MB/s: 20 ms on the sender's egress and on the receiver's ingress.
  run_ranks(2, [](int rank, Transport& base) {
    EmulatedLinkTransport t(base, 5e6);
    EXPECT_EQ(t.rank(), rank);
    EXPECT_EQ(t.size(), 2);
    const auto src = pattern(100000, 3);
    std::vector<std::byte> dst(100000);
    std::vector<std::int64_t> go = {1};
    ASSERT_TRUE(t.all_reduce(go, ReduceOp::kMin, 2000ms).ok());  // collectives pass through
    const auto t0 = Clock::now();
    const P2POp op =
        rank == 0 ? P2POp::send(1, 5, src, /*bulk=*/true) : P2POp::recv(0, 5, dst, /*bulk=*/true);
    auto batch = t.post({&op, 1});
    EXPECT_EQ(batch->poll(), TransferBatch::State::kPending);
    ASSERT_TRUE(batch->wait(Clock::now() + 2000ms).ok());
    EXPECT_GE(ms_since(t0), 20.0);
    EXPECT_EQ(batch->poll(), TransferBatch::State::kCompleted);
    if (rank == 1) {
      EXPECT_EQ(dst, src);
    }
  });
}

TEST(EmulatedLink, BatchesQueueOnTheSameLink) {
  // Two 50 kB sends posted back to back on a 5 MB/s egress: the second finishes after 20 ms.
  run_ranks(2, [](int rank, Transport& base) {
    EmulatedLinkTransport t(base, 5e6);
    const auto src = pattern(50000, 1);
    std::vector<std::byte> a(50000), b(50000);
    const auto t0 = Clock::now();
    if (rank == 0) {
      const P2POp s1 = P2POp::send(1, 1, src, true), s2 = P2POp::send(1, 2, src, true);
      auto b1 = t.post({&s1, 1});
      auto b2 = t.post({&s2, 1});
      ASSERT_TRUE(b1->wait(Clock::now() + 2000ms).ok());
      EXPECT_GE(ms_since(t0), 10.0);
      ASSERT_TRUE(b2->wait(Clock::now() + 2000ms).ok());
      EXPECT_GE(ms_since(t0), 20.0);
    } else {
      const P2POp ops[] = {P2POp::recv(0, 1, a, true), P2POp::recv(0, 2, b, true)};
      auto batch = t.post(ops);  // 100 kB on the ingress: 20 ms
      ASSERT_TRUE(batch->wait(Clock::now() + 2000ms).ok());
      EXPECT_GE(ms_since(t0), 20.0);
      EXPECT_EQ(a, src);
      EXPECT_EQ(b, src);
    }
  });
}

TEST(EmulatedLink, DeadlineBeforeTheLinkIsDoneIsATimeout) {
  // 10 kB at 100 kB/s needs 100 ms; a 20 ms deadline times out although the data is there.
  run_ranks(2, [](int rank, Transport& base) {
    EmulatedLinkTransport t(base, 1e5);
    const auto src = pattern(10000, 2);
    std::vector<std::byte> dst(10000);
    const P2POp op = rank == 0 ? P2POp::send(1, 3, src, true) : P2POp::recv(0, 3, dst, true);
    auto batch = t.post({&op, 1});
    const auto t0 = Clock::now();
    const Status s = batch->wait(t0 + 20ms);
    EXPECT_EQ(s.code(), StatusCode::kTimeout) << s.to_string();
    // No upper bound on the wall time: a loaded machine may return late, never early.
    EXPECT_GE(ms_since(t0), 19.0);
  });
}

TEST(EmulatedLink, SmallMessagesAndSelfTransfersAreNotThrottled) {
  // At 1 B/s a throttled 2 kB message would need 2000 s; a 60 s deadline tells them apart
  // without racing the scheduler.
  run_ranks(2, [](int rank, Transport& base) {
    EmulatedLinkTransport t(base, 1.0);
    const auto src = pattern(2000, 4);
    std::vector<std::byte> dst(2000), self_dst(2000);
    const P2POp ops[] = {
        rank == 0 ? P2POp::send(1, 4, src, /*bulk=*/false) : P2POp::recv(0, 4, dst, false),
        P2POp::send(rank, 6, src, /*bulk=*/true), P2POp::recv(rank, 6, self_dst, true)};
    auto batch = t.post(ops);
    ASSERT_TRUE(batch->wait(Clock::now() + 60s).ok());
    EXPECT_EQ(self_dst, src);
    if (rank == 1) {
      EXPECT_EQ(dst, src);
    }
  });
}

TEST(EmulatedLink, RejectsBadBandwidth) {
  InProcessWorld world(1);
  auto base = world.transport(0);
  EXPECT_THROW(EmulatedLinkTransport(*base, 0.0), InputError);
  EXPECT_THROW(EmulatedLinkTransport(*base, -1.0), InputError);
  EmulatedLinkTransport t(*base, EmulatedLinkTransport::gbps_to_bytes_per_second(8.0));
  EXPECT_DOUBLE_EQ(t.bytes_per_second(), 1e9);
  EXPECT_NE(t.name().find("inprocess"), std::string::npos);
}

}  // namespace
}  // namespace swiftbalancer
