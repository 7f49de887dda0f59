// Issue 21's probe cases, kept as regression tests, one TEST per category: silent wrong answers
// (dimensions narrowed, sums that overflow, integers that saturate, empty paths), outputs that
// outlive a failed or interrupted run, sizes refused before allocating, and resource failures
// ending with exit 3 instead of an abort.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "io/io_test_util.h"
#include "support/cli.h"

namespace swiftbalancer {
namespace {

using testing::CliRun;
using testing::run_cli;
using testing::run_shell;
using testing::shell_quote;
using testing_io::ScratchDir;

void expect_exit(const std::string& args, int code, const std::string& message) {
  const CliRun r = run_cli(args);
  EXPECT_EQ(r.code, code) << args << "\n" << r.out;
  EXPECT_CONTAINS(r.out, message) << args;
}

std::vector<std::string> listing(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// An .npy header for `shape` (<f8) whose data is a hole: the file is as long as the header
// promises (so the size check passes) without using the disk.
std::string sparse_npy(const ScratchDir& d, const std::string& name,
                       const std::vector<std::int64_t>& shape) {
  std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (";
  std::int64_t n = 1;
  for (std::int64_t s : shape) {
    dict += std::to_string(s) + ", ";
    n *= s;
  }
  dict += "), }";
  const std::size_t total = (10 + dict.size() + 1 + 63) / 64 * 64;
  dict.append(total - 10 - dict.size() - 1, ' ');
  dict += '\n';
  std::string head = std::string("\x93NUMPY\x01\x00", 8);
  head += static_cast<char>(dict.size() & 0xff);
  head += static_cast<char>(dict.size() >> 8);
  head += dict;
  const std::string p = d.write(name, head);
  EXPECT_EQ(::truncate(p.c_str(), static_cast<off_t>(head.size() + n * 8)), 0);
  return p;
}

TEST(Issue21Cli, DimensionsAreRangeCheckedBeforeNarrowing) {
  ScratchDir d;
  // 2^32 + 1 experts would read as 1 once narrowed to int.
  const std::string npy = sparse_npy(d, "wide.npy", {2, 1, (std::int64_t{1} << 32) + 1});
  expect_exit("replay --trace " + shell_quote(npy), 2,
              npy + ": trace shape [2][1][4294967297] is beyond");
  expect_exit("plan --load " + shell_quote(npy) + " --ranks 2 --slots-per-rank 1 --out " +
                  shell_quote(d.path("o")),
              2, "4294967297 is too large");
  const std::string tall = sparse_npy(d, "tall.npy", {1, (std::int64_t{1} << 32) + 2, 1});
  expect_exit("replay --trace " + shell_quote(tall), 2, "trace shape [1][4294967298][1] is beyond");
}

TEST(Issue21Cli, LoadsWhoseSumsWouldOverflowAreRefusedNamingTheCell) {
  ScratchDir d;
  // Every cell finite, but a layer's sum is not: 1e307 x 32 experts.
  std::string row = "[";
  for (int e = 0; e < 32; ++e) row += std::string(e ? "," : "") + (e == 3 ? "1.7e308" : "1e307");
  row += "]";
  const std::string big = d.write("big.json", "{\"logical_count\": [" + row + "," + row + "]}");
  expect_exit("plan --load " + shell_quote(big) + " --ranks 4 --slots-per-rank 8 --out " +
                  shell_quote(d.path("o")),
              2, big + ": load of layer 0, expert 0 is 1e+307, above the limit of 2^53");
  EXPECT_FALSE(std::filesystem::exists(d.path("o")));
  // The same cells as a trace.
  const std::string csv =
      d.write("big.csv", "step,layer,expert,tokens\n0,0,0,1e300\n0,0,1,1\n1,0,0,1\n1,0,1,1\n");
  expect_exit(
      "replay --trace " + shell_quote(csv) + " --ranks 2 --slots 1 --ranks-per-node 0 --top-k 1", 2,
      "step 0, layer 0, expert 0 is 1e+300, above the limit of 2^53");
  // Replay's cost options: bounded so that no modelled time can overflow.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"replay --steps 20 --token-us 1e308", "--token-us: '1e308' is outside [0, 1e+06]"},
      {"replay --steps 20 --layer-us 1e308", "--layer-us: '1e308' is outside"},
      {"replay --steps 20 --expert-mb 1e308", "--expert-mb: '1e308' is outside"},
      {"replay --steps 20 --inter-gbps 1e-300", "--inter-gbps: '1e-300' is outside [1e-06"},
      {"replay --steps 20 --intra-gbps 1e308", "--intra-gbps: '1e308' is outside"},
      {"replay --steps 20 --check-us 1e308", "--check-us: '1e308' is outside"},
  };
  for (const auto& [args, message] : bad) expect_exit(args, 2, message);
}

TEST(Issue21Cli, PrintedFiguresStayFiniteAtTheBoundsOfTheOptions) {
  ScratchDir d;
  const std::string row = "[9007199254740992, 1, 9007199254740992, 1]";
  const std::string load =
      d.write("max.json", "{\"logical_count\": [" + row + "," + row + "," + row + "]}");
  const CliRun r =
      run_cli("plan --load " + shell_quote(load) + " --ranks 2 --slots-per-rank 2 --out " +
              shell_quote(d.path("o.json")) + " --report " + shell_quote(d.path("r.json")));
  EXPECT_EQ(r.code, 0) << r.out;
  const CliRun t = run_cli(
      "replay --steps 40 --layers 4 --experts 16 --ranks 4 --slots 5 --ranks-per-node 2 "
      "--token-us 1e6 --layer-us 1e6 --expert-mb 1e9 --inter-gbps 1e-6 "
      "--intra-gbps 1e-6 --json " +
      shell_quote(d.path("r2.json")));
  EXPECT_EQ(t.code, 0) << t.out;
  for (const std::string& out : {r.out, t.out}) {
    EXPECT_EQ(out.find("inf"), std::string::npos) << out;
    EXPECT_EQ(out.find("nan"), std::string::npos) << out;
  }
  const CliRun files =
      run_shell("cat " + shell_quote(d.path("r.json")) + " " + shell_quote(d.path("r2.json")) +
                " | grep -ci -E '(^|[^a-z])(inf|nan|null)([^a-z]|$)' || true");
  EXPECT_EQ(files.out, "0\n");
}

TEST(Issue21Cli, IntegerOptionsOutOfRangeAreRefused) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"plan --max-transfers 9223372036854775808",
       "--max-transfers: '9223372036854775808' is "
       "out of range"},
      {"plan --max-transfers -9223372036854775809", "'-9223372036854775809' is out of range"},
      {"replay --steps 20 --max-transfers 99999999999999999999", "is out of range"},
      {"gen-trace -o x.npy --seed -1", "--seed: '-1' is negative"},
      {"gen-trace -o x.npy --seed 18446744073709551616", "--seed: '18446744073709551616' is out"},
      {"replay --steps 20 --seed -5", "--seed: '-5' is negative"},
      {"demo --seed -1", "--seed: '-1' is negative"},
      {"gen-trace -o x.npy --steps 010", "--steps: '010': leading zeros are not allowed"},
      {"gen-trace -o x.npy --steps 0x10", "--steps: '0x10' is not a decimal integer"},
      {"replay --steps 9223372036854775808", "--steps: Value 9223372036854775808 not in range"},
  };
  for (const auto& [args, message] : bad) expect_exit(args, 2, message);
  // The largest values still parse.
  expect_exit(
      "gen-trace -q --steps 3 --layers 2 --experts 8 --top-k 2 --tokens 4 --seed "
      "18446744073709551615 -o /nonexistent/x.npy",
      2, "--out /nonexistent/x.npy");
}

TEST(Issue21Cli, EmptyPathsAreErrorsNamingTheOption) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"plan --report ''", "--report: the value is empty"},
      {"plan --out ''", "--out: the value is empty"},
      {"plan --transfers-out ''", "--transfers-out: the value is empty"},
      {"plan --current ''", "--current: the value is empty"},
      {"plan --load ''", "--load: the value is empty"},
      {"replay --steps 20 --json ''", "--json: the value is empty"},
      {"replay --steps 20 --plot ''", "--plot: the value is empty"},
      {"replay --trace ''", "--trace: the value is empty"},
      {"replay --base ''", "--base: the value is empty"},
      {"gen-trace -o ''", "--out: the value is empty"},
      {"demo --report ''", "--report: the value is empty"},
      {"demo --trace ''", "--trace: the value is empty"},
  };
  for (const auto& [args, message] : bad) expect_exit(args, 2, message);
}

// One output that fails at run time (after the checks) takes the others with it.
TEST(Issue21Cli, OutputsAreCommittedTogether) {
  ScratchDir d;
  // The example plan's placement is about 40 KB, its transfer plan far more: a 64 KiB file-size
  // limit lets --out through and stops --transfers-out.
  const std::string cli = SWIFTBALANCER_CLI;
  const std::string sh = "ulimit -f 128; exec '" + cli + "' plan --out " +
                         shell_quote(d.path("p.json")) + " --report " +
                         shell_quote(d.path("r.json")) + " --transfers-out " +
                         shell_quote(d.path("t.json"));
  const CliRun r = run_shell("sh -c " + shell_quote(sh));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_CONTAINS(r.out, "t.json: write failed (File too large)");
  EXPECT_TRUE(listing(d.path("")).empty());
  // Without the limit all three land.
  const CliRun ok = run_shell(
      "sh -c " + shell_quote("exec '" + cli + "' plan --out " + shell_quote(d.path("p.json")) +
                             " --report " + shell_quote(d.path("r.json")) + " --transfers-out " +
                             shell_quote(d.path("t.json"))));
  EXPECT_EQ(ok.code, 0) << ok.out;
  EXPECT_EQ(listing(d.path("")), (std::vector<std::string>{"p.json", "r.json", "t.json"}));
}

// A legal output name of 255 bytes: its temporary still fits NAME_MAX.
TEST(Issue21Cli, LongOutputNamesGetATemporaryThatFits) {
  ScratchDir d;
  const std::string name = std::string(251, 'n') + ".npy";
  const CliRun r =
      run_cli("gen-trace -q --steps 3 --layers 2 --experts 8 --top-k 2 --tokens 4 -o " +
              shell_quote(d.path(name)));
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(listing(d.path("")), std::vector<std::string>{name});
}

// SIGTERM or SIGINT mid-write: the process dies of the signal and leaves no temporary.
TEST(Issue21Cli, SignalsRemoveTheRunsTemporaries) {
  for (int sig : {SIGTERM, SIGINT}) {
    ScratchDir d;
    const std::string out = d.path("t.npy");
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      const int devnull = ::open("/dev/null", O_WRONLY);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
      ::execl(SWIFTBALANCER_CLI, "swiftbalancer", "gen-trace", "-q", "--steps", "100000000", "-o",
              out.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    // Wait until the temporary exists (at most 20 s), then signal.
    bool seen = false;
    for (int i = 0; i < 2000 && !seen; ++i) {
      seen = !listing(d.path("")).empty();
      if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_TRUE(seen);
    ::kill(pid, sig);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == sig) << status;
    EXPECT_TRUE(listing(d.path("")).empty()) << "signal " << sig;
  }
}

// Sizes that multiply are refused before allocating, within a 4 GB address space.
TEST(Issue21Cli, SizesAtTheLimitsFinishOrAreRefusedUnderFourGigabytes) {
  ScratchDir d;
  const std::string cli = SWIFTBALANCER_CLI;
  // ASan and TSan reserve terabytes of address space for their shadow memory, so a sanitized
  // binary cannot start under the limit; there the refusals run without it (they come before
  // any allocation either way).
  const bool sanitized = !std::string(SWIFTBALANCER_SANITIZER).empty();
  auto limited = [&](const std::string& args) {
    const std::string limit = sanitized ? "" : "ulimit -v 4000000; ";
    return run_shell("sh -c " + shell_quote(limit + "exec '" + cli + "' " + args));
  };
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"gen-trace --layers 524288 --experts 256 -o " + shell_quote(d.path("a.npy")),
       "cells exceed the limit of 16777216 for generated traces"},
      {"gen-trace --workloads 65536 -o " + shell_quote(d.path("b.npy")),
       "65536 workloads x 58 layers x 256 experts"},
      {"replay --steps 1099511627776", "steps exceed replay's limit of 16777216"},
      {"replay --layers 65536 --experts 256", "cells exceed replay's limit of 4194304"},
      {"demo --hidden 8192 --ffn 65536", "above the limit of 2.00 GiB"},
  };
  for (const auto& [args, message] : refused) {
    const CliRun r = limited(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.out;
    EXPECT_CONTAINS(r.out, message) << args;
  }
  EXPECT_TRUE(listing(d.path("")).empty());
}

}  // namespace
}  // namespace swiftbalancer
