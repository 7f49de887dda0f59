// Issue 12's adversarial cases end to end: every subcommand refuses FIFOs without hanging,
// sizes that overflow int, unwritable outputs (before any work, leaving no file), bad numbers,
// and a file-size limit (exit 1, no file). Each case names the file or option.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "io/io_test_util.h"
#include "support/cli.h"

namespace swiftbalancer {
namespace {

using testing::CliRun;
using testing::run_cli;
using testing::shell_quote;
using testing_io::ScratchDir;

std::vector<std::string> listing(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

void expect_exit(const std::string& args, int code, const std::string& message) {
  const CliRun r = run_cli(args);
  EXPECT_EQ(r.code, code) << args << "\n" << r.out;
  EXPECT_CONTAINS(r.out, message) << args;
}

// Without the check every command below blocks forever in open().
TEST(HardeningCli, FifoInputsFailFastNamingTheOption) {
  ScratchDir d;
  const std::string f = d.path("x.json");
  ASSERT_EQ(::mkfifo(f.c_str(), 0600), 0);
  const std::string csv = d.write("l.csv", "layer,expert,tokens\n0,0,1\n0,1,2\n0,2,3\n0,3,4\n");
  const std::string fifo = ": is a FIFO (named pipe), not a regular file";
  expect_exit("plan --load " + shell_quote(f) + " --ranks 2 --slots-per-rank 2 --out " +
                  shell_quote(d.path("o")),
              2, "--load " + f + fifo);
  expect_exit("plan --load " + shell_quote(csv) + " --current " + shell_quote(f) +
                  " --ranks 2 --slots-per-rank 2 --out " + shell_quote(d.path("o")),
              2, "--current " + f + fifo);
  expect_exit("replay --trace " + shell_quote(f), 2, "--trace " + f + fifo);
  expect_exit(
      "gen-trace --steps 5 --base " + shell_quote(f) + " -o " + shell_quote(d.path("t.npy")), 2,
      "--base " + f + fifo);
  expect_exit("demo --steps 2 --trace " + shell_quote(f), 2, "--trace " + f + fifo);
}

TEST(HardeningCli, TopologySizesThatOverflowNameTheOptions) {
  expect_exit("plan --ranks 16777217 --slots-per-rank 256", 2,
              "--ranks, --slots-per-rank, --ranks-per-node: ranks (16777217) exceed the limit");
  expect_exit("plan --ranks 16385 --slots-per-rank 256 --ranks-per-node 1", 2,
              "ranks x slots per rank (16385 x 256 = 4194560 slots) exceed");
  expect_exit("replay --ranks 268435457 --slots 16", 2, "ranks (268435457) exceed the limit");
  expect_exit("replay --ranks 2000000", 2, "--ranks, --slots-per-rank, --ranks-per-node");
}

// Outputs are checked before any work: nothing is written when one of them cannot be.
TEST(HardeningCli, BadOutputLeavesNoOtherFile) {
  ScratchDir d;
  expect_exit("plan --out " + shell_quote(d.path("o.json")) + " --report /nonexistent/r.json", 2,
              "--report /nonexistent/r.json: cannot write here: folder /nonexistent does not "
              "exist");
  expect_exit(
      "replay --steps 30 --json " + shell_quote(d.path("j.json")) + " --plot /nonexistent/x.svg", 2,
      "--plot /nonexistent/x.svg");
  expect_exit("gen-trace --steps 5 -o /nonexistent/t.npy", 2, "--out /nonexistent/t.npy");
  expect_exit("demo --steps 2 --report /nonexistent/d.json", 2, "--report /nonexistent/d.json");
  expect_exit("plan --out " + shell_quote(d.path("same.json")) + " --report " +
                  shell_quote(d.path("same.json")),
              2, "the same file as --out");
  EXPECT_TRUE(listing(d.path("")).empty());
}

// A write that fails at run time (here a file-size limit) exits 1 and leaves no file.
TEST(HardeningCli, FileSizeLimitExitsOneWithNoFile) {
  ScratchDir d;
  const std::string cli = SWIFTBALANCER_CLI;
  for (const std::string& cmd : {"gen-trace -q --steps 300 -o " + shell_quote(d.path("t.npy")),
                                 "plan --out " + shell_quote(d.path("p.json"))}) {
    const std::string sh = "sh -c \"ulimit -f 8; exec '" + cli + "' " + cmd + "\" 2>&1";
    FILE* p = ::popen(sh.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[512];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int st = ::pclose(p);
    ASSERT_TRUE(WIFEXITED(st)) << cmd << ": killed (SIGXFSZ not ignored?)\n" << out;
    EXPECT_EQ(WEXITSTATUS(st), 1) << cmd << "\n" << out;
    EXPECT_CONTAINS(out, "write failed (File too large)");
  }
  EXPECT_TRUE(listing(d.path("")).empty());
}

TEST(HardeningCli, NumericOptionsAreFiniteAndRanged) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"replay --steps 20 --decay nan", "--decay: 'nan' is not a finite number"},
      {"replay --steps 20 --recover-tol nan", "--recover-tol: 'nan' is not a finite number"},
      {"replay --steps 20 --policy-ms nan", "--policy-ms must be 'auto' or a finite"},
      {"replay --steps 20 --policy-steps -5", "--policy-steps: Value -5 not in range"},
      {"replay --steps 20 --inter-gbps 0", "--inter-gbps: '0' is outside [1e-06, 1e+09]"},
      {"replay --steps 20 --token-us inf", "--token-us: 'inf' is not a finite number"},
      {"replay --steps 0", "--steps: Value 0 not in range"},
      {"plan --policy swift --threshold nan", "--threshold: 'nan' is not a finite number"},
      {"plan --target nan", "--target: 'nan' is not a finite number"},
      {"plan --target -5", "--target: '-5' is outside [0, inf]"},
      {"plan --target inf", "--target: 'inf' is not a finite number"},
      {"plan --groups -1", "--groups: Value -1 not in range"},
      {"demo --link-gbps nan", "--link-gbps: 'nan' is not a finite number"},
      {"demo --skew nan", "--skew: 'nan' is not a finite number"},
      {"demo --fault-cycle -7", "--fault-cycle: Value -7 not in range"},
      {"gen-trace -o x.npy --layers 0", "--layers: Value 0 not in range"},
      {"gen-trace -o x.npy --blend -1", "--blend: Value -1 not in range"},
      {"bench --budgets -2", "--budgets: Value -2 not in range"},
  };
  for (const auto& [args, message] : bad) expect_exit(args, 2, message);
}

TEST(HardeningCli, BaseThatOverflowsNamesTheFile) {
  ScratchDir d;
  const std::string base =
      d.write("inf.json", "{\"logical_count\": [[[1e308, 1, 1, 1]], [[1e308, 1, 1, 1]]]}");
  expect_exit(
      "gen-trace --steps 5 --base " + shell_quote(base) + " -o " + shell_quote(d.path("t.npy")), 2,
      base + ": load of layer 0, expert 0 overflows to infinity when summed over the steps");
  EXPECT_FALSE(std::filesystem::exists(d.path("t.npy")));
}

TEST(HardeningCli, TinyCsvWithHugeIdsIsRefused) {
  ScratchDir d;
  const std::string csv = d.write("big.csv", "layer,expert,tokens\n1000000,100,3\n");
  expect_exit("plan --load " + shell_quote(csv) + " --ranks 4 --slots-per-rank 3 --out " +
                  shell_quote(d.path("o.json")),
              2, csv + ": 1 data row(s) describe 1000001 layers x 101 experts");
}

}  // namespace
}  // namespace swiftbalancer
