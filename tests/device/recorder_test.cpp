// DeviceRecorder: the recording calls captured in a CUDA graph and replayed give exact counts;
// the gather returns the counts since the previous take; without a device construction fails
// with a DeviceError instead of crashing.
#include "swiftbalancer/device/device_recorder.h"

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "device/device_support.h"

namespace swiftbalancer::device {
namespace {

using namespace std::chrono_literals;
using swiftbalancer::testing::DeviceBytes;
using swiftbalancer::testing::Stream;

constexpr int kLayers = 58, kSlots = 9, kIds = 64 * 8;  // 64 tokens, top-8

std::int32_t count_of(int l, int s) {
  return (l * 7 + s * 3) % 11;
}
// Slot ids from -1 (padding) to kSlots (invalid).
std::int64_t id_of(int l, int i) {
  return (l + i * 5) % (kSlots + 2) - 1;
}

TEST(DeviceRecorder, GraphCaptureReplaysExactCounts) {
  SKIP_WITHOUT_DEVICE();
  std::vector<std::int32_t> counts(kLayers * kSlots);
  std::vector<std::int64_t> ids(static_cast<std::size_t>(kLayers) * kIds);
  std::vector<std::int64_t> want(kLayers * kSlots, 0);
  std::int64_t want_invalid = 0;
  for (int l = 0; l < kLayers; ++l) {
    for (int s = 0; s < kSlots; ++s) {
      counts[l * kSlots + s] = count_of(l, s);
      want[l * kSlots + s] += count_of(l, s);
    }
    for (int i = 0; i < kIds; ++i) {
      const std::int64_t id = id_of(l, i);
      ids[static_cast<std::size_t>(l) * kIds + i] = id;
      if (id >= kSlots) ++want_invalid;
      if (id >= 0 && id < kSlots) ++want[l * kSlots + id];
    }
  }
  DeviceBytes d_counts(counts.size() * sizeof(std::int32_t)), d_ids(ids.size() * 8);
  d_counts.upload(counts.data());
  d_ids.upload(ids.data());
  Stream stream;
  DeviceRecorder rec(kLayers, kSlots);

  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(stream.s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  for (int l = 0; l < kLayers; ++l) {
    rec.add_counts(l, d_counts.as<std::int32_t>() + l * kSlots, stream.s);
    rec.count_ids(l, d_ids.as<std::int64_t>() + static_cast<std::ptrdiff_t>(l) * kIds, kIds,
                  stream.s);
  }
  ASSERT_EQ(cudaStreamEndCapture(stream.s, &graph), cudaSuccess);
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);

  std::vector<std::int64_t> got(kLayers * kSlots);
  for (int replays : {100, 3}) {
    for (int r = 0; r < replays; ++r) ASSERT_EQ(cudaGraphLaunch(exec, stream.s), cudaSuccess);
    ASSERT_TRUE(rec.start_gather(stream.s).ok());
    ASSERT_TRUE(rec.wait_gather(Clock::now() + 10s).ok());
    const std::int64_t invalid = rec.take_interval(got);  // since the previous take
    EXPECT_EQ(invalid, replays * want_invalid);
    for (int i = 0; i < kLayers * kSlots; ++i)
      ASSERT_EQ(got[i], replays * want[i]) << "layer " << i / kSlots << " slot " << i % kSlots;
  }
  (void)cudaGraphExecDestroy(exec);
  (void)cudaGraphDestroy(graph);
}

TEST(DeviceRecorder, StepAddAndInt64Counts) {
  SKIP_WITHOUT_DEVICE();
  const int L = 3, S = 5;
  std::vector<std::int64_t> step(L * S);
  for (int i = 0; i < L * S; ++i) step[i] = (i * 13) % 7 + (std::int64_t{1} << 33);
  DeviceBytes d(step.size() * 8);
  d.upload(step.data());
  Stream stream;
  DeviceRecorder rec(L, S);
  rec.add_step(d.as<std::int64_t>(), stream.s);
  rec.add_counts(1, d.as<std::int64_t>() + S, stream.s);  // layer 1's row once more
  ASSERT_TRUE(rec.start_gather(stream.s).ok());
  EXPECT_EQ(rec.start_gather(stream.s).code(), StatusCode::kInvalidInput);  // not taken yet
  ASSERT_TRUE(rec.wait_gather(Clock::now() + 10s).ok());
  std::vector<std::int64_t> got(L * S);
  EXPECT_EQ(rec.take_interval(got), 0);
  for (int i = 0; i < L * S; ++i) EXPECT_EQ(got[i], step[i] * (i / S == 1 ? 2 : 1)) << i;
  EXPECT_THROW(rec.add_counts(L, d.as<std::int64_t>(), stream.s), InputError);
  EXPECT_THROW(rec.take_interval(std::span<std::int64_t>(got).first(3)), InputError);
}

// Runs on machines without a GPU: the failure is an exception naming CUDA, not a crash.
TEST(DeviceRecorder, WithoutADeviceConstructionThrows) {
  if (device_unavailable_reason().empty()) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_THROW(DeviceRecorder(2, 2), DeviceError);
  EXPECT_THROW(DeviceRecorder(0, 2), InputError);
}

}  // namespace
}  // namespace swiftbalancer::device
