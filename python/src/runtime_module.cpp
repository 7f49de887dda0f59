// swiftbalancer._runtime: the asynchronous balancer (runtime/balancer.h) over the in-process
// transport, for Python. Owner: the Python module (python/). A separate extension from _core so
// that the drop-ins never depend on the runtime. Threading and buffer ownership: py_balancer.h.
#include <pybind11/pybind11.h>

#include "runtime_bindings.h"
#include "swiftbalancer/core/status.h"

PYBIND11_MODULE(_runtime, m) {
  using namespace swiftbalancer;
  using namespace swiftbalancer::python;
  m.doc() = "The asynchronous balancer over in-process ranks (use swiftbalancer.runtime).";
  pybind11::module_::import("swiftbalancer._core");  // Topology's type

  pybind11::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const InputError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  bind_balancer_config(m);
  bind_balancer(m);
}
