// `demo --device cuda --transport mpi`'s device choice (demo/cuda/demo_cuda.h): which device a
// process picks, and the check that no two ranks of the NCCL communicator share one. The check
// needs no GPU (ranks as threads over the in-process transport, devices described by hand).
#include <gtest/gtest.h>

#include <mutex>
#include <string>
#include <vector>

#include "device/device_support.h"
#include "swiftbalancer/demo/cuda/demo_cuda.h"
#include "transport/rank_threads.h"

namespace swiftbalancer {
namespace {

using demo_cuda::ProcessDevice;

// Rank r's device on a node of `per_node` processes that sees `visible` devices, picked the way
// pick_process_device does (local rank % visible); the UUID stands for (node, device).
ProcessDevice described(int r, int per_node, int visible) {
  ProcessDevice d;
  d.local_rank = r % per_node;
  d.local_size = per_node;
  d.visible = visible;
  d.device = d.local_rank % visible;
  d.uuid = {r / per_node, d.device};
  return d;
}

// The message each rank's check threw ("" when none).
std::vector<std::string> check_all(int ranks, int per_node, int visible) {
  std::vector<std::string> why(static_cast<std::size_t>(ranks));
  testing::run_ranks(ranks, [&](int r, Transport& t) {
    try {
      demo_cuda::check_distinct_devices(described(r, per_node, visible), t, Millis(5000));
    } catch (const InputError& e) {
      why[static_cast<std::size_t>(r)] = e.what();
    }
  });
  return why;
}

TEST(ProcessDevice, DistinctDevicesPass) {
  for (const std::string& w : check_all(4, 4, 4)) EXPECT_EQ(w, "");
  // Two nodes of two GPUs each: device 0 and 1 on each node, four different GPUs.
  for (const std::string& w : check_all(4, 2, 2)) EXPECT_EQ(w, "");
}

TEST(ProcessDevice, TwoRanksOnOneDeviceAreRefusedOnEveryRankWithTheCounts) {
  // Four processes on a node with two GPUs: ranks 0 and 2 land on device 0.
  const auto why = check_all(4, 4, 2);
  for (const std::string& w : why) EXPECT_EQ(w, why[0]) << "the same verdict on every rank";
  EXPECT_NE(why[0].find("ranks 0 and 2 would both serve on CUDA device 0"), std::string::npos)
      << why[0];
  EXPECT_NE(why[0].find("4 processes on their node, 2 CUDA device(s) visible to each"),
            std::string::npos)
      << why[0];
  EXPECT_NE(why[0].find("NCCL cannot put two ranks of one communicator on one device"),
            std::string::npos)
      << why[0];
}

TEST(ProcessDevice, PicksTheLocalRanksDeviceAndNamesIt) {
  SKIP_WITHOUT_DEVICE();
  const ProcessDevice d = demo_cuda::pick_process_device(0, 1);
  EXPECT_GE(d.visible, 1);
  EXPECT_EQ(d.device, d.local_rank % d.visible);
  int current = -1;
  ASSERT_EQ(cudaGetDevice(&current), cudaSuccess);
  EXPECT_EQ(current, d.device);
  EXPECT_TRUE(d.uuid[0] != 0 || d.uuid[1] != 0) << "a device has a UUID";
}

}  // namespace
}  // namespace swiftbalancer
