// The serving thread's calls of swiftbalancer._torch.Balancer as plain CPython methods
// (descriptors on the class: before_forward and after_forward METH_NOARGS; record, record_step
// and route METH_FASTCALL | METH_KEYWORDS), and StepStats as a struct sequence.
//
// Why not pybind11's dispatcher: these run on the serving thread every step (record and route
// once per layer), right after the engine's collectives, on caches the host's other threads
// have just used. There, pybind11's argument dispatch and a dict of the step's figures cost the
// serving thread about 30 us a step against the runtime's own 5 (examples/torch_ep on 2 cores),
// and its dispatch of record(layer, counts) a few us a layer; a method descriptor and one struct
// sequence cost a fraction of that (bench/torch_serving_calls.py, docs/torch.md). The other
// methods stay on pybind11.
#pragma once

#include <pybind11/pybind11.h>

#include "py_torch_balancer.h"

namespace swiftbalancer::python {

// Adds StepStats to `m` and the five methods to `cls`. Call once, at module init.
void add_serving_calls(pybind11::module_& m, pybind11::class_<PyTorchBalancer>& cls);

}  // namespace swiftbalancer::python
