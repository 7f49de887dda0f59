// Conversions between Python arrays (numpy, torch via numpy views, nested lists) and the
// library's value types, for the bindings in this folder. Owner: the Python module (python/).
//
// Every function here runs with the GIL held (it touches Python objects) and throws InputError
// naming the argument at fault; the bindings release the GIL only after converting. Inputs of a
// numeric dtype the library reads natively (int32, int64, float32, float64) are read in place
// and converted element by element into the library type: no widened temporary array.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "swiftbalancer/core/load_matrix.h"
#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/core/topology.h"
#include "swiftbalancer/policy/policy.h"

namespace swiftbalancer::python {

namespace py = pybind11;

std::string shape_string(const py::array& a);

// Any array-like as a numpy array of a real numeric dtype; integers only when `integral`.
py::array numeric_array(py::handle obj, const std::string& name, bool integral);

// a.ndim() == ndim, no empty dimension, each dimension below INT_MAX / 2.
void check_ndim(const py::array& a, const std::string& name, int ndim, const char* dims);

inline int to_int(py::ssize_t v) {
  return static_cast<int>(v);
}

// Loads [L][E], or [T][L][E] summed over T (a window of steps, as SGLang and vLLM keep it);
// finite and non-negative (the message names the first bad entry).
LoadMatrix load_from(py::handle obj, const std::string& name, bool allow_window = false);

// The integer array as expert ids, each in [-1, INT32_MAX].
std::vector<ExpertId> ids_from(const py::array& a, const std::string& name);

// phy2log [L][num_slots] for `experts` logical experts (experts <= 0: the largest id + 1).
Placement placement_from(py::handle obj, const std::string& name, int experts);

void check_slots(const Placement& p, const Topology& topo, const std::string& name);

// Every id in [0, experts) and every expert present in every layer. Two replicas of one expert
// on a rank are allowed here (deepseek-ai/EPLB's own output can have them).
void check_covers(const Placement& p, const std::string& name);

// Two placements of one model ("old", "new"): the expert count is the larger id + 1 unless
// given; strict: both valid for topo (validate_placement), else coverings (check_covers).
std::pair<Placement, Placement> placement_pair(py::handle old_obj, py::handle new_obj,
                                               const Topology& topo, int num_experts, bool strict);

PolicyOptions options_of(int num_groups, std::int64_t max_transfers, double threshold);

template <typename T>
py::array_t<T> array_of(const std::vector<T>& v, std::vector<py::ssize_t> shape) {
  py::array_t<T> out(shape);
  if (!v.empty()) std::memcpy(out.mutable_data(), v.data(), v.size() * sizeof(T));
  return out;
}

// Hands the vector's memory to a numpy array (no copy); shape must multiply to v.size().
template <typename T>
py::array_t<T> array_from(std::vector<T>&& v, std::vector<py::ssize_t> shape) {
  auto* owned = new std::vector<T>(std::move(v));
  py::capsule free_when_done(owned, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(shape, owned->data(), free_when_done);
}

// phy2log as int64 [L][num_slots].
py::array_t<std::int64_t> placement_array(const Placement& p);

}  // namespace swiftbalancer::python
