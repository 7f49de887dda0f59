// Scheduling of the library's background threads (Linux; elsewhere the calls do nothing and
// return false). Owner: exec component.
//
// The serving thread must not be preempted by the library's own helpers. On a loaded host (an
// engine's ranks sharing few cores) a helper that is woken up (the decision worker handed a
// job, a transport thread handed a batch) would otherwise take the core from the thread that
// woke it for a whole time slice, in the middle of a serving call. SCHED_BATCH threads are
// never favoured at wake-up; they still get their fair share of the CPU.
//
// Both calls act on the calling thread only, are best effort (no privilege is needed for
// either) and thread-safe.
#pragma once

namespace swiftbalancer {

// SCHED_BATCH at the current nice value: a helper that moves data the serving thread will
// wait for (transfers), so it keeps its share of the CPU.
bool make_current_thread_batch();
// SCHED_BATCH and nice 19, the lowest normal priority: work that may lag (the decision
// worker and its policy threads).
bool lower_current_thread_priority();

}  // namespace swiftbalancer
