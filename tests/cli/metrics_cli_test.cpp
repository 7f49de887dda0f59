// `swiftbalancer demo --metrics-port`: the live balancers' counters over HTTP on loopback while
// the demo runs (curl, as a scraper would), 404 for anything but /metrics, the port closed once
// the demo ends, and a clear error when the port is taken. Every loop is bounded.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "support/cli.h"

namespace swiftbalancer {
namespace {

using testing::run_cli;

constexpr int kRanks = 4;

bool have_curl() {
  return std::system("command -v curl >/dev/null 2>&1") == 0;
}

// stdout of a shell command (`curl -s` prints nothing when it cannot connect).
std::string shell(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

// The value of the sample `name` exactly as written (labels included), or -1 when absent.
long long sample(const std::string& text, const std::string& name) {
  const std::string key = "\n" + name + " ";
  const std::size_t at = text.find(key);
  if (at == std::string::npos) return -1;
  return std::atoll(text.c_str() + at + key.size());
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(DemoMetrics, ServesLiveCountersOfEveryRankWhileRunning) {
  if (!testing::cli_built()) GTEST_SKIP() << "CLI not built";
  if (!have_curl()) GTEST_SKIP() << "curl not installed (scripts/install-deps.sh)";
  // Long enough to be scraped several times even on a fast machine; --quiet keeps stdout short
  // so that the demo never blocks on the pipe while the test is scraping.
  const std::string cmd = std::string("'") + SWIFTBALANCER_CLI +
                          "' demo --mode async --steps 2000 --tokens 16 --interval 20 --ranks " +
                          std::to_string(kRanks) + " --quiet --metrics-port 0 2>&1";
  FILE* demo = ::popen(cmd.c_str(), "r");
  ASSERT_NE(demo, nullptr);
  std::string out;
  int port = 0;
  char line[4096];
  const std::string marker = "metrics: serving http://127.0.0.1:";
  while (port == 0 && std::fgets(line, sizeof line, demo) != nullptr) {
    out += line;
    const std::string l = line;
    if (l.rfind(marker, 0) == 0) port = std::atoi(l.c_str() + marker.size());
  }
  ASSERT_GT(port, 0) << out;
  const std::string url = "http://127.0.0.1:" + std::to_string(port);

  // Scrape until every rank has served steps (bounded: about 20 s at most).
  std::string text;
  bool all_ranks_stepping = false;
  for (int attempt = 0; attempt < 400 && !all_ranks_stepping; ++attempt) {
    text = shell("curl -s --max-time 5 " + url + "/metrics");
    text.insert(text.begin(), '\n');  // every sample line then starts after a newline
    all_ranks_stepping = true;
    for (int r = 0; r < kRanks; ++r)
      if (sample(text, "swiftbalancer_steps_total{rank=\"" + std::to_string(r) + "\"}") <= 0)
        all_ranks_stepping = false;
    if (!all_ranks_stepping) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(all_ranks_stepping) << text;
  // Valid exposition: each family's header once, one sample per rank.
  EXPECT_EQ(count(text, "# TYPE swiftbalancer_steps_total counter\n"), 1u) << text;
  EXPECT_EQ(count(text, "\nswiftbalancer_steps_total{"), static_cast<std::size_t>(kRanks));
  EXPECT_EQ(count(text, "\nswiftbalancer_layers_total{rank=\"3\",outcome=\"committed\"} "), 1u);
  const std::string head = shell("curl -s -o /dev/null -D - --max-time 5 " + url + "/metrics");
  EXPECT_NE(head.find("HTTP/1.0 200"), std::string::npos) << head;
  EXPECT_NE(head.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << head;
  EXPECT_EQ(shell("curl -s -o /dev/null -w '%{http_code}' --max-time 5 " + url + "/other"), "404");
  EXPECT_EQ(
      shell("curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST " + url + "/metrics"),
      "404");

  while (std::fgets(line, sizeof line, demo) != nullptr) out += line;
  const int status = ::pclose(demo);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  EXPECT_NE(out.find("0 mismatches"), std::string::npos) << out;
  // Stopped with the run: nothing listens there any more (curl: "couldn't connect", exit 7).
  EXPECT_EQ(shell("curl -s --max-time 5 " + url + "/metrics >/dev/null; echo $?"), "7\n");
}

TEST(DemoMetrics, PortInUseOrOutOfRangeIsAnInputError) {
  if (!testing::cli_built()) GTEST_SKIP() << "CLI not built";
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string taken = std::to_string(ntohs(addr.sin_port));
  const auto r = run_cli("demo --steps 5 --quiet --metrics-port " + taken);
  ::close(fd);
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("127.0.0.1:" + taken), std::string::npos) << r.out;
  EXPECT_EQ(run_cli("demo --steps 5 --metrics-port 65536").code, 2);
  const auto mpi = run_cli("demo --steps 5 --transport mpi --metrics-port 0");
  EXPECT_EQ(mpi.code, 2) << mpi.out;
  EXPECT_NE(mpi.out.find("--metrics-port"), std::string::npos) << mpi.out;
}

}  // namespace
}  // namespace swiftbalancer
