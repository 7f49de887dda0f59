// swiftbalancer._core: pybind11 bindings of the C++ library. Owner: the Python module (python/).
//
// The bindings only convert: numpy arrays in (checked for shape, dtype and range, copied into the
// library's value types while holding the GIL), the C++ work with the GIL released, numpy arrays
// out. InputError becomes ValueError with the same message. The Python package
// (swiftbalancer/__init__.py) adds torch tensors, keyword defaults and the drop-in classes.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "dropin.h"
#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/io/load_io.h"
#include "swiftbalancer/io/placement_io.h"
#include "swiftbalancer/plan/transfer_plan.h"
#include "swiftbalancer/policy/policy.h"

namespace py = pybind11;

namespace swiftbalancer::python {
namespace {

using F64Array = py::array_t<double, py::array::c_style | py::array::forcecast>;
using I64Array = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;

std::string shape_string(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

// Any array-like as a numpy array of a real numeric dtype; ints only when `integral`.
py::array numeric_array(py::handle obj, const std::string& name, bool integral) {
  py::array a = py::array::ensure(obj);
  if (!a) throw InputError(name + " must be an array (numpy array, torch tensor or nested lists)");
  const char kind = a.dtype().kind();
  const bool ok =
      integral ? (kind == 'i' || kind == 'u') : (kind == 'i' || kind == 'u' || kind == 'f');
  if (!ok)
    throw InputError(name + " must have " + (integral ? "an integer" : "a real numeric") +
                     " dtype, got " + std::string(py::str(a.dtype())));
  return a;
}

void check_ndim(const py::array& a, const std::string& name, int ndim, const char* dims) {
  if (a.ndim() != ndim)
    throw InputError(name + " must be " + std::to_string(ndim) + "-D " + dims + ", got shape " +
                     shape_string(a));
  for (int i = 0; i < ndim; ++i) {
    if (a.shape(i) <= 0)
      throw InputError(name + " must not be empty, got shape " + shape_string(a));
    if (a.shape(i) > INT_MAX / 2) throw InputError(name + " is too large: " + shape_string(a));
  }
}

int to_int(py::ssize_t v) {
  return static_cast<int>(v);
}

// [L][E] loads; finite and non-negative (the message names the first bad entry).
LoadMatrix load_from(py::handle obj, const std::string& name) {
  py::array a = numeric_array(obj, name, false);
  check_ndim(a, name, 2, "[layers][experts]");
  F64Array d = F64Array::ensure(a);
  const int layers = to_int(a.shape(0)), experts = to_int(a.shape(1));
  LoadMatrix m(layers, experts, std::vector<double>(d.data(), d.data() + d.size()));
  const Status s = m.validate();
  if (!s.ok()) throw InputError(name + ": " + s.message());
  return m;
}

// Integer array of ndim dimensions as expert ids (each in [-1, INT32_MAX]; validation of ranges
// against the expert count is the library's job).
std::vector<ExpertId> ids_from(const py::array& a, const std::string& name) {
  I64Array d = I64Array::ensure(a);
  std::vector<ExpertId> out(static_cast<std::size_t>(d.size()));
  const std::int64_t* p = d.data();
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (p[i] < -1 || p[i] > INT32_MAX)
      throw InputError(name + " holds " + std::to_string(p[i]) + " at flat index " +
                       std::to_string(i) + ", not an expert id");
    out[i] = static_cast<ExpertId>(p[i]);
  }
  return out;
}

int max_id_plus_one(const std::vector<ExpertId>& ids) {
  ExpertId m = -1;
  for (ExpertId e : ids) m = std::max(m, e);
  return m + 1;
}

// phy2log [L][num_slots] for `experts` logical experts (experts <= 0: the largest id + 1).
Placement placement_from(py::handle obj, const std::string& name, int experts) {
  py::array a = numeric_array(obj, name, true);
  check_ndim(a, name, 2, "[layers][slots]");
  std::vector<ExpertId> ids = ids_from(a, name);
  if (experts <= 0) experts = max_id_plus_one(ids);
  if (experts <= 0) throw InputError(name + " holds no expert ids");
  return Placement(to_int(a.shape(0)), to_int(a.shape(1)), experts, std::move(ids));
}

void check_slots(const Placement& p, const Topology& topo, const std::string& name) {
  if (p.num_slots() != topo.num_slots())
    throw InputError(name + " has " + std::to_string(p.num_slots()) +
                     " slots per layer, the topology has " + std::to_string(topo.ranks) + " x " +
                     std::to_string(topo.slots_per_rank) + " = " +
                     std::to_string(topo.num_slots()));
}

template <typename T>
py::array_t<T> array_of(const std::vector<T>& v, std::vector<py::ssize_t> shape) {
  py::array_t<T> out(shape);
  if (!v.empty()) std::memcpy(out.mutable_data(), v.data(), v.size() * sizeof(T));
  return out;
}

py::array_t<std::int64_t> placement_array(const Placement& p) {
  py::array_t<std::int64_t> out(
      {static_cast<py::ssize_t>(p.layers()), static_cast<py::ssize_t>(p.num_slots())});
  std::int64_t* d = out.mutable_data();
  const auto& src = p.data();
  for (std::size_t i = 0; i < src.size(); ++i) d[i] = src[i];
  return out;
}

// For metrics: every id in [0, experts) and every expert present in every layer. Two replicas of
// one expert on a rank are allowed here (deepseek-ai/EPLB's own output can have them).
void check_covers(const Placement& p, const std::string& name) {
  std::vector<int> seen(static_cast<std::size_t>(p.experts()));
  for (int l = 0; l < p.layers(); ++l) {
    std::fill(seen.begin(), seen.end(), 0);
    for (ExpertId e : p.layer(l)) {
      if (e < 0 || e >= p.experts())
        throw InputError(name + ": layer " + std::to_string(l) + " holds expert id " +
                         std::to_string(e) + " outside [0, " + std::to_string(p.experts()) + ")");
      seen[e] = 1;
    }
    for (int e = 0; e < p.experts(); ++e)
      if (!seen[e])
        throw InputError(name + ": layer " + std::to_string(l) + " has no replica of expert " +
                         std::to_string(e));
  }
}

PolicyOptions options_of(int num_groups, std::int64_t max_transfers, double threshold) {
  PolicyOptions o;
  o.num_groups = num_groups;
  o.max_transfers = max_transfers;
  o.threshold = threshold;
  return o;
}

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

}  // namespace
}  // namespace swiftbalancer::python

PYBIND11_MODULE(_core, m) {
  using namespace swiftbalancer;
  using namespace swiftbalancer::python;
  m.doc() = "C++ core of swiftbalancer (use the swiftbalancer package, not this module).";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const InputError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

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

  m.def(
      "deepseek_rebalance_experts",
      [](py::handle weight, int num_replicas, int num_groups, int num_nodes, int num_gpus) {
        const LoadMatrix load = load_from(weight, "weight");
        DeepSeekResult r;
        {
          py::gil_scoped_release nogil;
          r = deepseek_rebalance_experts(load, num_replicas, num_groups, num_nodes, num_gpus);
        }
        const py::ssize_t L = load.layers(), E = load.experts();
        return py::make_tuple(placement_array(r.placement),
                              array_of(r.log2phy, {L, E, py::ssize_t{r.max_replicas}}),
                              array_of(r.logcnt, {L, E}));
      },
      py::arg("weight"), py::arg("num_replicas"), py::arg("num_groups"), py::arg("num_nodes"),
      py::arg("num_gpus"));

  m.def(
      "ascend_rebalance",
      [](py::handle table_obj, py::handle workload_obj, int ranks_per_node, int num_experts,
         const std::string& policy, int num_groups, std::int64_t max_transfers, double threshold,
         double min_improvement) {
        py::array table = numeric_array(table_obj, "current_expert_table", true);
        check_ndim(table, "current_expert_table", 3, "[layers][ranks][slots]");
        py::array work = numeric_array(workload_obj, "expert_workload", false);
        check_ndim(work, "expert_workload", 3, "[layers][ranks][slots]");
        for (int i = 0; i < 3; ++i)
          if (work.shape(i) != table.shape(i))
            throw InputError("expert_workload has shape " + shape_string(work) +
                             ", current_expert_table has " + shape_string(table));
        const int L = to_int(table.shape(0)), R = to_int(table.shape(1)),
                  S = to_int(table.shape(2));
        const Topology topo = Topology::make(R, S, ranks_per_node);
        std::vector<ExpertId> ids = ids_from(table, "current_expert_table");
        if (num_experts <= 0) {  // vllm-ascend: the distinct ids of the first layer
          std::vector<ExpertId> first(ids.begin(), ids.begin() + topo.num_slots());
          std::sort(first.begin(), first.end());
          num_experts = static_cast<int>(std::unique(first.begin(), first.end()) - first.begin());
        }
        const Placement current(L, topo.num_slots(), num_experts, std::move(ids));
        F64Array w = F64Array::ensure(work);
        std::vector<double> workload(w.data(), w.data() + w.size());
        AscendResult r;
        {
          py::gil_scoped_release nogil;
          r = ascend_rebalance(current, workload, topo, policy,
                               options_of(num_groups, max_transfers, threshold), min_improvement);
        }
        py::object table_out = placement_array(r.placement).attr("reshape")(L, R, S);
        return py::make_tuple(r.changed, array_of(r.priority, {py::ssize_t{L}}), table_out,
                              array_of(r.max_load_before, {py::ssize_t{L}}),
                              array_of(r.max_load_after, {py::ssize_t{L}}));
      },
      py::arg("current_expert_table"), py::arg("expert_workload"), py::arg("ranks_per_node"),
      py::arg("num_experts"), py::arg("policy"), py::arg("num_groups"), py::arg("max_transfers"),
      py::arg("threshold"), py::arg("min_improvement"));

  m.def(
      "rebalance",
      [](py::handle load_obj, const Topology& topo, const std::string& policy,
         py::object current_obj, int num_groups, std::int64_t max_transfers, double threshold) {
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
      },
      py::arg("load"), py::arg("topology"), py::arg("policy"), py::arg("current"),
      py::arg("num_groups"), py::arg("max_transfers"), py::arg("threshold"));

  m.def(
      "align_to_current",
      [](py::handle current_obj, py::handle new_obj, const Topology& topo, int num_experts) {
        Placement cur = placement_from(current_obj, "current", num_experts);
        Placement next = placement_from(new_obj, "new", cur.experts());
        check_slots(cur, topo, "current");
        check_slots(next, topo, "new");
        if (cur.layers() != next.layers())
          throw InputError("current and new have different layer counts");
        align_to_current(cur, next, topo);
        return placement_array(next);
      },
      py::arg("current"), py::arg("new"), py::arg("topology"), py::arg("num_experts"));

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

  m.def(
      "dense_log2phy",
      [](py::handle obj, int num_experts) {
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
        return py::make_tuple(array_of(data, {L, E, py::ssize_t{d.max_replicas}}),
                              array_of(cnt, {L, E}));
      },
      py::arg("phy2log"), py::arg("num_experts"));

  m.def(
      "rank_loads",
      [](py::handle placement_obj, py::handle load_obj, const Topology& topo) {
        const LoadMatrix load = load_from(load_obj, "load");
        const Placement p = placement_from(placement_obj, "placement", load.experts());
        check_slots(p, topo, "placement");
        check_covers(p, "placement");
        if (p.layers() != load.layers())
          throw InputError("placement has " + std::to_string(p.layers()) +
                           " layers, the load has " + std::to_string(load.layers()));
        std::vector<double> all, one;
        for (int l = 0; l < p.layers(); ++l) {
          rank_loads(p.layer(l), load.row(l), topo, one);
          all.insert(all.end(), one.begin(), one.end());
        }
        return array_of(all, {py::ssize_t{p.layers()}, py::ssize_t{topo.ranks}});
      },
      py::arg("placement"), py::arg("load"), py::arg("topology"));

  py::class_<BalanceSummary>(m, "BalanceSummary")
      .def_readonly("mean_imbalance", &BalanceSummary::mean_imbalance)
      .def_readonly("max_imbalance", &BalanceSummary::max_imbalance)
      .def_readonly("layers_with_load", &BalanceSummary::layers_with_load)
      .def_property_readonly("imbalance",
                             [](const BalanceSummary& s) {
                               std::vector<double> v;
                               for (const auto& b : s.layers) v.push_back(b.imbalance);
                               return array_of(v, {static_cast<py::ssize_t>(v.size())});
                             })
      .def_property_readonly("max_rank_load",
                             [](const BalanceSummary& s) {
                               std::vector<double> v;
                               for (const auto& b : s.layers) v.push_back(b.max_rank_load);
                               return array_of(v, {static_cast<py::ssize_t>(v.size())});
                             })
      .def_property_readonly("mean_rank_load",
                             [](const BalanceSummary& s) {
                               std::vector<double> v;
                               for (const auto& b : s.layers) v.push_back(b.mean_rank_load);
                               return array_of(v, {static_cast<py::ssize_t>(v.size())});
                             })
      .def("__repr__", [](const BalanceSummary& s) {
        return "BalanceSummary(mean_imbalance=" + std::to_string(s.mean_imbalance) +
               ", max_imbalance=" + std::to_string(s.max_imbalance) +
               ", layers_with_load=" + std::to_string(s.layers_with_load) + ")";
      });

  m.def(
      "balance_summary",
      [](py::handle placement_obj, py::handle load_obj, const Topology& topo) {
        const LoadMatrix load = load_from(load_obj, "load");
        const Placement p = placement_from(placement_obj, "placement", load.experts());
        check_slots(p, topo, "placement");
        check_covers(p, "placement");
        py::gil_scoped_release nogil;
        return balance_summary(p, load, topo);
      },
      py::arg("placement"), py::arg("load"), py::arg("topology"));

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

  // Two placements of one model: the expert count is the larger id + 1 unless given.
  auto pair_from = [](py::handle old_obj, py::handle new_obj, const Topology& topo, int num_experts,
                      bool strict) {
    Placement a = placement_from(old_obj, "old", num_experts);
    Placement b = placement_from(new_obj, "new", num_experts);
    if (num_experts <= 0 && a.experts() != b.experts()) {
      const int e = std::max(a.experts(), b.experts());
      a = Placement(a.layers(), a.num_slots(), e, a.data());
      b = Placement(b.layers(), b.num_slots(), e, b.data());
    }
    check_slots(a, topo, "old");
    check_slots(b, topo, "new");
    if (a.layers() != b.layers())
      throw InputError("old has " + std::to_string(a.layers()) + " layers, new has " +
                       std::to_string(b.layers()));
    if (strict) {
      throw_if_error(validate_placement(a, topo));
      throw_if_error(validate_placement(b, topo));
    } else {
      check_covers(a, "old");
      check_covers(b, "new");
    }
    return std::make_pair(std::move(a), std::move(b));
  };

  m.def(
      "transfer_summary",
      [pair_from](py::handle old_obj, py::handle new_obj, const Topology& topo, int num_experts) {
        auto [a, b] = pair_from(old_obj, new_obj, topo, num_experts, false);
        py::gil_scoped_release nogil;
        return transfer_summary(a, b, topo);
      },
      py::arg("old"), py::arg("new"), py::arg("topology"), py::arg("num_experts") = 0);

  py::class_<TransferOp>(m, "TransferOp")
      .def_readonly("expert", &TransferOp::expert)
      .def_readonly("src_rank", &TransferOp::src_rank)
      .def_readonly("src_slot", &TransferOp::src_slot)
      .def_readonly("dst_rank", &TransferOp::dst_rank)
      .def_readonly("dst_slot", &TransferOp::dst_slot)
      .def_property_readonly("is_local", &TransferOp::is_local)
      .def("__eq__", [](const TransferOp& a, const TransferOp& b) { return a == b; })
      .def("__repr__", [](const TransferOp& o) {
        return "TransferOp(expert=" + std::to_string(o.expert) +
               ", src=" + std::to_string(o.src_rank) + ":" + std::to_string(o.src_slot) +
               ", dst=" + std::to_string(o.dst_rank) + ":" + std::to_string(o.dst_slot) + ")";
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
        return "LayerPlan(layer=" + std::to_string(p.layer) +
               ", remote_ops=" + std::to_string(p.remote_ops) +
               ", local_ops=" + std::to_string(p.local_ops) + ")";
      });

  py::class_<TransferPlan>(m, "TransferPlan")
      .def_readonly("layers", &TransferPlan::layers)
      .def_readonly("remote_ops", &TransferPlan::remote_ops)
      .def_readonly("local_ops", &TransferPlan::local_ops)
      .def("__repr__", [](const TransferPlan& p) {
        return "TransferPlan(layers=" + std::to_string(p.layers.size()) +
               ", remote_ops=" + std::to_string(p.remote_ops) +
               ", local_ops=" + std::to_string(p.local_ops) + ")";
      });

  m.def(
      "make_transfer_plan",
      [pair_from](py::handle old_obj, py::handle new_obj, const Topology& topo, double intra_node,
                  double inter_node, int num_experts) {
        auto [a, b] = pair_from(old_obj, new_obj, topo, num_experts, true);
        LinkWeights w;
        w.intra_node = intra_node;
        w.inter_node = inter_node;
        py::gil_scoped_release nogil;
        return make_transfer_plan(a, b, topo, w);
      },
      py::arg("old"), py::arg("new"), py::arg("topology"), py::arg("intra_node") = 1.0,
      py::arg("inter_node") = 4.0, py::arg("num_experts") = 0);

  m.def(
      "apply_layer_plan",
      [](py::handle old_layer_obj, const LayerPlan& plan, const Topology& topo) {
        py::array a = numeric_array(old_layer_obj, "old_layer", true);
        check_ndim(a, "old_layer", 1, "[slots]");
        const std::vector<ExpertId> ids = ids_from(a, "old_layer");
        if (static_cast<int>(ids.size()) != topo.num_slots())
          throw InputError("old_layer has " + std::to_string(ids.size()) +
                           " slots, the topology has " + std::to_string(topo.num_slots()));
        const std::vector<ExpertId> out = apply_layer_plan(ids, plan, topo);
        std::vector<std::int64_t> wide(out.begin(), out.end());
        return array_of(wide, {static_cast<py::ssize_t>(wide.size())});
      },
      py::arg("old_layer"), py::arg("plan"), py::arg("topology"));

  m.def(
      "read_load",
      [](const std::string& path, const std::string& format) {
        LoadMatrix load;
        {
          py::gil_scoped_release nogil;
          load = read_load(path, parse_load_format(format));
        }
        return array_of(load.data(), {py::ssize_t{load.layers()}, py::ssize_t{load.experts()}});
      },
      py::arg("path"), py::arg("format") = "auto");

  m.def(
      "write_load",
      [](const std::string& path, py::handle load_obj, const std::string& format) {
        const LoadMatrix load = load_from(load_obj, "load");
        const LoadFormat f = parse_load_format(format);
        py::gil_scoped_release nogil;
        write_load(path, load, f);
      },
      py::arg("path"), py::arg("load"), py::arg("format") = "auto");

  m.def(
      "read_placement",
      [](const std::string& path, const Topology& topo, int num_experts) {
        if (num_experts <= 0) throw InputError("num_experts must be positive");
        Placement p;
        {
          py::gil_scoped_release nogil;
          p = read_placement(path, topo, num_experts);
        }
        return placement_array(p);
      },
      py::arg("path"), py::arg("topology"), py::arg("num_experts"));

  m.def(
      "write_placement",
      [](const std::string& path, py::handle placement_obj, const Topology& topo,
         const std::string& format, int num_experts) {
        const Placement p = placement_from(placement_obj, "placement", num_experts);
        check_slots(p, topo, "placement");
        throw_if_error(validate_placement(p, topo));
        const PlacementFormat f = parse_placement_format(format);
        py::gil_scoped_release nogil;
        write_placement(path, p, topo, f);
      },
      py::arg("path"), py::arg("placement"), py::arg("topology"), py::arg("format") = "sglang",
      py::arg("num_experts") = 0);
}
