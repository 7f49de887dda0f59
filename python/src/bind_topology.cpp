// Topology (ranks x slots per rank, ranks per node) and the policy registry's names.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "bindings.h"
#include "swiftbalancer/core/topology.h"
#include "swiftbalancer/policy/policy.h"

namespace swiftbalancer::python {

namespace py = pybind11;

void bind_topology(py::module_& m) {
  py::class_<Topology>(m, "Topology",
                       "Ranks x slots per rank, ranks_per_node ranks on each node (0: one node).")
      .def(py::init([](int ranks, int slots_per_rank, int ranks_per_node) {
             return Topology::make(ranks, slots_per_rank, ranks_per_node);
           }),
           py::arg("ranks"), py::arg("slots_per_rank"), py::arg("ranks_per_node") = 0)
      .def_readonly("ranks", &Topology::ranks)
      .def_readonly("slots_per_rank", &Topology::slots_per_rank)
      .def_readonly("ranks_per_node", &Topology::ranks_per_node)
      .def_property_readonly("num_slots", &Topology::num_slots)
      .def_property_readonly("nodes", &Topology::nodes)
      .def("__eq__", [](const Topology& a, const Topology& b) { return a == b; })
      .def("__repr__", [](const Topology& t) {
        return "Topology(ranks=" + std::to_string(t.ranks) +
               ", slots_per_rank=" + std::to_string(t.slots_per_rank) +
               ", ranks_per_node=" + std::to_string(t.ranks_per_node) + ")";
      });
  m.def("policy_names", &policy_names, "Names accepted by rebalance(policy=...).");
}

}  // namespace swiftbalancer::python
