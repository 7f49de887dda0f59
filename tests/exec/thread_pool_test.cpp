// ThreadPool: every task runs once, on a worker id that no concurrent body shares; the lowest
// failing task's exception comes back; runs are serialized and the pool is reusable.
#include "swiftbalancer/exec/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "swiftbalancer/core/status.h"

namespace swiftbalancer {
namespace {

TEST(ThreadPool, RunsEveryTaskOnceOnAWorkerNoConcurrentBodyShares) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    ASSERT_EQ(pool.workers(), threads);
    for (int n : {0, 1, 2, 7, 58, 1000}) {
      std::vector<std::atomic<int>> runs(static_cast<std::size_t>(n));
      std::vector<std::atomic<int>> in_use(static_cast<std::size_t>(threads));
      std::atomic<int> clashes{0}, bad_worker{0};
      pool.run(n, [&](int task, int worker) {
        if (worker < 0 || worker >= threads) {
          ++bad_worker;
          return;
        }
        if (in_use[static_cast<std::size_t>(worker)].fetch_add(1) != 0) ++clashes;
        if (task % 5 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
        ++runs[static_cast<std::size_t>(task)];
        in_use[static_cast<std::size_t>(worker)].fetch_sub(1);
      });
      EXPECT_EQ(bad_worker.load(), 0) << threads << " threads, " << n << " tasks";
      EXPECT_EQ(clashes.load(), 0) << threads << " threads, " << n << " tasks";
      for (int i = 0; i < n; ++i) ASSERT_EQ(runs[static_cast<std::size_t>(i)].load(), 1) << i;
    }
  }
}

TEST(ThreadPool, ASinglePoolThreadRunsTasksInOrderOnTheCaller) {
  ThreadPool pool(1);
  std::vector<int> order;
  const auto caller = std::this_thread::get_id();
  bool elsewhere = false;
  pool.run(5, [&](int task, int worker) {
    order.push_back(task * 10 + worker);
    elsewhere = elsewhere || std::this_thread::get_id() != caller;
  });
  EXPECT_EQ(order, (std::vector<int>{0, 10, 20, 30, 40}));
  EXPECT_FALSE(elsewhere);
}

TEST(ThreadPool, SpreadsWorkOverItsThreads) {
  // Two tasks that each wait for the other to start can only finish on two threads at once.
  ThreadPool pool(2);
  std::atomic<int> started{0};
  pool.run(2, [&](int, int) {
    ++started;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (started.load() < 2 && std::chrono::steady_clock::now() < until)
      std::this_thread::yield();
  });
  EXPECT_EQ(started.load(), 2);
}

TEST(ThreadPool, RethrowsTheLowestFailingTaskAfterRunningTheRest) {
  for (int threads : {1, 4}) {
    ThreadPool pool(threads);
    for (int round = 0; round < 20; ++round) {
      std::atomic<int> ran{0};
      try {
        pool.run(40, [&](int task, int) {
          ++ran;
          if (task == 31 || task == 7 || task == 12)
            throw std::runtime_error("task " + std::to_string(task));
        });
        FAIL() << "no exception";
      } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "task 7");
      }
      EXPECT_EQ(ran.load(), 40);
    }
    // The pool still works after a failed run.
    std::atomic<int> ran{0};
    pool.run(10, [&](int, int) { ++ran; });
    EXPECT_EQ(ran.load(), 10);
  }
}

TEST(ThreadPool, RunsFromSeveralThreadsAreSerialized) {
  ThreadPool pool(3);
  std::atomic<int> active_runs{0}, overlaps{0}, total{0};
  auto caller = [&] {
    for (int r = 0; r < 200; ++r) {
      pool.run(6, [&](int task, int) {
        if (task == 0 && active_runs.fetch_add(1) != 0) ++overlaps;
        ++total;
        if (task == 0) active_runs.fetch_sub(1);
      });
    }
  };
  std::thread a(caller), b(caller);
  a.join();
  b.join();
  EXPECT_EQ(total.load(), 2 * 200 * 6);
  EXPECT_EQ(overlaps.load(), 0);
}

TEST(ThreadPool, StartHookRunsOnceOnEachStartedThread) {
  std::atomic<int> hooks{0};
  {
    ThreadPool pool(4, [&] { ++hooks; });
    pool.run(8, [](int, int) {});
  }
  EXPECT_EQ(hooks.load(), 3);  // the caller is the fourth worker
}

TEST(ThreadPool, RejectsSizesOutsideTheLimit) {
  EXPECT_THROW(ThreadPool(0), InputError);
  EXPECT_THROW(ThreadPool(-3), InputError);
  EXPECT_THROW(ThreadPool(100000), InputError);
}

TEST(InlineExecutor, RunsInOrderAndRethrowsTheFirstFailure) {
  InlineExecutor inline_executor;
  std::vector<int> order;
  EXPECT_THROW(inline_executor.run(4,
                                   [&](int task, int worker) {
                                     order.push_back(task + 10 * worker);
                                     if (task >= 2) throw std::runtime_error("x");
                                   }),
               std::runtime_error);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
}

}  // namespace
}  // namespace swiftbalancer
