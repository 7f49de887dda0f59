// ThreadPool: a TaskExecutor (core/task_executor.h) on a fixed set of threads. Owner: exec
// component, the one place besides the runtime and transports where threads are made.
//
// A pool of `threads` workers starts threads - 1 threads; the thread that calls run() is
// worker 0, so a pool of 1 starts none and runs everything inline. Tasks are handed out one
// at a time from a shared counter, so uneven tasks (layers that need long searches next to
// layers already balanced) spread over the workers.
//
// Thread-safety: run() may be called from any thread; calls are serialized (one run at a time).
// The destructor stops and joins the threads; it must not run while a run() is in progress.
// Not fork-safe, like any pool: a forked child has none of the threads. Engines that fork
// (vLLM's workers) create the pool after forking, or per call (compat/policy_threads.h,
// rebalance_on_threads).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "swiftbalancer/core/task_executor.h"

namespace swiftbalancer {

class ThreadPool final : public TaskExecutor {
 public:
  // threads: workers including the caller of run(), 1 .. limits::kMaxPoolThreads (InputError
  // otherwise). on_thread_start runs first on each started thread (e.g. to lower its priority).
  explicit ThreadPool(int threads, const std::function<void()>& on_thread_start = {});
  ~ThreadPool() override;
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int workers() const override { return static_cast<int>(threads_.size()) + 1; }
  void run(int n, const std::function<void(int task, int worker)>& body) override;

 private:
  struct Job;
  void thread_loop(int worker, const std::function<void()>& on_start);
  // Stops the started threads and joins them (the destructor, and a failed start).
  void stop_and_join();
  static void work(Job& job, int worker);

  std::mutex run_mu_;             // one run() at a time
  std::mutex mu_;                 // guards everything below
  std::condition_variable wake_;  // a new job, or stop
  std::condition_variable done_;  // busy_ reached 0
  Job* job_ = nullptr;
  std::uint64_t generation_ = 0;
  int busy_ = 0;  // started threads still in the current job
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace swiftbalancer
