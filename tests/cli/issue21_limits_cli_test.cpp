// Issue 21, item 3's remainder: text inputs are size-checked before they are read; an
// allocation that fails anyway ends with exit 3 naming what and how big; long computations show
// progress on a terminal only; `plan` at its largest allowed topology finishes in bounded time.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
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

// ASan and TSan reserve terabytes of address space for their shadow memory: a sanitized binary
// cannot start under an address-space limit, so those runs go without it.
bool sanitized() {
  return !std::string(SWIFTBALANCER_SANITIZER).empty();
}

CliRun run_limited(const std::string& kb, const std::string& args) {
  const std::string limit = sanitized() ? "" : "ulimit -v " + kb + "; ";
  return run_shell("sh -c " +
                   shell_quote(limit + "exec '" + std::string(SWIFTBALANCER_CLI) + "' " + args));
}

// A file of `bytes` NUL bytes that takes no disk (a hole).
std::string sparse_file(const ScratchDir& d, const std::string& name, std::int64_t bytes) {
  const std::string p = d.write(name, "");
  EXPECT_EQ(::truncate(p.c_str(), static_cast<off_t>(bytes)), 0);
  return p;
}

TEST(Issue21Limits, TextInputsAreSizeCheckedBeforeTheyAreRead) {
  ScratchDir d;
  const std::int64_t five_gib = std::int64_t{5} << 30;
  const std::string limit_text =
      "a file of 5.00 GiB (5368709120 bytes) is above the limit of 256.00 MiB (268435456 bytes) "
      "for JSON and CSV inputs";
  const std::string json = sparse_file(d, "big.json", five_gib);
  const std::string csv = sparse_file(d, "big.csv", five_gib);
  const std::string bare = sparse_file(d, "big", five_gib);  // CSV by content
  const std::vector<std::string> cases = {
      "plan --load " + shell_quote(json) + " --ranks 2 --slots-per-rank 2 --out " +
          shell_quote(d.path("o.json")),
      "plan --load " + shell_quote(csv) + " --ranks 2 --slots-per-rank 2 --out " +
          shell_quote(d.path("o.json")),
      "plan --load " + shell_quote(bare) + " --ranks 2 --slots-per-rank 2 --out " +
          shell_quote(d.path("o.json")),
      "plan --current " + shell_quote(json) + " --out " + shell_quote(d.path("o.json")),
      "replay --trace " + shell_quote(csv),
      "gen-trace --base " + shell_quote(json) + " -o " + shell_quote(d.path("t.npy")),
  };
  for (const std::string& args : cases) {
    const auto t0 = std::chrono::steady_clock::now();
    const CliRun r = run_limited("4000000", args);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(r.code, 2) << args << "\n" << r.out;
    EXPECT_CONTAINS(r.out, limit_text) << args;
    EXPECT_LT(s, 20.0) << args;  // refused before reading, not after
  }
  // The same bytes as .npy: the streamed reader refuses them by their first bytes.
  const std::string npy = sparse_file(d, "big.npy", five_gib);
  const CliRun r = run_limited("4000000", "replay --trace " + shell_quote(npy));
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_CONTAINS(r.out, npy + ": not a numpy .npy file (bad magic)");
  // Just under the limit, the size check lets a file through to its parser.
  const std::string under = sparse_file(d, "under.csv", (std::int64_t{1} << 28) - 1);
  const CliRun u = run_limited("4000000", "replay --trace " + shell_quote(under));
  EXPECT_EQ(u.code, 2) << u.out;
  EXPECT_EQ(u.out.find("above the limit"), std::string::npos) << u.out;
  // Outputs were never started.
  EXPECT_FALSE(std::filesystem::exists(d.path("o.json")));
  EXPECT_FALSE(std::filesystem::exists(d.path("t.npy")));
}

// Within the documented limits but beyond what the address space gives: exit 3, naming what
// was being allocated and its size (never a bare std::bad_alloc, exit 1, or an abort).
TEST(Issue21Limits, AllocationsThatFailAnywayNameWhatAndHowBig) {
  if (sanitized()) GTEST_SKIP() << "needs an address-space limit (ulimit -v)";
  ScratchDir d;
  struct Case {
    std::string args, message;
  };
  const std::vector<Case> cases = {
      // 16 x 4096 x 256 = 2^24 cells: the generated-trace limit itself.
      {"gen-trace --workloads 16 --layers 4096 --experts 256 --steps 32 -o " +
           shell_quote(d.path("t.npy")),
       "error: out of memory allocating the built-in base distributions (16777216 cells): 128.00 "
       "MiB (134217728 bytes)"},
      {"replay --workloads 16 --layers 4096 --experts 256 --steps 32",
       "error: out of memory allocating the generated trace's base distributions (16777216 "
       "cells): 256.00 MiB (268435456 bytes)"},
  };
  for (const Case& c : cases) {
    // 300 MB: the program and its libraries start; the bases do not fit beside them.
    const CliRun r = run_limited("300000", c.args);
    EXPECT_EQ(r.code, 3) << c.args << "\n" << r.out;
    EXPECT_CONTAINS(r.out, c.message) << c.args;
  }
  EXPECT_FALSE(std::filesystem::exists(d.path("t.npy")));
}

// plan's topology limits are the ones its policies meet in bounded time: beyond them it refuses
// at once; at them the default policy finishes well within a minute (docs/runtime.md has each
// policy's measured time).
TEST(Issue21Limits, PlanAtItsLargestTopologyFinishesInBoundedTime) {
  ScratchDir d;
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"plan --ranks 65536 --slots-per-rank 32", "--ranks: 65536 ranks exceed plan's limit of 512"},
      {"plan --ranks 8192 --slots-per-rank 32", "--ranks: 8192 ranks exceed plan's limit of 512"},
      {"plan --ranks 512 --slots-per-rank 17",
       "512 x 17 = 8704 slots per layer exceed plan's limit of 8192"},
  };
  for (const auto& [args, message] : refused) {
    const auto t0 = std::chrono::steady_clock::now();
    const CliRun r = run_limited("4000000", args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.out;
    EXPECT_CONTAINS(r.out, message) << args;
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
  }
  // 65 layers x 8192 slots: over the cell limit (checked once the load is read).
  const std::string row = "[" + [] {
    std::string r;
    for (int e = 0; e < 32; ++e) r += std::string(e ? "," : "") + std::to_string(e + 1);
    return r;
  }() + "]";
  std::string rows;
  for (int l = 0; l < 65; ++l) rows += std::string(l ? "," : "") + row;
  const std::string load = d.write("l65.json", "{\"logical_count\": [" + rows + "]}");
  const CliRun over =
      run_cli("plan --load " + shell_quote(load) + " --ranks 256 --slots-per-rank 32 --out " +
              shell_quote(d.path("o.json")));
  EXPECT_EQ(over.code, 2) << over.out;
  EXPECT_CONTAINS(over.out,
                  "65 layers x 8192 slots = 532480 placement cells exceed plan's limit "
                  "of 524288");
  // At the limit (the example's 58 layers x 256 experts on 256 x 32 = 8192 slots).
  const auto t0 = std::chrono::steady_clock::now();
  const CliRun r = run_limited(
      "4000000", "plan --ranks 256 --slots-per-rank 32 --out " + shell_quote(d.path("p.json")));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_CONTAINS(r.out, "topology:  256 ranks x 32 slots = 8192 slots");
  // Sanitizers slow it several times; the bound is for the plain build.
  if (!sanitized()) {
    EXPECT_LT(s, 60.0);
  }
}

// Progress goes to a terminal only: under `script` (a pseudo-terminal) the phases show and are
// cleared; into a pipe nothing of them is written.
TEST(Issue21Limits, LongCommandsShowProgressOnATerminalOnly) {
  if (run_shell("command -v script").code != 0) GTEST_SKIP() << "no script(1)";
  ScratchDir d;
  const std::string cli = SWIFTBALANCER_CLI;
  struct Case {
    std::string args, shown;
  };
  const std::vector<Case> cases = {
      {"plan --out " + shell_quote(d.path("p.json")),
       "plan: policy deepseek-global on 58 layers x 288 slots"},
      {"gen-trace --steps 200 --layers 4 --experts 16 --top-k 2 --tokens 64 -o " +
           shell_quote(d.path("t.npy")),
       "gen-trace ["},
      {"replay --steps 200 --layers 4 --experts 16 --ranks 4 --slots 5 --ranks-per-node 2",
       "replay ["},
  };
  for (const Case& c : cases) {
    const CliRun tty =
        run_shell("script -qec " + shell_quote("'" + cli + "' " + c.args) + " /dev/null");
    EXPECT_EQ(tty.code, 0) << c.args << "\n" << tty.out;
    EXPECT_CONTAINS(tty.out, c.shown) << c.args;
    const CliRun pipe = run_cli(c.args);
    EXPECT_EQ(pipe.code, 0) << c.args << "\n" << pipe.out;
    EXPECT_EQ(pipe.out.find(c.shown), std::string::npos) << c.args << "\n" << pipe.out;
    EXPECT_EQ(pipe.out.find('\r'), std::string::npos) << c.args;
  }
  // The status line is cleared before the summary is printed.
  const CliRun tty = run_shell("script -qec " + shell_quote("'" + cli + "' plan") + " /dev/null");
  EXPECT_CONTAINS(tty.out, "\r\033[Kload:");
}

}  // namespace
}  // namespace swiftbalancer
