// Test helper: runs fn(rank, transport) on N threads sharing one InProcessWorld and joins them.
// Exceptions on a rank thread are re-thrown on the caller (the first one wins).
#pragma once

#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "swiftbalancer/transport/inprocess_transport.h"

namespace swiftbalancer::testing {

inline void run_ranks(int n, const std::function<void(int, Transport&)>& fn) {
  InProcessWorld world(n);
  std::vector<std::unique_ptr<Transport>> ts;
  for (int r = 0; r < n; ++r) ts.push_back(world.transport(r));
  std::mutex mu;
  std::exception_ptr first;
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      try {
        fn(r, *ts[static_cast<std::size_t>(r)]);
      } catch (...) {
        std::lock_guard lock(mu);
        if (!first) first = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  if (first) std::rethrow_exception(first);
}

}  // namespace swiftbalancer::testing
