#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <numeric>
#include <thread>
#include <vector>

#include "swiftbalancer/transport/inprocess_transport.h"
#include "transport/rank_threads.h"

namespace swiftbalancer {
namespace {

using testing::run_ranks;
using namespace std::chrono_literals;

std::vector<std::byte> bytes_of(int value, std::size_t n) {
  std::vector<std::byte> b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::byte>((value * 31 + i) & 0xFF);
  return b;
}

TEST(InProcessTransport, AllGatherPlacesEachRanksValues) {
  run_ranks(4, [](int rank, Transport& t) {
    EXPECT_EQ(t.size(), 4);
    EXPECT_EQ(t.rank(), rank);
    std::vector<std::int64_t> mine = {rank * 10, rank * 10 + 1};
    std::vector<std::int64_t> all(8, -1);
    ASSERT_TRUE(t.all_gather(mine, all, 2000ms).ok());
    EXPECT_EQ(all, (std::vector<std::int64_t>{0, 1, 10, 11, 20, 21, 30, 31}));
  });
}

TEST(InProcessTransport, AllReduceMinMaxSum) {
  run_ranks(3, [](int rank, Transport& t) {
    for (int round = 0; round < 50; ++round) {
      std::vector<std::int64_t> v = {rank + round, -rank, 7};
      ASSERT_TRUE(t.all_reduce(v, ReduceOp::kMin, 2000ms).ok());
      EXPECT_EQ(v, (std::vector<std::int64_t>{round, -2, 7}));
      v = {rank, -rank};
      ASSERT_TRUE(t.all_reduce(v, ReduceOp::kMax, 2000ms).ok());
      EXPECT_EQ(v, (std::vector<std::int64_t>{2, 0}));
      v = {rank, 1};
      ASSERT_TRUE(t.all_reduce(v, ReduceOp::kSum, 2000ms).ok());
      EXPECT_EQ(v, (std::vector<std::int64_t>{3, 3}));
    }
  });
}

TEST(InProcessTransport, MismatchedCollectiveSizesFailOnEveryRank) {
  run_ranks(2, [](int rank, Transport& t) {
    std::vector<std::int64_t> v(static_cast<std::size_t>(rank + 1), 1);
    const Status s = t.all_reduce(v, ReduceOp::kSum, 2000ms);
    EXPECT_EQ(s.code(), StatusCode::kTransportError) << s.to_string();
    std::vector<std::int64_t> w = {rank};
    ASSERT_TRUE(t.all_reduce(w, ReduceOp::kSum, 2000ms).ok());  // the next round is fine
    EXPECT_EQ(w[0], 1);
  });
}

TEST(InProcessTransport, RingExchangeWithSelfAndFifoOrder) {
  const int n = 4;
  run_ranks(n, [&](int rank, Transport& t) {
    const int next = (rank + 1) % n, prev = (rank + n - 1) % n;
    auto a = bytes_of(rank, 1000), b = bytes_of(rank + 100, 1000), self = bytes_of(rank + 7, 64);
    std::vector<std::byte> ra(1000), rb(1000), rself(64);
    // Two messages with one tag to one peer arrive in posting order.
    std::vector<P2POp> ops = {P2POp::recv(prev, 5, ra),   P2POp::recv(prev, 5, rb),
                              P2POp::send(next, 5, a),    P2POp::send(next, 5, b),
                              P2POp::send(rank, 9, self), P2POp::recv(rank, 9, rself)};
    auto batch = t.post(ops);
    ASSERT_TRUE(batch->wait(Clock::now() + 2s).ok());
    EXPECT_EQ(batch->poll(), TransferBatch::State::kCompleted);
    EXPECT_EQ(ra, bytes_of(prev, 1000));
    EXPECT_EQ(rb, bytes_of(prev + 100, 1000));
    EXPECT_EQ(rself, self);
  });
}

TEST(InProcessTransport, ReceivePostedAfterSendStillMatches) {
  for (bool bulk : {false, true}) {
    run_ranks(2, [bulk](int rank, Transport& t) {
      std::vector<std::int64_t> dummy(1);
      if (rank == 0) {
        auto data = bytes_of(3, 4096);
        std::vector<P2POp> ops = {P2POp::send(1, 1, data, bulk)};
        auto b = t.post(ops);
        // Not copied yet: a send completes when its receive has the data.
        EXPECT_EQ(b->poll(), TransferBatch::State::kPending);
        ASSERT_TRUE(t.all_reduce(dummy, ReduceOp::kSum, 2000ms).ok());
        ASSERT_TRUE(b->wait(Clock::now() + 2s).ok());
      } else {
        ASSERT_TRUE(t.all_reduce(dummy, ReduceOp::kSum, 2000ms).ok());  // the send is posted
        std::vector<std::byte> got(4096);
        std::vector<P2POp> ops = {P2POp::recv(0, 1, got, bulk)};
        auto b = t.post(ops);
        ASSERT_TRUE(b->wait(Clock::now() + 2s).ok());
        EXPECT_EQ(got, bytes_of(3, 4096));
      }
    });
  }
}

TEST(InProcessTransport, UnansweredSendTimesOutAndIsWithdrawn) {
  run_ranks(2, [](int rank, Transport& t) {
    std::vector<std::int64_t> sync(1);
    if (rank == 0) {
      auto data = bytes_of(5, 64);
      std::vector<P2POp> ops = {P2POp::send(1, 4, data, true)};
      EXPECT_EQ(t.post(ops)->wait(Clock::now() + 20ms).code(), StatusCode::kTimeout);
      ASSERT_TRUE(t.all_reduce(sync, ReduceOp::kSum, 2000ms).ok());
    } else {
      ASSERT_TRUE(t.all_reduce(sync, ReduceOp::kSum, 2000ms).ok());
      // The withdrawn send never arrives.
      std::vector<std::byte> got(64);
      std::vector<P2POp> ops = {P2POp::recv(0, 4, got, true)};
      EXPECT_EQ(t.post(ops)->wait(Clock::now() + 20ms).code(), StatusCode::kTimeout);
    }
  });
}

TEST(InProcessTransport, SizeMismatchIsATransportError) {
  run_ranks(2, [](int rank, Transport& t) {
    std::vector<std::byte> buf(rank == 0 ? 10 : 12);
    std::vector<P2POp> ops = {rank == 0 ? P2POp::send(1, 3, buf) : P2POp::recv(0, 3, buf)};
    auto b = t.post(ops);
    const Status s = b->wait(Clock::now() + 2s);
    if (rank == 1) {
      EXPECT_EQ(s.code(), StatusCode::kTransportError) << s.to_string();
    }
  });
}

TEST(InProcessTransport, TimedOutReceiveAbsorbsTheLateMessage) {
  run_ranks(2, [](int rank, Transport& t) {
    std::vector<std::int64_t> sync(1);
    if (rank == 1) {
      std::vector<std::byte> got(16, std::byte{0});
      std::vector<P2POp> ops = {P2POp::recv(0, 2, got)};
      auto b = t.post(ops);
      const auto t0 = Clock::now();
      const Status s = b->wait(t0 + 30ms);
      EXPECT_EQ(s.code(), StatusCode::kTimeout);
      EXPECT_GE(Clock::now() - t0, 30ms);
      ASSERT_TRUE(t.all_reduce(sync, ReduceOp::kSum, 2000ms).ok());  // rank 0 sends now
      ASSERT_TRUE(t.all_reduce(sync, ReduceOp::kSum, 2000ms).ok());  // both sends done
      // The late message was dropped, never written into `got`; the next one is received.
      EXPECT_EQ(got, std::vector<std::byte>(16, std::byte{0}));
      std::vector<std::byte> next(16);
      std::vector<P2POp> ops2 = {P2POp::recv(0, 2, next)};
      ASSERT_TRUE(t.post(ops2)->wait(Clock::now() + 2s).ok());
      EXPECT_EQ(next, bytes_of(2, 16));
    } else {
      ASSERT_TRUE(t.all_reduce(sync, ReduceOp::kSum, 2000ms).ok());
      auto late = bytes_of(1, 16), second = bytes_of(2, 16);
      std::vector<P2POp> ops = {P2POp::send(1, 2, late), P2POp::send(1, 2, second)};
      auto b = t.post(ops);
      ASSERT_TRUE(t.all_reduce(sync, ReduceOp::kSum, 2000ms).ok());
      ASSERT_TRUE(b->wait(Clock::now() + 2s).ok());  // `late` was dropped, `second` received
    }
  });
}

TEST(InProcessTransport, LateRankFailsTheAbandonedCollectiveEverywhere) {
  std::atomic<int> failures{0}, gave_up{0};
  run_ranks(3, [&](int rank, Transport& t) {
    std::vector<std::int64_t> v = {1};
    // A peer that stops answering: rank 2 arrives only after both others have timed out, an
    // order fixed by the counter (a sleep would race the 40 ms timeout against the scheduler).
    if (rank == 2) {
      const auto give_up = Clock::now() + 60s;
      while (gave_up.load() < 2 && Clock::now() < give_up) std::this_thread::sleep_for(1ms);
      ASSERT_EQ(gave_up.load(), 2);
    }
    const Status s = t.all_reduce(v, ReduceOp::kSum, 40ms);
    if (rank != 2) ++gave_up;
    if (!s.ok()) {
      EXPECT_EQ(s.code(), StatusCode::kTimeout);
      ++failures;
    }
    // Every rank agrees the round failed, and the next one works again.
    std::vector<std::int64_t> w = {1};
    ASSERT_TRUE(t.all_reduce(w, ReduceOp::kSum, 2000ms).ok());
    EXPECT_EQ(w[0], 3);
  });
  EXPECT_EQ(failures.load(), 3);
}

TEST(InProcessTransport, ManyRoundsOfMixedTraffic) {
  const int n = 4;
  run_ranks(n, [&](int rank, Transport& t) {
    for (int round = 0; round < 200; ++round) {
      std::vector<std::vector<std::byte>> out, in(n, std::vector<std::byte>(64));
      std::vector<P2POp> ops;
      for (int p = 0; p < n; ++p) out.push_back(bytes_of(rank * 1000 + round + p, 64));
      const bool bulk = round % 2 == 1;
      for (int p = 0; p < n; ++p) ops.push_back(P2POp::recv(p, round % 7, in[p], bulk));
      for (int p = 0; p < n; ++p) ops.push_back(P2POp::send(p, round % 7, out[p], bulk));
      auto b = t.post(ops);
      ASSERT_TRUE(b->wait(Clock::now() + 2s).ok());
      for (int p = 0; p < n; ++p) ASSERT_EQ(in[p], bytes_of(p * 1000 + round + rank, 64));
      std::vector<std::int64_t> all(n);
      std::vector<std::int64_t> mine = {round};
      ASSERT_TRUE(t.all_gather(mine, all, 2000ms).ok());
      for (auto v : all) ASSERT_EQ(v, round);
    }
  });
}

TEST(InProcessTransport, RejectsBadRanksAndTags) {
  InProcessWorld world(2);
  EXPECT_THROW(world.transport(2), InputError);
  EXPECT_THROW(InProcessWorld(0), InputError);
  auto t = world.transport(0);
  std::vector<std::byte> b(4);
  // A bad operation fails its batch (a failed post is a failed batch, not an exception).
  const auto expect_failed = [&](std::vector<P2POp> ops, const std::string& why) {
    auto batch = t->post(ops);
    EXPECT_EQ(batch->poll(), TransferBatch::State::kFailed);
    const Status s = batch->wait(Clock::now());
    EXPECT_EQ(s.code(), StatusCode::kInvalidInput);
    EXPECT_NE(s.message().find(why), std::string::npos) << s.message();
  };
  expect_failed({P2POp::send(5, 0, b)}, "peer 5");
  expect_failed({P2POp::send(1, Transport::kMaxTag, b)}, "tag");
  // The in-process transport moves host memory only: device buffers are refused, untouched.
  EXPECT_TRUE(t->can_move(MemoryKind::kHost));
  EXPECT_FALSE(t->can_move(MemoryKind::kDevice));
  expect_failed({P2POp::recv(1, 0, b, true, MemoryKind::kDevice)}, "cannot move device memory");
}

}  // namespace
}  // namespace swiftbalancer
