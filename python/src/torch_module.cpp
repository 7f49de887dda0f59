// swiftbalancer._torch: the runtime inside a torch engine (src/swiftbalancer/torch/), built
// against torch's C++ API and its own pybind11 where torch is found. The Python face is
// swiftbalancer.torch.Balancer (python/swiftbalancer/torch.py), which builds this object.
//
// Process groups arrive as torch.distributed.ProcessGroup objects (torch's own binding of
// c10d::ProcessGroup), tensors as torch tensors, the config as a capsule from
// swiftbalancer._runtime.BalancerConfig._capsule() (shared_bindings.h). Calls that wait
// (before_forward, after_forward: torch_serving_calls.h; close) release the GIL; nothing here runs
// Python on the runtime's worker thread. A bad argument raises ValueError.
#include <torch/python.h>  // torch's pybind11 casters (tensors, c10d process groups)

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "py_torch_balancer.h"
#include "shared_bindings.h"
#include "swiftbalancer/core/status.h"
#include "swiftbalancer/torch/torch_balancer.h"
#include "torch_serving_calls.h"

namespace swiftbalancer::python {

void PyTorchBalancer::close() {
  pybind11::gil_scoped_release nogil;
  b_.reset();
}

namespace {

namespace py = pybind11;
using torch_engine::TorchBalancer;
using torch_engine::TorchBalancerOptions;

BalancerConfig config_from(const py::capsule& cap) {
  if (std::string(cap.name() ? cap.name() : "") != kConfigCapsuleName)
    throw InputError("config must come from BalancerConfig._capsule()");
  return *cap.get_pointer<BalancerConfig>();
}

std::unique_ptr<PyTorchBalancer> make(int ranks, int slots_per_rank, int ranks_per_node,
                                      const c10::intrusive_ptr<c10d::ProcessGroup>& control,
                                      const c10::intrusive_ptr<c10d::ProcessGroup>& weights,
                                      const std::string& policy, const at::Tensor& phy2log,
                                      std::vector<std::vector<at::Tensor>> experts,
                                      const py::capsule& config, int max_ops_in_flight,
                                      const std::string& control_device) {
  TorchBalancerOptions opt;
  opt.max_ops_in_flight = max_ops_in_flight;
  opt.control_device = c10::Device(control_device);
  const Topology topo = Topology::make(ranks, slots_per_rank, ranks_per_node);
  BalancerConfig cfg = config_from(config);
  std::unique_ptr<TorchBalancer> b;
  {
    // The constructor may wait on the groups (none today) and starts the worker thread.
    py::gil_scoped_release nogil;
    b = std::make_unique<TorchBalancer>(topo, control, weights, policy, phy2log, std::move(experts),
                                        std::move(cfg), opt);
  }
  return std::make_unique<PyTorchBalancer>(std::move(b));
}

py::tuple placement_tuple(const TorchBalancer& b) {
  const Placement& p = b.balancer().placement();
  at::Tensor t = at::empty({p.layers(), p.num_slots()}, at::kLong);
  std::int64_t* d = t.data_ptr<std::int64_t>();
  for (std::size_t i = 0; i < p.data().size(); ++i) d[i] = p.data()[i];
  return py::make_tuple(t, p.experts());
}

}  // namespace

void bind_torch_transport(py::module_& m);  // bind_torch_transport.cpp

void bind_torch_balancer(py::module_& m) {
  m.doc() = "SwiftBalancer's runtime over a torch engine's process groups and tensors";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const InputError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
  py::class_<PyTorchBalancer> cls(m, "Balancer");
  cls.def(py::init(&make), py::arg("ranks"), py::arg("slots_per_rank"), py::arg("ranks_per_node"),
          py::arg("control_group"), py::arg("weight_group"), py::arg("policy"), py::arg("phy2log"),
          py::arg("experts"), py::arg("config"), py::arg("max_ops_in_flight"),
          py::arg("control_device"))
      .def(
          "bind_counts",
          [](const PyTorchBalancer& b, const std::optional<at::Tensor>& counts) {
            b.get().bind_counts(counts.value_or(at::Tensor()));
          },
          py::arg("counts"))
      .def_property_readonly("phy2log", [](const PyTorchBalancer& b) { return b.get().phy2log(); })
      .def_property_readonly("log2phy", [](const PyTorchBalancer& b) { return b.get().log2phy(); })
      .def_property_readonly("replica_count",
                             [](const PyTorchBalancer& b) { return b.get().replica_count(); })
      .def_property_readonly("rank", [](const PyTorchBalancer& b) { return b.get().rank(); })
      .def_property_readonly("step",
                             [](const PyTorchBalancer& b) { return b.get().balancer().step(); })
      .def_property_readonly("transport",
                             [](const PyTorchBalancer& b) { return b.get().transport_name(); })
      .def("placement", [](const PyTorchBalancer& b) { return placement_tuple(b.get()); })
      .def("counters",
           [](const PyTorchBalancer& b) {
             BalancerCounters c;
             {
               // The counters' lock may be held by the worker while it calls a Python log sink.
               py::gil_scoped_release nogil;
               c = b.get().balancer().counters();
             }
             return counters_dict(c);
           })
      .def("metrics_text",
           [](const PyTorchBalancer& b) {
             std::string s;
             {
               py::gil_scoped_release nogil;
               s = b.get().balancer().metrics_text();
             }
             return s;
           })
      .def("close", &PyTorchBalancer::close);
  // The two per-step calls: plain CPython methods (torch_serving_calls.h).
  add_serving_calls(m, cls);
}

}  // namespace swiftbalancer::python

PYBIND11_MODULE(_torch, m) {
  swiftbalancer::python::bind_torch_balancer(m);
  swiftbalancer::python::bind_torch_transport(m);
}
