// `swiftbalancer bench`: says "skipped" and exits 0 without traces; prints the policy table and
// the swift budget curve with them. Skips when the CLI has not been built.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "support/cli.h"

namespace {

using swiftbalancer::testing::CliRun;
using swiftbalancer::testing::run_cli;

TEST(SwiftBenchCli, SkipsWithoutTraces) {
  if (!swiftbalancer::testing::cli_built()) GTEST_SKIP() << "CLI not built";
  const CliRun r = run_cli("bench --traces /nonexistent/dir");
  const auto& [rc, out] = r;
  EXPECT_EQ(rc, 0);
  EXPECT_NE(out.find("skipped"), std::string::npos) << out;
}

TEST(SwiftBenchCli, PrintsTableAndBudgetCurve) {
  if (!swiftbalancer::testing::cli_built()) GTEST_SKIP() << "CLI not built";
  if (!std::filesystem::exists(std::string(SWIFTBALANCER_TRACES_DIR) + "/deepseek_v3r1"))
    GTEST_SKIP() << "shared traces not found";
  const CliRun r = run_cli(std::string("bench --traces ") + SWIFTBALANCER_TRACES_DIR +
                           " --ranks 16 --slots 17 --nodes 2 --from prefill_in4096"
                           " --to decode_in500out1500 --repeats 1 --budgets 250 -1");
  const auto& [rc, out] = r;
  EXPECT_EQ(rc, 0) << out;
  for (const char* s : {"deepseek-global", "deepseek-hierarchical", "vllm-ascend-swap", "swift",
                        "budget", "unlimited", "makespan/bound", "16 ranks x 17 slots"})
    EXPECT_NE(out.find(s), std::string::npos) << s << "\n" << out;
  const CliRun bad = run_cli(std::string("bench --traces ") + SWIFTBALANCER_TRACES_DIR +
                             " --from no_such_workload --repeats 1");
  EXPECT_EQ(bad.code, 2) << bad.out;
}

}  // namespace
