// The parts of the swiftbalancer._core extension, one function per job; module.cpp calls them in
// order. Owner: the Python module (python/). Each binds into `m` and relies on the conversions of
// convert.h; none keeps state.
#pragma once

#include <pybind11/pybind11.h>

namespace swiftbalancer::python {

void bind_topology(pybind11::module_& m);   // Topology, policy_names
void bind_dropins(pybind11::module_& m);    // deepseek-ai/EPLB, vLLM, SGLang, vllm-ascend hooks
void bind_policy(pybind11::module_& m);     // rebalance, align_to_current
void bind_plan(pybind11::module_& m);       // transfer plans
void bind_placement(pybind11::module_& m);  // placement helpers
void bind_metrics(pybind11::module_& m);    // balance and transfer summaries, rank loads
void bind_io(pybind11::module_& m);         // file readers and writers

}  // namespace swiftbalancer::python
