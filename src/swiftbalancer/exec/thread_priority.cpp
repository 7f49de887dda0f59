#include "swiftbalancer/exec/thread_priority.h"

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace swiftbalancer {

bool make_current_thread_batch() {
#if defined(__linux__)
  sched_param p{};
  p.sched_priority = 0;
  return pthread_setschedparam(pthread_self(), SCHED_BATCH, &p) == 0;
#else
  return false;
#endif
}

bool lower_current_thread_priority() {
#if defined(__linux__)
  const bool batch = make_current_thread_batch();
  // Linux threads have their own nice value (the tid, not the process).
  return setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19) == 0 && batch;
#else
  return false;
#endif
}

}  // namespace swiftbalancer
