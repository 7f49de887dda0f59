// swiftbalancer._core: pybind11 bindings of the C++ library. Owner: the Python module (python/).
//
// The bindings only convert: arrays in (checked for shape, dtype and range and converted into
// the library's value types while holding the GIL, see convert.h), the C++ work with the GIL
// released, numpy arrays out. InputError becomes ValueError with the same message. The Python
// package (swiftbalancer/__init__.py) adds torch tensors, keyword defaults and the drop-in classes.
#include <pybind11/pybind11.h>

#include "bindings.h"
#include "swiftbalancer/core/status.h"

PYBIND11_MODULE(_core, m) {
  using namespace swiftbalancer;
  using namespace swiftbalancer::python;
  m.doc() = "C++ core of swiftbalancer (use the swiftbalancer package, not this module).";

  pybind11::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const InputError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  bind_topology(m);
  bind_dropins(m);
  bind_policy(m);
  bind_plan(m);
  bind_placement(m);
  bind_metrics(m);
  bind_io(m);
}
