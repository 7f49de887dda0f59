// The parts of the swiftbalancer._runtime extension; runtime_module.cpp calls them in order.
// Owner: the Python module (python/).
#pragma once

#include <pybind11/pybind11.h>

namespace swiftbalancer::python {

// BalancerConfig and the option structs in it (PolicyOptions, LinkWeights, FaultInjection):
// every field, with the C++ defaults of a default-constructed object. Timeouts in milliseconds
// (`<name>_ms`), the mode and the fault kind as their names, the log sink as a Python callable.
void bind_balancer_config(pybind11::module_& m);

// InProcessWorld and the per-rank Balancer (py_balancer.h).
void bind_balancer(pybind11::module_& m);

}  // namespace swiftbalancer::python
