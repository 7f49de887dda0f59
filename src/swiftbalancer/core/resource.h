// ResourceError: the machine could not give what a valid request needs (memory, a thread). The
// request was within the documented limits (core/limits.h); the CLI exits 3 with the message,
// which names what was being allocated or started and how big it was.
//
// allocating(what, bytes, fn) runs fn() and turns a std::bad_alloc into a ResourceError naming
// `what` and `bytes`; start_thread(what, fn) turns a failed std::thread start into one.
// Stateless; safe from any thread.
#pragma once

#include <cstdint>
#include <cstdio>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

namespace swiftbalancer {

class ResourceError : public std::runtime_error {
 public:
  explicit ResourceError(const std::string& what) : std::runtime_error(what) {}
};

// "1.50 GiB (1610612736 bytes)"
inline std::string byte_size_text(std::int64_t bytes) {
  char buf[64];
  const double b = static_cast<double>(bytes);
  if (b >= 1024.0 * 1024 * 1024)
    std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1024.0 * 1024 * 1024));
  else if (b >= 1024.0 * 1024)
    std::snprintf(buf, sizeof buf, "%.2f MiB", b / (1024.0 * 1024));
  else
    std::snprintf(buf, sizeof buf, "%.0f KiB", b / 1024.0);
  return std::string(buf) + " (" + std::to_string(bytes) + " bytes)";
}

template <typename F>
decltype(auto) allocating(const std::string& what, std::int64_t bytes, F&& fn) {
  try {
    return std::forward<F>(fn)();
  } catch (const std::bad_alloc&) {
    throw ResourceError("out of memory allocating " + what + ": " + byte_size_text(bytes));
  }
}

template <typename F>
std::thread start_thread(const std::string& what, F&& fn) {
  try {
    return std::thread(std::forward<F>(fn));
  } catch (const std::system_error& e) {
    throw ResourceError("cannot start " + what + " (" + e.what() + ")");
  }
}

}  // namespace swiftbalancer
