// `swiftbalancer demo --device cuda`. With a GPU (a CUDA build on a machine with /dev/nvidia0),
// async and sync serve with 0 mismatched outputs; otherwise it exits 2 with a message naming
// what is missing (the build's device path, or the device). Bad --device values are exit 2.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "support/cli.h"

namespace swiftbalancer {
namespace {

using testing::run_cli;

TEST(DemoDeviceCli, CudaRunsOnAGpuOrSaysWhatIsMissing) {
  if (!testing::cli_built()) GTEST_SKIP() << "CLI not built";
  const auto r =
      run_cli("demo --device cuda --mode async,sync --steps 120 --interval 20 --tokens 32 --quiet");
  if (!SWIFTBALANCER_BUILT_WITH_CUDA) {
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("--device cuda: this build has no CUDA device path"), std::string::npos)
        << r.out;
  } else if (!std::filesystem::exists("/dev/nvidia0")) {
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("--device cuda: no CUDA device"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("mode async"), std::string::npos) << "nothing may run: " << r.out;
  } else {
    EXPECT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("mode async  120 steps"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("mode sync   120 steps"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("error: "), std::string::npos) << r.out;
  }
}

// (--device cuda --transport mpi, under mpirun: demo_cuda_mpi_cli_test.cpp.)
TEST(DemoDeviceCli, RejectsUnknownDevices) {
  if (!testing::cli_built()) GTEST_SKIP() << "CLI not built";
  const auto tpu = run_cli("demo --device tpu --steps 5");
  EXPECT_EQ(tpu.code, 2) << tpu.out;
  EXPECT_NE(tpu.out.find("'tpu'"), std::string::npos) << tpu.out;
  const auto tpu_mpi = run_cli("demo --device tpu --transport mpi --steps 5");
  EXPECT_EQ(tpu_mpi.code, 2) << tpu_mpi.out;
  EXPECT_NE(tpu_mpi.out.find("'tpu'"), std::string::npos) << "before MPI starts: " << tpu_mpi.out;
  EXPECT_EQ(run_cli("demo --device cpu --steps 20 --tokens 8 --quiet").code, 0);
}

}  // namespace
}  // namespace swiftbalancer
