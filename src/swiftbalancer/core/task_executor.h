// TaskExecutor: runs independent tasks, possibly on several threads. Owner: core (interface
// only; the thread pool that implements it is exec/thread_pool.h).
//
// The deciding code stays pure: a policy that has work independent per layer hands it to the
// executor its caller supplied (PolicyInput::executor) and never creates a thread itself. Its
// result must not depend on the executor: task i writes only what belongs to task i, and
// `worker` only picks which scratch workspace the task uses.
#pragma once

#include <functional>

namespace swiftbalancer {

class TaskExecutor {
 public:
  virtual ~TaskExecutor() = default;
  // The most tasks that run at once (>= 1). Every `worker` passed to a body is below it, and
  // no two bodies that run at the same time get the same `worker`.
  virtual int workers() const = 0;
  // Calls body(task, worker) once for each task in [0, n) and returns when all have returned.
  // If bodies throw, the rest of the tasks still run, and the exception of the lowest task
  // that threw is rethrown (the same one on every run).
  virtual void run(int n, const std::function<void(int task, int worker)>& body) = 0;
};

// Runs every task on the calling thread, in order (worker 0).
class InlineExecutor final : public TaskExecutor {
 public:
  int workers() const override { return 1; }
  void run(int n, const std::function<void(int task, int worker)>& body) override;
};

}  // namespace swiftbalancer
