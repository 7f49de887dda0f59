// `swiftbalancer bench`: says "skipped" and exits 0 without traces; prints the policy table and
// the swift budget curve with them. Skips when the CLI has not been built.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <sstream>
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
                        "budget", "unlimited", "makespan/bound", "16 ranks x 17 slots",
                        "judged on the future", "future - window"})
    EXPECT_NE(out.find(s), std::string::npos) << s << "\n" << out;
  // The future table: every placement was decided on the window, so it meets the future no
  // better than it met the window, up to sampling noise, and a rebalance beats the stale one.
  const auto at = out.find("judged on the future");
  ASSERT_NE(at, std::string::npos);
  std::istringstream rows(out.substr(at));
  std::string line;
  std::getline(rows, line);  // title
  std::getline(rows, line);  // header
  std::getline(rows, line);  // stale
  double stale_w = 0, stale_f = 0;
  ASSERT_EQ(std::sscanf(line.c_str(), "stale (no rebalance) %lf %lf", &stale_w, &stale_f), 2)
      << line;
  std::getline(rows, line);  // deepseek-global
  double w = 0, f = 0;
  ASSERT_EQ(std::sscanf(line.c_str(), "deepseek-global %lf %lf", &w, &f), 2) << line;
  EXPECT_LT(f, stale_f);
  EXPECT_GE(f, w - 0.002);
  const CliRun bad = run_cli(std::string("bench --traces ") + SWIFTBALANCER_TRACES_DIR +
                             " --from no_such_workload --repeats 1");
  EXPECT_EQ(bad.code, 2) << bad.out;
}

}  // namespace
