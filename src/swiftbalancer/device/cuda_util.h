// Small helpers shared by the device path: CUDA errors as exceptions or Status, whether a device
// is present, and bounded polling of events.
//
// Error model on the device path: a CUDA call that fails because the caller asked for something
// impossible (a device that does not exist, memory that cannot be had) throws InputError or
// std::bad_alloc; any other failing CUDA call throws DeviceError (a runtime failure of the device
// or driver, never the caller's data). Calls that must not throw (transfers, fences) return
// Status instead.
//
// Thread-safety: every function is thread-safe.
#pragma once

#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

#include "swiftbalancer/core/status.h"
#include "swiftbalancer/transport/transport.h"

namespace swiftbalancer::device {

class DeviceError : public std::runtime_error {
 public:
  explicit DeviceError(const std::string& what) : std::runtime_error(what) {}
};

// "what: cudaErrorX (message)".
std::string cuda_message(cudaError_t err, const char* what);
// The thread's last-error state (issue 19, item 2): a failing runtime call also records its
// error in the calling thread's last error, and the next launch check (cudaGetLastError after
// a <<<>>>) would read it and blame a launch that succeeded. Invariant of the device path:
// whoever consumes a failure (turns it into an exception, a Status, a kept error, a false or a
// retry) clears it from the thread with cudaGetLastError, so a later healthy call never sees it.
// A sticky error (the context is lost) cannot be cleared; every later call reports it anyway.
//
// Clears a failure that was consumed; a no-op for cudaSuccess. Returns err.
cudaError_t consume_error(cudaError_t err);
// Throws DeviceError naming `what` unless err is cudaSuccess (std::bad_alloc for out of memory).
// The error is consumed (cleared from the thread) before throwing.
void check_cuda(cudaError_t err, const char* what);
// Ok, or a kTransportError Status naming `what`; the error is consumed.
Status cuda_status(cudaError_t err, const char* what);
// cudaEventQuery that leaves no trace in the thread's last error: cudaErrorNotReady (still
// running) is cleared as any failure, whether or not this runtime records it. Made under
// RelaxedCaptureMode, so that a poll never invalidates another thread's graph capture.
cudaError_t query_event(cudaEvent_t event);

// Issue 19, item 4: while any thread captures a CUDA graph in global mode (what
// torch.cuda.graph uses), a "potentially unsafe" call (cudaEventQuery, cudaMalloc, ...) from
// any other thread whose capture mode is not relaxed fails and invalidates that capture. The
// balancer's own threads (the decision worker's fence waits and staging allocation, the
// serving thread's fence and transfer polls) make such calls at times the engine does not
// choose, so they make them in relaxed mode: this guard sets the calling thread's mode to
// cudaStreamCaptureModeRelaxed and restores the previous one when it goes. None of these calls
// touches the captured stream, so they cannot conflict with the capture itself.
class RelaxedCaptureMode {
 public:
  RelaxedCaptureMode();
  ~RelaxedCaptureMode();
  RelaxedCaptureMode(const RelaxedCaptureMode&) = delete;
  RelaxedCaptureMode& operator=(const RelaxedCaptureMode&) = delete;

 private:
  cudaStreamCaptureMode previous_ = cudaStreamCaptureModeRelaxed;
  bool exchanged_ = false;
};
// Before a kernel launch: drops a stale, non-sticky error of an earlier call on this thread, so
// that the launch check that follows (launch_error()) blames only this launch.
void clear_stale_error();
// After a kernel launch: the launch's own error (cudaGetLastError), consumed.
cudaError_t launch_error();

// Empty when at least one CUDA device can be used; otherwise a one-line reason, e.g.
// "no CUDA device: cudaGetDeviceCount: cudaErrorNoDevice (no CUDA-capable device is detected)".
// Never throws; safe to call without a driver.
std::string device_unavailable_reason();

// Polls cudaEventQuery(event) until it is done (Ok), fails (kTransportError) or `deadline`
// passes (kTimeout). Never synchronises the device; sleeps briefly between polls.
Status wait_event(cudaEvent_t event, Clock::time_point deadline, const char* what);

// Makes `device` current on the calling thread (throws InputError when it does not exist).
void use_device(int device);

}  // namespace swiftbalancer::device
