// NcclTransport on one GPU (issue 19, items 3, 8, 10, 11): a one-rank communicator, bootstrapped
// (with its warm-up) over an in-process host transport; a 44 MB send/receive to itself, byte
// for byte; then a receive nobody sends to. On one rank its peer is the rank itself, and NCCL
// refuses a receive from itself without the matching send when the group ends (invalid usage,
// seen on an H200 with NCCL 2.28.3 from the nvidia-nccl wheel): the post fails, named, within
// the communicator's bounded abort (a peer's half would be left unpaired), later posts fail at
// once, and since nothing was queued cancel() frees the buffers. A receive that a peer never
// matches, ended by the deadline's bounded abort, needs two ranks and so two GPUs (NCCL refuses
// two ranks on one). GPU tests: they skip without a device.
#include "swiftbalancer/device/nccl_transport.h"

#include <gtest/gtest.h>
#include <nccl.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "device/device_support.h"
#include "swiftbalancer/transport/inprocess_transport.h"

namespace swiftbalancer::device {
namespace {

using namespace std::chrono_literals;
using swiftbalancer::testing::DeviceBytes;
using swiftbalancer::testing::Stream;

TEST(NcclTransport, OneRankMovesFortyFourMegabytesThenRefusesAnUnmatchedReceive) {
  SKIP_WITHOUT_DEVICE();
  InProcessWorld world(1);
  auto host = world.transport(0);
  Stream stream;
  const auto t0 = Clock::now();
  auto nccl = NcclTransport::bootstrap(*host, stream.s, Millis(60000));
  int version = 0;
  (void)ncclGetVersion(&version);
  std::printf("nccl %d, bootstrap with warm-up: %.1f ms\n", version,
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
  // A receive with no send, on one rank: refused at the group's end, and the communicator
  // aborted in the post.
  DeviceBytes lone(1024);
  const P2POp recv[1] = {P2POp::recv(0, 2, lone.span(), true, MemoryKind::kDevice)};
  const auto w0 = Clock::now();
  auto batch = nccl->post(recv);
  const Status s = batch->wait(Clock::now() + 200ms);
  const double fail_ms = std::chrono::duration<double, std::milli>(Clock::now() - w0).count();
  std::printf("unmatched receive: %s after %.1f ms\n", s.to_string().c_str(), fail_ms);
  EXPECT_EQ(s.code(), StatusCode::kTransportError);
  EXPECT_NE(s.message().find("NCCL post"), std::string::npos) << s.message();
  // Not left to the deadline: the post itself fails, in the time the communicator's abort
  // takes (bounded by 2 s; 0.9 s on an H200).
  EXPECT_LT(fail_ms, 2000.0 + 500.0);
  EXPECT_TRUE(nccl->broken());
  EXPECT_EQ(batch->poll(), TransferBatch::State::kFailed);
  EXPECT_TRUE(batch->cancel().ok());  // nothing was queued: the staging may be freed
  auto later = nccl->post(recv);
  EXPECT_EQ(later->poll(), TransferBatch::State::kFailed);
  // Collectives still go over the host transport.
  std::vector<std::int64_t> v = {3};
  EXPECT_TRUE(nccl->all_reduce(v, ReduceOp::kMin, Millis(1000)).ok());
}

}  // namespace
}  // namespace swiftbalancer::device
