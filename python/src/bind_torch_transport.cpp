// swiftbalancer._torch._Transport: the balancer's transport over an engine's process groups
// (torch_engine::ProcessGroupTransport), bound on its own so that its collectives can be
// exercised across real torch.distributed processes (tests/python/test_torch_transport.py) and
// a group checked by hand. Not part of the engine-facing API: swiftbalancer.torch.Balancer
// builds its own. Calls that wait release the GIL; a failed collective raises RuntimeError with
// the transport's message; a handle keeps its transport alive.
#include <torch/python.h>  // torch's pybind11 casters (c10d process groups)

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "swiftbalancer/core/status.h"
#include "swiftbalancer/torch/process_group_transport.h"

namespace swiftbalancer::python {
namespace {

namespace py = pybind11;
using torch_engine::ProcessGroupTransport;
using torch_engine::ProcessGroupTransportOptions;

ReduceOp reduce_op(const std::string& op) {
  if (op == "sum") return ReduceOp::kSum;
  if (op == "min") return ReduceOp::kMin;
  if (op == "max") return ReduceOp::kMax;
  throw InputError("op must be 'sum', 'min' or 'max', not '" + op + "'");
}

Millis timeout_of(std::int64_t ms) {
  if (ms < 1) throw InputError("timeout_ms must be at least 1");
  return Millis(ms);
}

std::vector<std::int64_t> checked(const Status& s, std::vector<std::int64_t> out) {
  if (!s.ok()) throw std::runtime_error(s.to_string());
  return out;
}

// A started collective and the size of its result.
class PyPending {
 public:
  PyPending(std::unique_ptr<PendingCollective> p, std::size_t n) : p_(std::move(p)), n_(n) {}
  std::vector<std::int64_t> wait() {
    if (!p_) throw InputError("wait() was called already");
    std::vector<std::int64_t> out(n_, 0);
    Status s;
    {
      py::gil_scoped_release nogil;
      s = p_->wait(out);
      p_.reset();
    }
    return checked(s, std::move(out));
  }

 private:
  std::unique_ptr<PendingCollective> p_;
  std::size_t n_;
};

std::unique_ptr<ProcessGroupTransport> make(const c10::intrusive_ptr<c10d::ProcessGroup>& control,
                                            const c10::intrusive_ptr<c10d::ProcessGroup>& weights,
                                            std::int64_t poll_interval_ms, int max_ops_in_flight) {
  ProcessGroupTransportOptions opt;
  opt.poll_interval = Millis(poll_interval_ms);
  opt.max_ops_in_flight = max_ops_in_flight;
  return std::make_unique<ProcessGroupTransport>(control, weights, opt);
}

}  // namespace

void bind_torch_transport(py::module_& m) {
  py::class_<PyPending>(m, "_PendingCollective").def("wait", &PyPending::wait);
  py::class_<ProcessGroupTransport>(m, "_Transport")
      .def(py::init(&make), py::arg("control_group"), py::arg("weight_group"),
           py::arg("poll_interval_ms") = 1, py::arg("max_ops_in_flight") = 512)
      .def_property_readonly("rank", &ProcessGroupTransport::rank)
      .def_property_readonly("size", &ProcessGroupTransport::size)
      .def_property_readonly("name", &ProcessGroupTransport::name)
      .def_property_readonly("broken", &ProcessGroupTransport::broken)
      .def(
          "all_reduce",
          [](ProcessGroupTransport& t, std::vector<std::int64_t> values, const std::string& op,
             std::int64_t timeout_ms) {
            const ReduceOp o = reduce_op(op);
            const Millis timeout = timeout_of(timeout_ms);
            Status s;
            {
              py::gil_scoped_release nogil;
              s = t.all_reduce(values, o, timeout);
            }
            return checked(s, std::move(values));
          },
          py::arg("values"), py::arg("op"), py::arg("timeout_ms"))
      .def(
          "all_gather",
          [](ProcessGroupTransport& t, const std::vector<std::int64_t>& mine,
             std::int64_t timeout_ms) {
            const Millis timeout = timeout_of(timeout_ms);
            std::vector<std::int64_t> out(mine.size() * static_cast<std::size_t>(t.size()), 0);
            Status s;
            {
              py::gil_scoped_release nogil;
              s = t.all_gather(mine, out, timeout);
            }
            return checked(s, std::move(out));
          },
          py::arg("values"), py::arg("timeout_ms"))
      .def(
          "start_all_reduce",
          [](ProcessGroupTransport& t, const std::vector<std::int64_t>& values,
             const std::string& op, std::int64_t timeout_ms) {
            const ReduceOp o = reduce_op(op);
            const Millis timeout = timeout_of(timeout_ms);
            return PyPending(t.start_all_reduce(values, o, timeout), values.size());
          },
          py::arg("values"), py::arg("op"), py::arg("timeout_ms"), py::keep_alive<0, 1>())
      .def(
          "start_all_gather",
          [](ProcessGroupTransport& t, const std::vector<std::int64_t>& mine,
             std::int64_t timeout_ms) {
            const Millis timeout = timeout_of(timeout_ms);
            return PyPending(t.start_all_gather(mine, timeout),
                             mine.size() * static_cast<std::size_t>(t.size()));
          },
          py::arg("values"), py::arg("timeout_ms"), py::keep_alive<0, 1>());
}

}  // namespace swiftbalancer::python
