// Transfer plans (plan/transfer_plan.h): whole-model and one-layer plans, and their application.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "bindings.h"
#include "convert.h"
#include "swiftbalancer/plan/transfer_plan.h"

namespace swiftbalancer::python {
namespace {

py::array_t<std::int64_t> ops_array(const LayerPlan& lp) {
  py::array_t<std::int64_t> out({static_cast<py::ssize_t>(lp.ops.size()), py::ssize_t{5}});
  std::int64_t* d = out.mutable_data();
  for (const TransferOp& op : lp.ops) {
    *d++ = op.expert;
    *d++ = op.src_rank;
    *d++ = op.src_slot;
    *d++ = op.dst_rank;
    *d++ = op.dst_slot;
  }
  return out;
}

// One layer's phy2log [num_slots] as expert ids.
std::vector<ExpertId> layer_from(py::handle obj, const std::string& name, const Topology& topo) {
  py::array a = numeric_array(obj, name, true);
  check_ndim(a, name, 1, "[slots]");
  std::vector<ExpertId> ids = ids_from(a, name);
  if (static_cast<int>(ids.size()) != topo.num_slots())
    throw InputError(name + " has " + std::to_string(ids.size()) + " slots, the topology has " +
                     std::to_string(topo.num_slots()));
  return ids;
}

LayerPlan layer_plan(py::handle old_obj, py::handle new_obj, const Topology& topo, int layer,
                     int num_experts, double intra_node, double inter_node) {
  std::vector<ExpertId> a = layer_from(old_obj, "old_layer", topo);
  std::vector<ExpertId> b = layer_from(new_obj, "new_layer", topo);
  if (num_experts <= 0)
    for (ExpertId e : a) num_experts = std::max(num_experts, e + 1);
  const Placement pa(1, topo.num_slots(), num_experts, std::move(a));
  const Placement pb(1, topo.num_slots(), num_experts, std::move(b));
  const Status sa = validate_placement(pa, topo), sb = validate_placement(pb, topo);
  if (!sa.ok()) throw InputError("old_layer: " + sa.message());
  if (!sb.ok()) throw InputError("new_layer: " + sb.message());
  LinkWeights w;
  w.intra_node = intra_node;
  w.inter_node = inter_node;
  py::gil_scoped_release nogil;
  return make_layer_plan(pa.layer(0), pb.layer(0), layer, num_experts, topo, w);
}

TransferPlan transfer_plan(py::handle old_obj, py::handle new_obj, const Topology& topo,
                           double intra_node, double inter_node, int num_experts) {
  auto [a, b] = placement_pair(old_obj, new_obj, topo, num_experts, /*strict=*/true);
  LinkWeights w;
  w.intra_node = intra_node;
  w.inter_node = inter_node;
  py::gil_scoped_release nogil;
  return make_transfer_plan(a, b, topo, w);
}

py::array_t<std::int64_t> apply_plan(py::handle old_layer_obj, const LayerPlan& plan,
                                     const Topology& topo) {
  const std::vector<ExpertId> ids = layer_from(old_layer_obj, "old_layer", topo);
  const std::vector<ExpertId> out = apply_layer_plan(ids, plan, topo);
  std::vector<std::int64_t> wide(out.begin(), out.end());
  return array_of(wide, {static_cast<py::ssize_t>(wide.size())});
}

template <typename T>
std::string num(T v) {
  return std::to_string(v);
}

}  // namespace

void bind_plan(py::module_& m) {
  py::class_<TransferOp>(m, "TransferOp")
      .def_readonly("expert", &TransferOp::expert)
      .def_readonly("src_rank", &TransferOp::src_rank)
      .def_readonly("src_slot", &TransferOp::src_slot)
      .def_readonly("dst_rank", &TransferOp::dst_rank)
      .def_readonly("dst_slot", &TransferOp::dst_slot)
      .def_property_readonly("is_local", &TransferOp::is_local)
      .def("__eq__", [](const TransferOp& a, const TransferOp& b) { return a == b; })
      .def("__repr__", [](const TransferOp& o) {
        return "TransferOp(expert=" + num(o.expert) + ", src=" + num(o.src_rank) + ":" +
               num(o.src_slot) + ", dst=" + num(o.dst_rank) + ":" + num(o.dst_slot) + ")";
      });

  py::class_<LayerPlan>(m, "LayerPlan")
      .def_readonly("layer", &LayerPlan::layer)
      .def_readonly("ops", &LayerPlan::ops)
      .def_readonly("remote_ops", &LayerPlan::remote_ops)
      .def_readonly("local_ops", &LayerPlan::local_ops)
      .def_readonly("makespan", &LayerPlan::makespan)
      .def_readonly("lower_bound", &LayerPlan::lower_bound)
      .def("ops_array", &ops_array,
           "The operations as an int64 array [n][5]: expert, src_rank, src_slot, dst_rank, "
           "dst_slot.")
      .def("__repr__", [](const LayerPlan& p) {
        return "LayerPlan(layer=" + num(p.layer) + ", remote_ops=" + num(p.remote_ops) +
               ", local_ops=" + num(p.local_ops) + ")";
      });

  py::class_<TransferPlan>(m, "TransferPlan")
      .def_readonly("layers", &TransferPlan::layers)
      .def_readonly("remote_ops", &TransferPlan::remote_ops)
      .def_readonly("local_ops", &TransferPlan::local_ops)
      .def("__repr__", [](const TransferPlan& p) {
        return "TransferPlan(layers=" + num(p.layers.size()) + ", remote_ops=" + num(p.remote_ops) +
               ", local_ops=" + num(p.local_ops) + ")";
      });

  m.def("make_transfer_plan", &transfer_plan, py::arg("old"), py::arg("new"), py::arg("topology"),
        py::arg("intra_node") = 1.0, py::arg("inter_node") = 4.0, py::arg("num_experts") = 0);
  m.def("make_layer_plan", &layer_plan, py::arg("old_layer"), py::arg("new_layer"),
        py::arg("topology"), py::arg("layer") = 0, py::arg("num_experts") = 0,
        py::arg("intra_node") = 1.0, py::arg("inter_node") = 4.0);
  m.def("apply_layer_plan", &apply_plan, py::arg("old_layer"), py::arg("plan"),
        py::arg("topology"));
}

}  // namespace swiftbalancer::python
