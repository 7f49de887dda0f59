// InProcessWorld and the per-rank Balancer (py_balancer.h); step stats and counters as dicts.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "py_balancer.h"
#include "runtime_bindings.h"
#include "shared_bindings.h"

namespace swiftbalancer::python {
namespace {

const RoutingTable& table_with_expert(const PyBalancer& b, int layer, int expert) {
  const RoutingTable& t = b.table(layer);
  if (expert < 0 || expert >= t.experts()) throw InputError("expert out of range");
  return t;
}

py::array_t<std::int64_t> phy2log(const PyBalancer& b, int layer) {
  const auto v = b.table(layer).phy2log();
  py::array_t<std::int64_t> out(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

int select(const PyBalancer& b, int layer, int expert, std::int64_t token_index, int src_rank) {
  const RoutingTable& t = table_with_expert(b, layer, expert);
  if (token_index < 0) throw InputError("token_index must not be negative");
  if (src_rank < 0 || src_rank >= t.num_slots()) throw InputError("src_rank out of range");
  return t.select(expert, token_index, src_rank);
}

}  // namespace

void bind_balancer(py::module_& m) {
  // The rows of SWIFTBALANCER_COUNTER_FIELDS (runtime/report_fields.h), so that tests can check
  // every one: (counters() key, Prometheus family after swiftbalancer_, its label or "").
  py::list fields;
#define SWIFTBALANCER_FIELD_ROW(field, type, kind, family, label, demo, help) \
  fields.append(py::make_tuple(#field, family, label));
  SWIFTBALANCER_COUNTER_FIELDS(SWIFTBALANCER_FIELD_ROW)
#undef SWIFTBALANCER_FIELD_ROW
  m.attr("COUNTER_FIELDS") = py::tuple(fields);

  py::class_<InProcessWorld, std::shared_ptr<InProcessWorld>>(m, "InProcessWorld")
      .def(py::init<int>(), py::arg("ranks"))
      .def_property_readonly("size", &InProcessWorld::size);

  py::class_<PyBalancer>(m, "Balancer")
      .def(py::init<std::shared_ptr<InProcessWorld>, const Topology&, int, const std::string&,
                    const py::array&, const BalancerConfig&>(),
           py::arg("world"), py::arg("topology"), py::arg("rank"), py::arg("policy"),
           py::arg("initial"), py::arg("config"))
      .def("register_expert", &PyBalancer::register_expert, py::arg("layer"), py::arg("slot"),
           py::arg("tensors"))
      .def("record", &PyBalancer::record, py::arg("layer"), py::arg("counts"))
      .def("before_forward", &PyBalancer::before_forward)
      .def("after_forward", [](PyBalancer& b) { return stats_dict(b.after_forward()); })
      .def("phy2log", &phy2log, py::arg("layer"))
      .def(
          "replicas",
          [](const PyBalancer& b, int layer, int expert) {
            const auto r = table_with_expert(b, layer, expert).replicas(expert);
            return std::vector<std::int32_t>(r.begin(), r.end());
          },
          py::arg("layer"), py::arg("expert"))
      .def("select", &select, py::arg("layer"), py::arg("expert"), py::arg("token_index"),
           py::arg("src_rank"))
      .def_property_readonly("placement", &PyBalancer::placement)
      .def_property_readonly(
          "config", [](const PyBalancer& b) { return BalancerConfig(b.balancer().config()); })
      .def_property_readonly("step", [](const PyBalancer& b) { return b.balancer().step(); })
      .def("counters", [](const PyBalancer& b) { return counters_dict(b.counters()); })
      .def(
          "metrics_text", [](const PyBalancer& b) { return b.balancer().metrics_text(); },
          "counters() in Prometheus text exposition (the C++ metrics_text)");
}

}  // namespace swiftbalancer::python
