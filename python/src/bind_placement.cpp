// Placement helpers: validation, the contiguous placement and the dense log2phy form.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "bindings.h"
#include "convert.h"
#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/plan/routing_table.h"

namespace swiftbalancer::python {
namespace {

py::tuple dense(py::handle obj, int num_experts) {
  const Placement p = placement_from(obj, "phy2log", num_experts);
  for (ExpertId e : p.data())
    if (e < 0 || e >= p.experts())
      throw InputError("phy2log holds expert id " + std::to_string(e) + " outside [0, " +
                       std::to_string(p.experts()) + ")");
  const DenseLog2Phy d = dense_log2phy(p);
  std::vector<std::int64_t> data(d.data.begin(), d.data.end());
  std::vector<std::int64_t> cnt;
  cnt.reserve(static_cast<std::size_t>(p.layers()) * p.experts());
  for (int l = 0; l < p.layers(); ++l)
    for (int c : replica_counts(p.layer(l), p.experts())) cnt.push_back(c);
  const py::ssize_t L = d.layers, E = d.experts;
  return py::make_tuple(array_of(data, {L, E, py::ssize_t{d.max_replicas}}), array_of(cnt, {L, E}));
}

}  // namespace

void bind_placement(py::module_& m) {
  m.def(
      "validate_placement",
      [](py::handle obj, const Topology& topo, int num_experts) {
        const Placement p = placement_from(obj, "placement", num_experts);
        throw_if_error(validate_placement(p, topo));
      },
      py::arg("placement"), py::arg("topology"), py::arg("num_experts"));
  m.def(
      "contiguous_placement",
      [](const Topology& topo, int layers, int experts) {
        if (layers <= 0 || experts <= 0) throw InputError("layers and experts must be positive");
        throw_if_error(topo.validate(experts));
        if (topo.slots_per_rank > experts)
          throw InputError("slots per rank exceed the experts: a rank would hold two replicas");
        return placement_array(contiguous_placement(topo, layers, experts));
      },
      py::arg("topology"), py::arg("layers"), py::arg("experts"));
  m.def("dense_log2phy", &dense, py::arg("phy2log"), py::arg("num_experts"));
}

}  // namespace swiftbalancer::python
