// The gen-trace and replay subcommands end to end, through the built CLI (skipped when the CLI
// has not been built): files written, JSON and SVG readable, exit code 2 on bad input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

namespace {

namespace fs = std::filesystem;

class ReplayCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(SWIFTBALANCER_CLI)) GTEST_SKIP() << "CLI not built: " << SWIFTBALANCER_CLI;
    dir_ = fs::temp_directory_path() / ("sb_replay_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  // Runs the CLI with `args`; returns the exit code, stdout in out_.
  int run(const std::string& args) {
    const std::string out = (dir_ / "stdout.txt").string();
    const std::string cmd = std::string(SWIFTBALANCER_CLI) + " " + args + " > " + out + " 2> " +
                            (dir_ / "err").string();
    const int rc = std::system(cmd.c_str());
    std::ifstream f(out);
    std::stringstream ss;
    ss << f.rdbuf();
    out_ = ss.str();
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
  std::string out_;
};

TEST_F(ReplayCli, GenTraceThenReplayWithJsonAndPlot) {
  ASSERT_EQ(run("gen-trace -o " + path("t.npy") +
                " --steps 120 --layers 6 --experts 32 --tokens 512 --switch-at 60 --seed 4"),
            0);
  EXPECT_NE(out_.find("[120][6][32]"), std::string::npos) << out_;
  EXPECT_NE(out_.find("read back and checked"), std::string::npos) << out_;
  EXPECT_TRUE(fs::exists(path("t.npy")));

  ASSERT_EQ(run("replay --trace " + path("t.npy") +
                " --switch-at 60 --ranks 8 --slots 5 --ranks-per-node 4 --interval 20 --window 20"
                " --policy off,static,deepseek-global:sync,swift:async --policy-ms 0"
                " --json " +
                path("r.json") + " --plot " + path("r.svg")),
            0);
  for (const char* label : {"off", "static", "deepseek-global:sync", "swift:async"})
    EXPECT_NE(out_.find(label), std::string::npos) << label << "\n" << out_;
  std::ifstream jf(path("r.json"));
  const auto j = nlohmann::json::parse(jf);
  ASSERT_EQ(j["policies"].size(), 4u);
  EXPECT_EQ(j["trace"]["steps"], 120);
  EXPECT_EQ(j["config"]["switch_at"][0], 60);
  EXPECT_GT(j["policies"][3]["transfers"].get<long long>(), 0);
  std::ifstream sf(path("r.svg"));
  std::stringstream svg;
  svg << sf.rdbuf();
  EXPECT_EQ(svg.str().rfind("<svg", 0), 0u);
  EXPECT_NE(svg.str().find("</svg>"), std::string::npos);

  // The same trace generated on the fly gives the same table.
  const std::string from_file = out_.substr(out_.find('\n'));
  ASSERT_EQ(run("replay --steps 120 --layers 6 --experts 32 --tokens 512 --switch-at 60 --seed 4"
                " --ranks 8 --slots 5 --ranks-per-node 4 --interval 20 --window 20"
                " --policy off,static,deepseek-global:sync,swift:async --policy-ms 0"),
            0);
  const std::string table = [](const std::string& s) {
    return s.substr(s.find('\n'), s.find("(imbalance") - s.find('\n'));
  }(out_);
  EXPECT_EQ(table, from_file.substr(0, table.size()));
}

// Two per-step CSV files play one after the other; the switch is where the second begins.
TEST_F(ReplayCli, CsvTracesPlayInOrderWithASwitchBetween) {
  for (int part = 0; part < 2; ++part) {
    std::ofstream f(path(part ? "p1.csv" : "p0.csv"));
    f << "step,layer,expert,tokens\n";
    for (int t = 0; t < 12; ++t)
      for (int l = 0; l < 2; ++l)
        for (int e = 0; e < 8; ++e)
          f << t << ',' << l << ',' << e << ',' << (e == (part ? 7 : 0) ? 90 : 10) << '\n';
  }
  ASSERT_EQ(run("replay --trace " + path("p0.csv") + " " + path("p1.csv") +
                " --ranks 2 --slots 5 --ranks-per-node 0 --interval 4 --window 4 --top-k 1"
                " --policy static,deepseek-global:sync --policy-ms 0 --recover-window 2 --json " +
                path("r.json")),
            0)
      << out_;
  std::ifstream jf(path("r.json"));
  const auto j = nlohmann::json::parse(jf);
  EXPECT_EQ(j["trace"]["steps"], 24);
  ASSERT_EQ(j["config"]["switch_at"].size(), 1u);
  EXPECT_EQ(j["config"]["switch_at"][0], 12);
  // Sync recovers at the first gather after the switch (step 16: 4 steps); static never.
  EXPECT_TRUE(j["policies"][0]["recover_steps"][0].is_null());  // never
  EXPECT_GE(j["policies"][1]["recover_steps"][0].get<int>(), 0);
  EXPECT_LE(j["policies"][1]["recover_steps"][0].get<int>(), 4);
}

// The simulated worker's threads change no decision: with a fixed policy time the table is the
// same for 1 and 3 threads.
TEST_F(ReplayCli, PolicyThreadsChangeNoDecision) {
  const std::string args =
      "replay --steps 160 --layers 6 --experts 32 --tokens 512 --switch-at 80 --seed 9"
      " --ranks 8 --slots 5 --ranks-per-node 4 --interval 20 --window 20"
      " --policy swift:async,swift:sync --policy-ms 2 --policy-threads ";
  ASSERT_EQ(run(args + "1"), 0) << out_;
  const std::string one = out_.substr(0, out_.find("(imbalance"));
  ASSERT_EQ(run(args + "3"), 0) << out_;
  EXPECT_EQ(out_.substr(0, out_.find("(imbalance")), one);
  EXPECT_NE(one.find("swift:sync"), std::string::npos) << one;
  EXPECT_EQ(run(args + "0"), 2);
}

TEST_F(ReplayCli, BadInputExitsWithTwo) {
  EXPECT_EQ(run("replay --trace " + path("missing.npy")), 2);
  EXPECT_EQ(run("replay --steps 10 --layers 2 --experts 16 --ranks 4 --slots 4 --policy nope"), 2);
  EXPECT_EQ(run("replay --steps 10 --layers 2 --experts 16 --ranks 4 --slots 4 --interval 0"), 2);
  // The runtime's window holds whole intervals: 100 steps are not a whole number of 3-step ones.
  EXPECT_EQ(run("replay --steps 10 --layers 2 --experts 16 --ranks 4 --slots 4 --ranks-per-node 4"
                " --interval 3"),
            2);
  std::ifstream err(dir_ / "err");
  const std::string msg((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
  EXPECT_NE(msg.find("whole number of intervals"), std::string::npos) << msg;
  EXPECT_EQ(run("replay --steps 10 --layers 2 --experts 16 --ranks 4 --slots 4 --ranks-per-node 4"
                " --interval 5 --window 10"),
            0);
  EXPECT_EQ(run("gen-trace -o " + path("x.npy") + " --steps 10 --top-k 300"), 2);
  EXPECT_EQ(run("gen-trace -o " + path("x.npy") + " --steps 10 --switch-at 20"), 2);
  EXPECT_EQ(run("gen-trace -o " + path("x.npy") + " --steps 5 --base " + path("none.json")), 2);
}

}  // namespace
