#include "swiftbalancer/core/task_executor.h"

#include <exception>

namespace swiftbalancer {

void InlineExecutor::run(int n, const std::function<void(int task, int worker)>& body) {
  std::exception_ptr first;
  for (int i = 0; i < n; ++i) {
    try {
      body(i, 0);
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  }
  if (first) std::rethrow_exception(first);
}

}  // namespace swiftbalancer
