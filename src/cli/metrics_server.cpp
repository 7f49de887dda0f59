#include "cli/metrics_server.h"

#include "swiftbalancer/core/resource.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string_view>

#include "swiftbalancer/core/status.h"

namespace swiftbalancer::cli {
namespace {

using SteadyClock = std::chrono::steady_clock;

// How often the accept loop looks at stop(), and how long one client may take in all.
constexpr int kAcceptPollMs = 50;
constexpr auto kClientBudget = std::chrono::seconds(2);
// A request line and headers larger than this are not a scrape.
constexpr std::size_t kMaxRequest = 8192;

int ms_left(SteadyClock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Waits for `events` on fd until the deadline; false on timeout or error.
bool wait_for(int fd, short events, SteadyClock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, ms_left(deadline));
    if (n > 0) return (p.revents & (events | POLLHUP | POLLERR)) != 0;
    if (n == 0) return false;
    if (errno != EINTR) return false;
  }
}

// Reads until the end of the request headers, the size limit, the client closing or the deadline.
std::string read_request(int fd, SteadyClock::time_point deadline) {
  std::string req;
  char buf[1024];
  while (req.size() < kMaxRequest && req.find("\r\n\r\n") == std::string::npos &&
         req.find("\n\n") == std::string::npos) {
    if (!wait_for(fd, POLLIN, deadline)) break;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    req.append(buf, static_cast<std::size_t>(n));
  }
  return req;
}

void write_all(int fd, std::string_view data, SteadyClock::time_point deadline) {
  while (!data.empty()) {
    if (!wait_for(fd, POLLOUT, deadline)) return;
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::string response(const char* status, const char* type, const std::string& body) {
  return std::string("HTTP/1.0 ") + status + "\r\nContent-Type: " + type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
         body;
}

// True for "GET /metrics HTTP/1.x" (or "GET /metrics?..."), the only request served.
bool is_metrics_get(std::string_view req) {
  const std::size_t eol = req.find_first_of("\r\n");
  const std::string_view line = req.substr(0, eol);
  const std::size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || line.substr(0, sp1) != "GET") return false;
  const std::size_t sp2 = line.find(' ', sp1 + 1);
  std::string_view target =
      line.substr(sp1 + 1, sp2 == std::string_view::npos ? sp2 : sp2 - sp1 - 1);
  target = target.substr(0, target.find('?'));
  return target == "/metrics";
}

}  // namespace

MetricsServer::MetricsServer(int port, std::function<std::string()> body) : body_(std::move(body)) {
  const std::string where = "127.0.0.1:" + std::to_string(port);
  if (port < 0 || port > 65535)
    throw InputError("metrics port " + std::to_string(port) + " out of range");
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd_ < 0) throw InputError("metrics: socket(): " + std::string(std::strerror(errno)));
  const int one = 1;
  (void)::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // loopback only
  socklen_t len = sizeof addr;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 16) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string why = std::strerror(errno);
    ::close(listen_fd_);
    listen_fd_ = -1;
    throw InputError("metrics: cannot listen on " + where + ": " + why);
  }
  port_ = ntohs(addr.sin_port);
  try {
    thread_ = start_thread("the metrics server's thread", [this] { serve(); });
  } catch (...) {
    ::close(listen_fd_);
    listen_fd_ = -1;
    throw;
  }
}

MetricsServer::~MetricsServer() {
  stop();
}

void MetricsServer::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
}

void MetricsServer::serve() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, kAcceptPollMs) <= 0) continue;  // timeout (look at stopping_) or EINTR
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) continue;  // the client went away between poll and accept, or EAGAIN
    answer(fd);
    ::close(fd);
  }
}

void MetricsServer::answer(int fd) {
  const auto deadline = SteadyClock::now() + kClientBudget;
  const std::string req = read_request(fd, deadline);
  if (req.empty()) return;
  std::string out;
  if (!is_metrics_get(req)) {
    out = response("404 Not Found", "text/plain; charset=utf-8", "not found: only GET /metrics\n");
  } else {
    try {
      out = response("200 OK", "text/plain; version=0.0.4; charset=utf-8", body_());
    } catch (const std::exception& e) {
      out = response("500 Internal Server Error", "text/plain; charset=utf-8",
                     std::string(e.what()) + "\n");
    }
  }
  write_all(fd, out, deadline);
  ::shutdown(fd, SHUT_WR);
}

}  // namespace swiftbalancer::cli
