// Balance and transfer metrics of placements (core/metrics.h).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "bindings.h"
#include "convert.h"
#include "swiftbalancer/core/metrics.h"

namespace swiftbalancer::python {
namespace {

// The per-layer field `f` of a summary as a float64 array.
template <typename F>
py::array_t<double> per_layer(const BalanceSummary& s, F f) {
  std::vector<double> v;
  for (const auto& b : s.layers) v.push_back(f(b));
  return array_of(v, {static_cast<py::ssize_t>(v.size())});
}

// Placement `name` checked against `load` and `topo` (a covering; duplicates on a rank allowed).
Placement measured_placement(py::handle obj, const std::string& name, const LoadMatrix& load,
                             const Topology& topo) {
  Placement p = placement_from(obj, name, load.experts());
  check_slots(p, topo, name);
  check_covers(p, name);
  if (p.layers() != load.layers())
    throw InputError(name + " has " + std::to_string(p.layers()) + " layers, the load has " +
                     std::to_string(load.layers()));
  return p;
}

py::array_t<double> rank_loads_of(py::handle placement_obj, py::handle load_obj,
                                  const Topology& topo) {
  const LoadMatrix load = load_from(load_obj, "load");
  const Placement p = measured_placement(placement_obj, "placement", load, topo);
  std::vector<double> all, one;
  for (int l = 0; l < p.layers(); ++l) {
    rank_loads(p.layer(l), load.row(l), topo, one);
    all.insert(all.end(), one.begin(), one.end());
  }
  return array_of(all, {py::ssize_t{p.layers()}, py::ssize_t{topo.ranks}});
}

BalanceSummary summary_of(py::handle placement_obj, py::handle load_obj, const Topology& topo) {
  const LoadMatrix load = load_from(load_obj, "load");
  const Placement p = measured_placement(placement_obj, "placement", load, topo);
  py::gil_scoped_release nogil;
  return balance_summary(p, load, topo);
}

TransferSummary transfers_of(py::handle old_obj, py::handle new_obj, const Topology& topo,
                             int num_experts) {
  auto [a, b] = placement_pair(old_obj, new_obj, topo, num_experts, /*strict=*/false);
  py::gil_scoped_release nogil;
  return transfer_summary(a, b, topo);
}

}  // namespace

void bind_metrics(py::module_& m) {
  m.def("rank_loads", &rank_loads_of, py::arg("placement"), py::arg("load"), py::arg("topology"));

  py::class_<BalanceSummary>(m, "BalanceSummary")
      .def_readonly("mean_imbalance", &BalanceSummary::mean_imbalance)
      .def_readonly("max_imbalance", &BalanceSummary::max_imbalance)
      .def_readonly("layers_with_load", &BalanceSummary::layers_with_load)
      .def_property_readonly(
          "imbalance",
          [](const BalanceSummary& s) { return per_layer(s, [](auto& b) { return b.imbalance; }); })
      .def_property_readonly("max_rank_load",
                             [](const BalanceSummary& s) {
                               return per_layer(s, [](auto& b) { return b.max_rank_load; });
                             })
      .def_property_readonly("mean_rank_load",
                             [](const BalanceSummary& s) {
                               return per_layer(s, [](auto& b) { return b.mean_rank_load; });
                             })
      .def("__repr__", [](const BalanceSummary& s) {
        return "BalanceSummary(mean_imbalance=" + std::to_string(s.mean_imbalance) +
               ", max_imbalance=" + std::to_string(s.max_imbalance) +
               ", layers_with_load=" + std::to_string(s.layers_with_load) + ")";
      });
  m.def("balance_summary", &summary_of, py::arg("placement"), py::arg("load"), py::arg("topology"));

  py::class_<TransferSummary>(m, "TransferSummary")
      .def_readonly("total", &TransferSummary::total)
      .def_property_readonly("per_layer",
                             [](const TransferSummary& s) {
                               return array_of(s.per_layer,
                                               {static_cast<py::ssize_t>(s.per_layer.size())});
                             })
      .def("__repr__", [](const TransferSummary& s) {
        return "TransferSummary(total=" + std::to_string(s.total) + ")";
      });
  m.def("transfer_summary", &transfers_of, py::arg("old"), py::arg("new"), py::arg("topology"),
        py::arg("num_experts") = 0);
}

}  // namespace swiftbalancer::python
