// `swiftbalancer demo --device cuda --transport mpi` under `mpirun -np 2`: one rank per process,
// one GPU per rank, NCCL for the weights. What it must do depends on the machine:
//   - no CUDA device path in the build, or no GPU: exit 2 with the one-line reason, printed once
//     (by rank 0; rank 1 leaves with the same code), nothing served, and never a hang;
//   - one GPU: two ranks cannot share it under NCCL: exit 2 naming the counts, before any work;
//   - two or more GPUs: async and sync serve with 0 mismatched token outputs.
// Skips when the build has no MPI transport or mpirun is absent (SWIFTBALANCER_MPIEXEC).
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <string>

#include "support/cli.h"

namespace swiftbalancer {
namespace {

using testing::run_shell;

// GPUs the driver exposes on this machine (/dev/nvidia0, /dev/nvidia1, ...).
int gpu_nodes() {
  int n = 0;
  const std::regex gpu("nvidia[0-9]+");
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/dev", ec))
    if (std::regex_match(e.path().filename().string(), gpu)) ++n;
  return n;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(DemoCudaMpiCli, TwoProcessesServeOnTwoGpusOrAllExitSayingWhy) {
  if (!testing::cli_built()) GTEST_SKIP() << "CLI not built";
  const std::string mpiexec = SWIFTBALANCER_MPIEXEC;
  if (mpiexec.empty() || !std::filesystem::exists(mpiexec))
    GTEST_SKIP() << "no MPI transport in this build, or mpirun is absent";
  // `timeout` turns a hang into exit 124 (the contract is that it never hangs). OpenMPI's own
  // start-up allocations are never freed; LeakSanitizer (ASan builds) would change the exit code.
  const auto r = run_shell("ASAN_OPTIONS=detect_leaks=0 timeout 240 '" + mpiexec +
                           "' --oversubscribe --allow-run-as-root -np 2 " + testing::cli_path() +
                           " demo --device cuda --transport mpi --mode async,sync --steps 60 "
                           "--interval 20 --tokens 32 --quiet");
  ASSERT_NE(r.code, 124) << "hung: " << r.out;
  const int gpus = gpu_nodes();
  if (!SWIFTBALANCER_BUILT_WITH_CUDA || gpus < 2) {
    EXPECT_EQ(r.code, 2) << r.out;
    const std::string why =
        !SWIFTBALANCER_BUILT_WITH_CUDA ? "error: --device cuda: this build has no CUDA device path"
        : gpus == 0                    ? "error: --device cuda: no CUDA device"
                    : "error: --device cuda: ranks 0 and 1 would both serve on CUDA "
                      "device 0: 2 processes on their node, 1 CUDA device(s)";
    EXPECT_EQ(count(r.out, why), 1u) << "rank 0 says why, once: " << r.out;
    EXPECT_EQ(count(r.out, "error: "), 1u) << "the other rank stays quiet: " << r.out;
    EXPECT_EQ(r.out.find("mode async"), std::string::npos) << "nothing may run: " << r.out;
  } else {
    EXPECT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("mode async  60 steps"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("mode sync   60 steps"), std::string::npos) << r.out;
    EXPECT_EQ(count(r.out, " 0 mismatches"), 2u) << r.out;
  }
}

}  // namespace
}  // namespace swiftbalancer
