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
// Throws DeviceError naming `what` unless err is cudaSuccess (std::bad_alloc for out of memory).
void check_cuda(cudaError_t err, const char* what);
// Ok, or a kTransportError Status naming `what`.
Status cuda_status(cudaError_t err, const char* what);

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
