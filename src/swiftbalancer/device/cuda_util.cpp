#include "swiftbalancer/device/cuda_util.h"

#include <new>
#include <thread>

namespace swiftbalancer::device {

std::string cuda_message(cudaError_t err, const char* what) {
  return std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
}

cudaError_t consume_error(cudaError_t err) {
  if (err != cudaSuccess) (void)cudaGetLastError();
  return err;
}

void check_cuda(cudaError_t err, const char* what) {
  if (consume_error(err) == cudaSuccess) return;
  if (err == cudaErrorMemoryAllocation) throw std::bad_alloc();
  throw DeviceError(cuda_message(err, what));
}

Status cuda_status(cudaError_t err, const char* what) {
  if (consume_error(err) == cudaSuccess) return Status::Ok();
  return Status::TransportError(cuda_message(err, what));
}

cudaError_t query_event(cudaEvent_t event) {
  const RelaxedCaptureMode relaxed;
  return consume_error(cudaEventQuery(event));
}

RelaxedCaptureMode::RelaxedCaptureMode() {
  exchanged_ = consume_error(cudaThreadExchangeStreamCaptureMode(&previous_)) == cudaSuccess;
}

RelaxedCaptureMode::~RelaxedCaptureMode() {
  if (exchanged_) (void)consume_error(cudaThreadExchangeStreamCaptureMode(&previous_));
}

void clear_stale_error() {
  (void)cudaGetLastError();
}

cudaError_t launch_error() {
  return cudaGetLastError();  // reading it clears it
}

std::string device_unavailable_reason() {
  int count = 0;
  const cudaError_t err = consume_error(cudaGetDeviceCount(&count));
  if (err != cudaSuccess) {
    return "no CUDA device: " + cuda_message(err, "cudaGetDeviceCount");
  }
  if (count == 0) return "no CUDA device: cudaGetDeviceCount returned 0";
  return {};
}

Status wait_event(cudaEvent_t event, Clock::time_point deadline, const char* what) {
  // Copies of tens of MB take about a millisecond: spin briefly, then sleep in short steps.
  for (int polls = 0;; ++polls) {
    const cudaError_t q = query_event(event);
    if (q == cudaSuccess) return Status::Ok();
    if (q != cudaErrorNotReady) return cuda_status(q, what);
    if (Clock::now() >= deadline)
      return Status::Timeout(std::string(what) + ": not done by the deadline");
    if (polls < 64)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

void use_device(int device) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || device < 0 || device >= count) {
    (void)cudaGetLastError();
    throw InputError("CUDA device " + std::to_string(device) + " does not exist (" +
                     std::to_string(count) + " present)");
  }
  check_cuda(cudaSetDevice(device), "cudaSetDevice");
}

}  // namespace swiftbalancer::device
