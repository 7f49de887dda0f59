// `swiftbalancer bench`: says "skipped" and exits 0 without traces; prints the policy table and
// the swift budget curve with them. Skips when the CLI has not been built.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>

namespace {

// Runs `cmd`, returns (exit code, stdout).
std::pair<int, std::string> run(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, out};
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(SwiftBenchCli, SkipsWithoutTraces) {
  if (!std::filesystem::exists(SWIFTBALANCER_CLI)) GTEST_SKIP() << "CLI not built";
  const auto [rc, out] = run(std::string(SWIFTBALANCER_CLI) + " bench --traces /nonexistent/dir");
  EXPECT_EQ(rc, 0);
  EXPECT_NE(out.find("skipped"), std::string::npos) << out;
}

TEST(SwiftBenchCli, PrintsTableAndBudgetCurve) {
  if (!std::filesystem::exists(SWIFTBALANCER_CLI)) GTEST_SKIP() << "CLI not built";
  if (!std::filesystem::exists(std::string(SWIFTBALANCER_TRACES_DIR) + "/deepseek_v3r1"))
    GTEST_SKIP() << "shared traces not found";
  const auto [rc, out] =
      run(std::string(SWIFTBALANCER_CLI) + " bench --traces " + SWIFTBALANCER_TRACES_DIR +
          " --ranks 16 --slots 17 --nodes 2 --from prefill_in4096"
          " --to decode_in500out1500 --repeats 1 --budgets 250 -1");
  EXPECT_EQ(rc, 0) << out;
  for (const char* s : {"deepseek-global", "deepseek-hierarchical", "vllm-ascend-swap", "swift",
                        "budget", "unlimited", "makespan/bound", "16 ranks x 17 slots"})
    EXPECT_NE(out.find(s), std::string::npos) << s << "\n" << out;
  const auto [bad_rc, bad_out] =
      run(std::string(SWIFTBALANCER_CLI) + " bench --traces " + SWIFTBALANCER_TRACES_DIR +
          " --from no_such_workload --repeats 1");
  EXPECT_EQ(bad_rc, 2) << bad_out;
}

}  // namespace
