// NcclTransport on one GPU (issue 19, items 3, 8, 10, 11): a one-rank communicator, bootstrapped
// (with its warm-up) over an in-process host transport; a 44 MB send/receive to itself, byte
// for byte; then a receive nobody sends to: the wait ends at its deadline in a bounded abort,
// the batch stays failed (its event completes once NCCL's kernels exit, which must not read as
// done), later posts fail at once and cancel() says the buffers must be kept. GPU tests: they
// skip without a device.
#include "swiftbalancer/device/nccl_transport.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "device/device_support.h"
#include "swiftbalancer/transport/inprocess_transport.h"

namespace swiftbalancer::device {
namespace {

using namespace std::chrono_literals;
using swiftbalancer::testing::DeviceBytes;
using swiftbalancer::testing::Stream;

TEST(NcclTransport, OneRankMovesFortyFourMegabytesThenAbortsBounded) {
  SKIP_WITHOUT_DEVICE();
  InProcessWorld world(1);
  auto host = world.transport(0);
  Stream stream;
  const auto t0 = Clock::now();
  auto nccl = NcclTransport::bootstrap(*host, stream.s, Millis(60000));
  std::printf("nccl bootstrap with warm-up: %.1f ms\n",
              std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  const std::size_t n = 44u << 20;
  DeviceBytes src(n), dst(n);
  std::vector<std::byte> bytes(n);
  for (std::size_t i = 0; i < n; ++i) bytes[i] = static_cast<std::byte>((i * 131 + 7) & 0xFF);
  src.upload(bytes.data());
  {
    const P2POp ops[2] = {P2POp::send(0, 1, src.span(), true, MemoryKind::kDevice),
                          P2POp::recv(0, 1, dst.span(), true, MemoryKind::kDevice)};
    auto batch = nccl->post(ops);
    ASSERT_TRUE(batch->wait(Clock::now() + 10s).ok());
    EXPECT_EQ(dst.download(), bytes);
  }
  // A receive with no send: the deadline aborts the communicator, bounded.
  DeviceBytes lone(1024);
  const P2POp recv[1] = {P2POp::recv(0, 2, lone.span(), true, MemoryKind::kDevice)};
  auto batch = nccl->post(recv);
  const auto w0 = Clock::now();
  const Status s = batch->wait(Clock::now() + 200ms);
  const double abort_ms = std::chrono::duration<double, std::milli>(Clock::now() - w0).count();
  std::printf("unmatched receive: %s after %.1f ms\n", s.to_string().c_str(), abort_ms);
  EXPECT_EQ(s.code(), StatusCode::kTimeout);
  EXPECT_LT(abort_ms, 200 + 2000 + 500);  // the deadline, then the abort's bound
  EXPECT_TRUE(nccl->broken());
  // NCCL's kernels exit on abort and the event completes: the batch must still be failed.
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(batch->poll(), TransferBatch::State::kFailed);
  EXPECT_FALSE(batch->cancel().ok());  // the mover parks the staging
  auto later = nccl->post(recv);
  EXPECT_EQ(later->poll(), TransferBatch::State::kFailed);
  // Collectives still go over the host transport.
  std::vector<std::int64_t> v = {3};
  EXPECT_TRUE(nccl->all_reduce(v, ReduceOp::kMin, Millis(1000)).ok());
}

}  // namespace
}  // namespace swiftbalancer::device
