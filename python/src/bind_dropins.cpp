// The engines' policy hooks: deepseek-ai/EPLB, vLLM and SGLang and vllm-ascend. The logic is the
// library's compat component; this file converts arrays and releases the GIL around it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>

#include "bindings.h"
#include "convert.h"
#include "swiftbalancer/compat/ascend.h"
#include "swiftbalancer/compat/deepseek_eplb.h"
#include "swiftbalancer/compat/engine_hook.h"

namespace swiftbalancer::python {
namespace {

using compat::EngineMaps;

py::tuple deepseek_result(EngineMaps&& r, const LoadMatrix& load) {
  const py::ssize_t L = load.layers(), E = load.experts();
  compat::LogicalMaps& m = r.logical;
  return py::make_tuple(placement_array(r.placement),
                        array_from(std::move(m.log2phy), {L, E, py::ssize_t{m.max_replicas}}),
                        array_from(std::move(m.logcnt), {L, E}));
}

py::tuple deepseek(py::handle weight, int num_replicas, int num_groups, int num_nodes,
                   int num_gpus) {
  const LoadMatrix load = load_from(weight, "weight");
  EngineMaps r;
  {
    py::gil_scoped_release nogil;
    r = compat::deepseek_rebalance_experts(load, num_replicas, num_groups, num_nodes, num_gpus);
  }
  return deepseek_result(std::move(r), load);
}

py::object engine(py::handle weight, int num_replicas, int num_groups, int num_nodes, int num_ranks,
                  py::handle old_obj, const std::string& policy, std::int64_t max_transfers,
                  double threshold, int log2phy_width, double target, int threads,
                  bool logical_maps) {
  const LoadMatrix load = load_from(weight, "weight", /*allow_window=*/true);
  Placement old;
  compat::EngineRequest q;
  if (!old_obj.is_none()) {
    old = placement_from(old_obj, "old_global_expert_indices", load.experts());
    q.old_map = &old;
  }
  q.num_replicas = num_replicas;
  q.num_groups = num_groups;
  q.num_nodes = num_nodes;
  q.num_ranks = num_ranks;
  q.policy = policy;
  q.max_transfers = max_transfers;
  q.threshold = threshold;
  q.log2phy_width = log2phy_width;
  if (!(target == 0.0 || (target >= 1.0 && std::isfinite(target))))
    throw InputError("target must be 0 (the policy's default) or a finite number >= 1, got " +
                     std::to_string(target));
  q.target = target;
  q.threads = threads;
  q.logical_maps = logical_maps;
  EngineMaps r;
  {
    py::gil_scoped_release nogil;
    r = compat::engine_rebalance(load, q);
  }
  if (!logical_maps) return placement_array(r.placement);
  return deepseek_result(std::move(r), load);
}

py::tuple ascend(py::handle table_obj, py::handle workload_obj, int ranks_per_node, int num_experts,
                 const std::string& policy, int num_groups, std::int64_t max_transfers,
                 double threshold, double min_improvement, int threads) {
  py::array table = numeric_array(table_obj, "current_expert_table", true);
  check_ndim(table, "current_expert_table", 3, "[layers][ranks][slots]");
  py::array work = numeric_array(workload_obj, "expert_workload", false);
  check_ndim(work, "expert_workload", 3, "[layers][ranks][slots]");
  for (int i = 0; i < 3; ++i)
    if (work.shape(i) != table.shape(i))
      throw InputError("expert_workload has shape " + shape_string(work) +
                       ", current_expert_table has " + shape_string(table));
  const int L = to_int(table.shape(0)), R = to_int(table.shape(1)), S = to_int(table.shape(2));
  const Topology topo = Topology::make(R, S, ranks_per_node);
  std::vector<ExpertId> ids = ids_from(table, "current_expert_table");
  if (num_experts <= 0) {  // vllm-ascend: the distinct ids of the first layer
    std::vector<ExpertId> first(ids.begin(), ids.begin() + topo.num_slots());
    std::sort(first.begin(), first.end());
    num_experts = static_cast<int>(std::unique(first.begin(), first.end()) - first.begin());
  }
  const Placement current(L, topo.num_slots(), num_experts, std::move(ids));
  auto w = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(work);
  std::vector<double> workload(w.data(), w.data() + w.size());
  compat::AscendResult r;
  {
    py::gil_scoped_release nogil;
    r = compat::ascend_rebalance(current, workload, topo, policy,
                                 options_of(num_groups, max_transfers, threshold), min_improvement,
                                 threads);
  }
  py::object table_out = placement_array(r.placement).attr("reshape")(L, R, S);
  return py::make_tuple(r.changed, array_of(r.priority, {py::ssize_t{L}}), table_out,
                        array_of(r.max_load_before, {py::ssize_t{L}}),
                        array_of(r.max_load_after, {py::ssize_t{L}}));
}

}  // namespace

void bind_dropins(py::module_& m) {
  m.def("deepseek_rebalance_experts", &deepseek, py::arg("weight"), py::arg("num_replicas"),
        py::arg("num_groups"), py::arg("num_nodes"), py::arg("num_gpus"));
  m.def("engine_rebalance", &engine,
        "vLLM / SGLang hook: (phy2log, log2phy, logcnt), or phy2log alone when logical_maps is "
        "false; weight [L][E] or [T][L][E]; with an old map (any width, -1 slots, two replicas "
        "on a rank), `policy` from it under max_transfers.",
        py::arg("weight"), py::arg("num_replicas"), py::arg("num_groups"), py::arg("num_nodes"),
        py::arg("num_ranks"), py::arg("old_map"), py::arg("policy"), py::arg("max_transfers"),
        py::arg("threshold"), py::arg("log2phy_width"), py::arg("target") = 0.0,
        py::arg("threads") = 1, py::arg("logical_maps") = true);
  m.def("ascend_rebalance", &ascend, py::arg("current_expert_table"), py::arg("expert_workload"),
        py::arg("ranks_per_node"), py::arg("num_experts"), py::arg("policy"), py::arg("num_groups"),
        py::arg("max_transfers"), py::arg("threshold"), py::arg("min_improvement"),
        py::arg("threads") = 1);
}

}  // namespace swiftbalancer::python
