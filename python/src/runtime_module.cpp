// swiftbalancer._runtime: the asynchronous balancer (runtime/balancer.h) over the in-process
// transport, for Python. Owner: the Python module (python/). A separate extension from _core so
// that the drop-ins never depend on the runtime.
//
// Threading: as the C++ Balancer, one Python thread drives one rank (all calls but counters());
// ranks of one InProcessWorld run in separate Python threads. before_forward / after_forward
// release the GIL, since they wait (bounded) for the other ranks. Expert buffers are numpy
// arrays owned by the caller; the binding keeps a reference to each so that the memory stays
// valid for the balancer's lifetime, and the balancer writes new weights into them in place.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "swiftbalancer/core/status.h"
#include "swiftbalancer/runtime/balancer.h"
#include "swiftbalancer/transport/inprocess_transport.h"

namespace py = pybind11;

namespace swiftbalancer::python {
namespace {

class PyBalancer {
 public:
  PyBalancer(std::shared_ptr<InProcessWorld> world, const Topology& topo, int rank,
             const std::string& policy, py::array initial, const BalancerConfig& cfg)
      : world_(std::move(world)), topo_(topo) {
    if (!world_) throw InputError("world must not be None");
    if (world_->size() != topo.ranks)
      throw InputError("the world has " + std::to_string(world_->size()) + " ranks, the topology " +
                       std::to_string(topo.ranks));
    if (initial.ndim() != 2 || initial.shape(1) != topo.num_slots() || initial.shape(0) <= 0)
      throw InputError("initial must be [layers][" + std::to_string(topo.num_slots()) + "]");
    const char kind = initial.dtype().kind();
    if (kind != 'i' && kind != 'u') throw InputError("initial must hold integer expert ids");
    auto ids =
        py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(initial);
    std::vector<ExpertId> v(static_cast<std::size_t>(ids.size()));
    std::int64_t max_id = -1;
    for (std::size_t i = 0; i < v.size(); ++i) {
      const std::int64_t e = ids.data()[i];
      if (e < 0 || e > INT32_MAX)
        throw InputError("initial holds invalid expert id " + std::to_string(e));
      v[i] = static_cast<ExpertId>(e);
      max_id = std::max(max_id, e);
    }
    Placement p(static_cast<int>(initial.shape(0)), topo.num_slots(), static_cast<int>(max_id + 1),
                std::move(v));
    transport_ = world_->transport(rank);
    std::shared_ptr<const Policy> pol = make_policy(policy);
    balancer_ =
        std::make_unique<Balancer>(topo, rank, *transport_, std::move(pol), std::move(p), cfg);
  }

  ~PyBalancer() {
    py::gil_scoped_release nogil;  // the destructor waits for a running policy
    balancer_.reset();
  }

  void register_expert(int layer, int slot, std::vector<py::array> tensors) {
    std::vector<std::span<std::byte>> spans;
    for (py::array& a : tensors) {
      if (!(a.flags() & py::array::c_style) || !a.writeable())
        throw InputError("expert buffers must be writeable C-contiguous arrays");
      spans.emplace_back(static_cast<std::byte*>(a.mutable_data()),
                         static_cast<std::size_t>(a.nbytes()));
    }
    balancer_->register_expert(layer, slot, spans);
    for (const py::array& a : tensors) keep_.push_back(a);
  }

  void record(int layer, py::handle counts_obj) {
    if (layer < 0 || layer >= balancer_->placement().layers())
      throw InputError("layer " + std::to_string(layer) + " out of range");
    py::array a = py::array::ensure(counts_obj);
    if (!a || (a.dtype().kind() != 'i' && a.dtype().kind() != 'u') || a.ndim() != 1 ||
        a.shape(0) != topo_.slots_per_rank)
      throw InputError("counts must be integers, one per local slot (" +
                       std::to_string(topo_.slots_per_rank) + ")");
    auto c = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
    balancer_->record(layer, {c.data(), static_cast<std::size_t>(c.size())});
  }

  void before_forward() {
    py::gil_scoped_release nogil;
    balancer_->before_forward();
  }
  StepStats after_forward() {
    py::gil_scoped_release nogil;
    return balancer_->after_forward();
  }

  const RoutingTable& table(int layer) const {
    if (layer < 0 || layer >= balancer_->placement().layers())
      throw InputError("layer " + std::to_string(layer) + " out of range");
    return balancer_->routing(layer);
  }

  py::array_t<std::int64_t> placement() const {
    const Placement& p = balancer_->placement();
    py::array_t<std::int64_t> out(
        {static_cast<py::ssize_t>(p.layers()), static_cast<py::ssize_t>(p.num_slots())});
    for (std::size_t i = 0; i < p.data().size(); ++i) out.mutable_data()[i] = p.data()[i];
    return out;
  }

  const Balancer& balancer() const { return *balancer_; }

 private:
  std::shared_ptr<InProcessWorld> world_;
  Topology topo_;
  std::unique_ptr<Transport> transport_;
  std::vector<py::array> keep_;
  std::unique_ptr<Balancer> balancer_;  // last: destroyed first
};

py::dict stats_dict(const StepStats& s) {
  py::dict d;
  d["step"] = s.step;
  d["serving_ns"] = s.serving_ns;
  d["wait_ns"] = s.wait_ns;
  d["bytes_sent"] = s.bytes_sent;
  d["bytes_received"] = s.bytes_received;
  d["layers_committed"] = s.layers_committed;
  d["layers_failed"] = s.layers_failed;
  d["gathered"] = s.gathered;
  d["cycle_agreed"] = s.cycle_agreed;
  d["rebalance_finished"] = s.rebalance_finished;
  d["errors"] = s.errors;
  return d;
}

py::dict counters_dict(const BalancerCounters& c) {
  py::dict d;
  d["steps"] = c.steps;
  d["gathers"] = c.gathers;
  d["cycles_started"] = c.cycles_started;
  d["cycles_agreed"] = c.cycles_agreed;
  d["cycles_dropped"] = c.cycles_dropped;
  d["rebalances"] = c.rebalances;
  d["layers_committed"] = c.layers_committed;
  d["layers_failed"] = c.layers_failed;
  d["transfer_failures"] = c.transfer_failures;
  d["worker_failures"] = c.worker_failures;
  d["invalid_placements"] = c.invalid_placements;
  d["collective_failures"] = c.collective_failures;
  d["bytes_sent"] = c.bytes_sent;
  d["bytes_received"] = c.bytes_received;
  d["errors"] = c.errors;
  d["last_error"] = c.last_error;
  return d;
}

}  // namespace
}  // namespace swiftbalancer::python

PYBIND11_MODULE(_runtime, m) {
  using namespace swiftbalancer;
  using namespace swiftbalancer::python;
  m.doc() = "The asynchronous balancer over in-process ranks (use swiftbalancer.runtime).";
  py::module_::import("swiftbalancer._core");  // Topology's type

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const InputError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  py::class_<InProcessWorld, std::shared_ptr<InProcessWorld>>(m, "InProcessWorld")
      .def(py::init<int>(), py::arg("ranks"))
      .def_property_readonly("size", &InProcessWorld::size);

  py::class_<PyBalancer>(m, "Balancer")
      .def(py::init([](std::shared_ptr<InProcessWorld> world, const Topology& topo, int rank,
                       const std::string& policy, py::array initial, const std::string& mode,
                       int interval_steps, int window_intervals, double window_decay,
                       int layers_per_step, int decision_poll_steps, int worker_timeout_ms,
                       int transfer_timeout_ms, int collective_timeout_ms, int num_groups,
                       std::int64_t max_transfers, double threshold, bool log,
                       bool background_worker) {
             BalancerConfig c;
             c.mode = parse_balancer_mode(mode);
             c.interval_steps = interval_steps;
             c.window_intervals = window_intervals;
             c.window_decay = window_decay;
             c.layers_per_step = layers_per_step;
             c.decision_poll_steps = decision_poll_steps;
             c.worker_timeout = Millis(worker_timeout_ms);
             c.transfer_timeout = Millis(transfer_timeout_ms);
             c.collective_timeout = Millis(collective_timeout_ms);
             c.policy_options.num_groups = num_groups;
             c.policy_options.max_transfers = max_transfers;
             c.policy_options.threshold = threshold;
             c.background_worker = background_worker;
             if (log) {
               c.log = [](LogSeverity sev, const std::string& line) {
                 std::fprintf(stderr, "swiftbalancer %s: %s\n", log_severity_name(sev),
                              line.c_str());
               };
             } else {
               c.log = [](LogSeverity, const std::string&) {};
             }
             return std::make_unique<PyBalancer>(std::move(world), topo, rank, policy, initial, c);
           }),
           py::arg("world"), py::arg("topology"), py::arg("rank"), py::arg("policy"),
           py::arg("initial"), py::arg("mode"), py::arg("interval_steps"),
           py::arg("window_intervals"), py::arg("window_decay"), py::arg("layers_per_step"),
           py::arg("decision_poll_steps"), py::arg("worker_timeout_ms"),
           py::arg("transfer_timeout_ms"), py::arg("collective_timeout_ms"), py::arg("num_groups"),
           py::arg("max_transfers"), py::arg("threshold"), py::arg("log"),
           py::arg("background_worker"))
      .def("register_expert", &PyBalancer::register_expert, py::arg("layer"), py::arg("slot"),
           py::arg("tensors"))
      .def("record", &PyBalancer::record, py::arg("layer"), py::arg("counts"))
      .def("before_forward", &PyBalancer::before_forward)
      .def("after_forward", [](PyBalancer& b) { return stats_dict(b.after_forward()); })
      .def(
          "phy2log",
          [](const PyBalancer& b, int layer) {
            const auto v = b.table(layer).phy2log();
            py::array_t<std::int64_t> out(static_cast<py::ssize_t>(v.size()));
            for (std::size_t i = 0; i < v.size(); ++i) out.mutable_data()[i] = v[i];
            return out;
          },
          py::arg("layer"))
      .def(
          "replicas",
          [](const PyBalancer& b, int layer, int expert) {
            const RoutingTable& t = b.table(layer);
            if (expert < 0 || expert >= t.experts()) throw InputError("expert out of range");
            const auto r = t.replicas(expert);
            return std::vector<std::int32_t>(r.begin(), r.end());
          },
          py::arg("layer"), py::arg("expert"))
      .def(
          "select",
          [](const PyBalancer& b, int layer, int expert, std::int64_t token_index, int src_rank) {
            const RoutingTable& t = b.table(layer);
            if (expert < 0 || expert >= t.experts()) throw InputError("expert out of range");
            if (token_index < 0) throw InputError("token_index must not be negative");
            if (src_rank < 0 || src_rank >= t.num_slots())
              throw InputError("src_rank out of range");
            return t.select(expert, token_index, src_rank);
          },
          py::arg("layer"), py::arg("expert"), py::arg("token_index"), py::arg("src_rank"))
      .def_property_readonly("placement", &PyBalancer::placement)
      .def_property_readonly("step", [](const PyBalancer& b) { return b.balancer().step(); })
      .def("counters", [](const PyBalancer& b) { return counters_dict(b.balancer().counters()); });
}
