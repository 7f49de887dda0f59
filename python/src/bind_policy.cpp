// A policy by name over a load and (optionally) the placement in service; slot alignment.
#include <pybind11/pybind11.h>

#include "bindings.h"
#include "convert.h"
#include "swiftbalancer/compat/align.h"

namespace swiftbalancer::python {
namespace {

py::array_t<std::int64_t> rebalance(py::handle load_obj, const Topology& topo,
                                    const std::string& policy, py::object current_obj,
                                    int num_groups, std::int64_t max_transfers, double threshold) {
  const LoadMatrix load = load_from(load_obj, "load");
  Placement current;
  if (!current_obj.is_none()) {
    current = placement_from(current_obj, "current", load.experts());
    check_slots(current, topo, "current");
  }
  Placement out;
  {
    py::gil_scoped_release nogil;
    const auto p = make_policy(policy);
    PolicyInput in{topo, load, current.empty() ? nullptr : &current,
                   options_of(num_groups, max_transfers, threshold)};
    out = p->rebalance(in);
  }
  return placement_array(out);
}

py::array_t<std::int64_t> align(py::handle current_obj, py::handle new_obj, const Topology& topo,
                                int num_experts) {
  Placement cur = placement_from(current_obj, "current", num_experts);
  Placement next = placement_from(new_obj, "new", cur.experts());
  check_slots(cur, topo, "current");
  check_slots(next, topo, "new");
  if (cur.layers() != next.layers())
    throw InputError("current and new have different layer counts");
  compat::align_to_current(cur, next, topo);
  return placement_array(next);
}

}  // namespace

void bind_policy(py::module_& m) {
  m.def("rebalance", &rebalance, py::arg("load"), py::arg("topology"), py::arg("policy"),
        py::arg("current"), py::arg("num_groups"), py::arg("max_transfers"), py::arg("threshold"));
  m.def("align_to_current", &align, py::arg("current"), py::arg("new"), py::arg("topology"),
        py::arg("num_experts"));
}

}  // namespace swiftbalancer::python
