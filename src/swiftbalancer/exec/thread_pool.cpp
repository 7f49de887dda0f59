#include "swiftbalancer/exec/thread_pool.h"

#include <atomic>
#include <exception>
#include <string>
#include <system_error>

#include "swiftbalancer/core/limits.h"
#include "swiftbalancer/core/resource.h"
#include "swiftbalancer/core/status.h"

namespace swiftbalancer {

struct ThreadPool::Job {
  const std::function<void(int, int)>* body = nullptr;
  int n = 0;
  std::atomic<int> next{0};
  std::mutex error_mu;
  int error_task = -1;  // lowest task that threw
  std::exception_ptr error;
};

ThreadPool::ThreadPool(int threads, const std::function<void()>& on_thread_start) {
  if (threads < 1 || threads > limits::kMaxPoolThreads)
    throw InputError("thread pool size must be 1 .. " + std::to_string(limits::kMaxPoolThreads) +
                     ", got " + std::to_string(threads));
  threads_.reserve(static_cast<std::size_t>(threads - 1));
  // Worker 0 is the caller of run(); started threads are workers 1 .. threads - 1.
  // A thread that cannot start (RLIMIT_NPROC, address space for its stack) must not leave the
  // ones already started joinable: they are stopped and joined, then a ResourceError names it.
  for (int w = 1; w < threads; ++w) {
    try {
      threads_.emplace_back([this, w, on_thread_start] { thread_loop(w, on_thread_start); });
    } catch (const std::system_error& e) {
      stop_and_join();
      throw ResourceError("cannot start thread " + std::to_string(w) + " of a " +
                          std::to_string(threads) + "-thread pool (" + e.what() + ")");
    }
  }
}

void ThreadPool::stop_and_join() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

ThreadPool::~ThreadPool() {
  stop_and_join();
}

void ThreadPool::work(Job& job, int worker) {
  for (;;) {
    const int task = job.next.fetch_add(1, std::memory_order_relaxed);
    if (task >= job.n) return;
    try {
      (*job.body)(task, worker);
    } catch (...) {
      std::lock_guard lock(job.error_mu);
      if (job.error_task < 0 || task < job.error_task) {
        job.error_task = task;
        job.error = std::current_exception();
      }
    }
  }
}

void ThreadPool::thread_loop(int worker, const std::function<void()>& on_start) {
  if (on_start) on_start();
  std::uint64_t seen = 0;
  for (;;) {
    Job* job = nullptr;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
    }
    work(*job, worker);
    {
      std::lock_guard lock(mu_);
      if (--busy_ == 0) done_.notify_one();
    }
  }
}

void ThreadPool::run(int n, const std::function<void(int task, int worker)>& body) {
  if (n <= 0) return;
  std::lock_guard serial(run_mu_);
  Job job;
  job.body = &body;
  job.n = n;
  if (!threads_.empty() && n > 1) {
    {
      std::lock_guard lock(mu_);
      job_ = &job;
      busy_ = static_cast<int>(threads_.size());
      ++generation_;
    }
    wake_.notify_all();
  }
  work(job, 0);
  if (!threads_.empty() && n > 1) {
    // Every started thread leaves the job before `job` (on this stack) goes away.
    std::unique_lock lock(mu_);
    done_.wait(lock, [&] { return busy_ == 0; });
    job_ = nullptr;
  }
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace swiftbalancer
