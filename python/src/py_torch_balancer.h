// The Python object of swiftbalancer._torch.Balancer: owns the TorchBalancer until close().
// Owner: the Python instance (pybind11's holder). Not thread-safe: one serving thread calls it,
// with the GIL held on entry (the calls that wait release it themselves).
#pragma once

#include <memory>

#include "swiftbalancer/core/status.h"
#include "swiftbalancer/torch/torch_balancer.h"

namespace swiftbalancer::python {

class PyTorchBalancer {
 public:
  explicit PyTorchBalancer(std::unique_ptr<torch_engine::TorchBalancer> b) : b_(std::move(b)) {}
  ~PyTorchBalancer() { close(); }
  PyTorchBalancer(const PyTorchBalancer&) = delete;
  PyTorchBalancer& operator=(const PyTorchBalancer&) = delete;

  torch_engine::TorchBalancer& get() const {
    if (!b_) throw InputError("the balancer is closed");
    return *b_;
  }
  // Stops the worker, which may be running the policy: called with the GIL held, it releases
  // the GIL while it waits (defined in torch_module.cpp, where pybind11 is).
  void close();

 private:
  std::unique_ptr<torch_engine::TorchBalancer> b_;
};

}  // namespace swiftbalancer::python
