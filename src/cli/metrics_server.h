// MetricsServer: a minimal blocking HTTP/1.0 server on 127.0.0.1 for a Prometheus scrape.
//   GET /metrics (a query string is ignored) -> 200, Content-Type text/plain; version=0.0.4,
//   body from the `body` callback, called on the server thread once per scrape;
//   anything else -> 404. One connection at a time, closed after the response.
//
// Loopback only: the socket is bound to 127.0.0.1, never to another address. Every blocking
// call is bounded: accept waits in poll() with a short timeout so that stop() is seen promptly,
// and a connection gets a fixed time to send its request and take the response (a slow or
// silent client is dropped, never waited on forever).
//
// Ownership: the server owns its socket and thread; `body` must stay callable until stop().
// Thread-safety: construct, port() and stop() from one thread; `body` runs on the server thread.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

namespace swiftbalancer::cli {

class MetricsServer {
 public:
  // Binds 127.0.0.1:port (0: a free port the system picks; see port()) and starts serving.
  // Throws InputError naming the address when the port cannot be bound or listened on.
  MetricsServer(int port, std::function<std::string()> body);
  ~MetricsServer();  // stop()
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  int port() const { return port_; }
  // Stops accepting, lets a response in progress finish (bounded), joins the thread and closes
  // the socket. Idempotent.
  void stop();

 private:
  void serve();
  void answer(int fd);

  std::function<std::string()> body_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace swiftbalancer::cli
