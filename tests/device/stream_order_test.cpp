// Installs against long forwards (issue 19, items 4 and 6), with 44 MB experts (DeepSeek-V3's
// size) so that a copy that does not wait would visibly overwrite a slot mid-read:
//   - a spinning kernel on the engine stream and on a second stream that reads experts (shared
//     experts, two-batch overlap) reads a slot; the install into that slot must wait for both,
//     and reads queued after the fence on either stream must see the new expert whole;
//   - a global-mode graph capture (torch.cuda.graph's mode) on the serving thread must succeed
//     while another thread polls fences and allocates staging (the decision worker's calls).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "device/device_support.h"
#include "device/spin_kernel.h"
#include "swiftbalancer/device/device_expert_store.h"
#include "swiftbalancer/runtime/internal/staging_pool.h"

namespace swiftbalancer::device {
namespace {

using namespace std::chrono_literals;
using swiftbalancer::testing::DeviceBytes;
using swiftbalancer::testing::spin_then_copy;
using swiftbalancer::testing::Stream;

constexpr std::size_t kExpertBytes = 44'000'000;
constexpr double kSpinMs = 50;  // far longer than a 44 MB copy (about 20 us on an H200)

std::size_t bytes_not(const DeviceBytes& d, std::byte want) {
  const std::vector<std::byte> host = d.download();
  return static_cast<std::size_t>(
      std::count_if(host.begin(), host.end(), [&](std::byte b) { return b != want; }));
}

TEST(DeviceExpertStore, InstallsWaitForEveryReaderStream) {
  SKIP_WITHOUT_DEVICE();
  Stream engine, shared_experts;
  DeviceExpertStore store(1, 2, engine.s);
  store.add_reader_stream(shared_experts.s);
  EXPECT_THROW(store.add_reader_stream(engine.s), InputError);
  EXPECT_THROW(store.add_reader_stream(shared_experts.s), InputError);
  DeviceBytes slot0(kExpertBytes), slot1(kExpertBytes);
  ASSERT_EQ(cudaMemset(slot0.ptr, 0x11, kExpertBytes), cudaSuccess);
  ASSERT_EQ(cudaMemset(slot1.ptr, 0x22, kExpertBytes), cudaSuccess);
  store.register_expert(0, 0, {slot0.span()});
  store.register_expert(0, 1, {slot1.span()});
  ASSERT_TRUE(store.ready().ok());
  EXPECT_THROW(store.add_reader_stream(nullptr), InputError);  // after ready()
  store.reserve_staging(1, kExpertBytes);
  auto staging = store.allocate_staging(kExpertBytes);
  EXPECT_EQ(store.late_staging_allocations(), 0);
  // Stage slot 1 first and let it finish: what follows tests the install alone.
  store.stage(0, 1, staging->bytes());
  ASSERT_TRUE(store.wait_fence(store.fence(), Clock::now() + 10s).ok());
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);

  // The forward, still running on both streams, reads slot 0 late.
  DeviceBytes seen_engine(kExpertBytes), seen_shared(kExpertBytes);
  spin_then_copy(slot0.ptr, seen_engine.ptr, kExpertBytes, kSpinMs, engine.s);
  spin_then_copy(slot0.ptr, seen_shared.ptr, kExpertBytes, kSpinMs, shared_experts.s);
  store.install(staging->bytes(), 0, 0);  // expert 0x22 into slot 0
  const std::uint64_t f = store.fence();
  // The next forward, on both streams, after the fence.
  DeviceBytes next_engine(kExpertBytes), next_shared(kExpertBytes);
  ASSERT_EQ(
      cudaMemcpyAsync(next_engine.ptr, slot0.ptr, kExpertBytes, cudaMemcpyDeviceToDevice, engine.s),
      cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(next_shared.ptr, slot0.ptr, kExpertBytes, cudaMemcpyDeviceToDevice,
                            shared_experts.s),
            cudaSuccess);
  EXPECT_FALSE(store.fence_done(f)) << "the install did not wait for the spinning forwards";
  ASSERT_TRUE(store.wait_fence(f, Clock::now() + 10s).ok());
  ASSERT_EQ(cudaStreamSynchronize(engine.s), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(shared_experts.s), cudaSuccess);
  EXPECT_EQ(bytes_not(seen_engine, std::byte{0x11}), 0u) << "engine stream read a mid-overwrite";
  EXPECT_EQ(bytes_not(seen_shared, std::byte{0x11}), 0u) << "reader stream read a mid-overwrite";
  EXPECT_EQ(bytes_not(next_engine, std::byte{0x22}), 0u) << "engine stream read before the fence";
  EXPECT_EQ(bytes_not(next_shared, std::byte{0x22}), 0u) << "reader stream read before the fence";
}

TEST(DeviceExpertStore, GlobalModeCaptureSurvivesTheWorkersCalls) {
  SKIP_WITHOUT_DEVICE();
  int device = 0;
  ASSERT_EQ(cudaGetDevice(&device), cudaSuccess);
  Stream engine, capture;
  DeviceExpertStore store(1, 1, engine.s);
  DeviceBytes slot(kExpertBytes), scratch(1 << 20);
  store.register_expert(0, 0, {slot.span()});
  ASSERT_TRUE(store.ready().ok());
  auto staging = store.allocate_staging(kExpertBytes);  // a late allocation, before the capture
  // A fence that stays pending while the capture runs: an install behind a long forward.
  spin_then_copy(slot.ptr, scratch.ptr, scratch.size, 400, engine.s);
  store.install(staging->bytes(), 0, 0);
  const std::uint64_t f = store.fence();

  std::atomic<bool> stop{false};
  std::atomic<int> polls{0};
  std::thread worker([&] {
    (void)cudaSetDevice(device);
    while (!stop.load()) {
      (void)store.fence_done(f);                      // cudaEventQuery
      (void)store.wait_fence(f, Clock::now() + 1ms);  // polls until its deadline
      {
        // What the decision cycle does before a cycle: staging regions from the arena.
        StagingPool pool(store, 2);
        (void)pool.reserve(kExpertBytes / 4, Clock::now() + 1ms);
      }
      ++polls;
    }
  });
  while (polls.load() == 0) std::this_thread::yield();
  ASSERT_EQ(cudaStreamBeginCapture(capture.s, cudaStreamCaptureModeGlobal), cudaSuccess);
  const int polls_at_begin = polls.load();
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(cudaMemsetAsync(scratch.ptr, i, scratch.size, capture.s), cudaSuccess);
    std::this_thread::sleep_for(1ms);
  }
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(capture.s, &graph);
  const int polls_at_end = polls.load();
  stop.store(true);
  worker.join();
  EXPECT_EQ(ended, cudaSuccess) << cudaGetErrorName(ended)
                                << ": a worker call invalidated the capture";
  EXPECT_GT(polls_at_end, polls_at_begin) << "the worker did not poll during the capture";
  EXPECT_FALSE(store.fence_done(f)) << "the fence was done before the capture ended";
  // Late allocations: the first staging and the worker's first pool (two regions), all before
  // the capture; every later region came back from the arena.
  EXPECT_LE(store.late_staging_allocations(), 3);
  if (ended == cudaSuccess) {
    cudaGraphExec_t exec = nullptr;
    ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, capture.s), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(capture.s), cudaSuccess);
    (void)cudaGraphExecDestroy(exec);
    (void)cudaGraphDestroy(graph);
  }
  EXPECT_TRUE(store.wait_fence(f, Clock::now() + 10s).ok());
}

}  // namespace
}  // namespace swiftbalancer::device
