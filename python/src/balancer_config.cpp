// BalancerConfig for Python, bound once: one field is one line below (FIELD, or MILLIS for a
// timeout), and each bound name is listed in `field_names` so that Python can override fields
// by keyword without restating them or their defaults.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "runtime_bindings.h"
#include "shared_bindings.h"
#include "swiftbalancer/runtime/balancer.h"

namespace swiftbalancer::python {
namespace py = pybind11;
namespace {

// A Python callable as the log sink. The callable is held through a shared_ptr whose deleter
// takes the GIL, so that copies of the std::function (made and destroyed by the balancer, with
// or without the GIL) never touch Python reference counts unguarded. Called from the serving
// thread (GIL released by the binding) and the worker thread: it takes the GIL itself. An
// exception in the callable is reported as unraisable, never thrown into the balancer.
struct PyLogSink {
  std::shared_ptr<py::object> fn;
  void operator()(LogSeverity severity, const std::string& line) const {
    py::gil_scoped_acquire gil;
    try {
      (*fn)(log_severity_name(severity), line);
    } catch (py::error_already_set& e) {
      e.discard_as_unraisable("swiftbalancer log sink");
    }
  }
};

py::object get_log(const BalancerConfig& c) {
  if (const PyLogSink* s = c.log.target<PyLogSink>()) return *s->fn;
  return py::none();  // empty: the balancer's own sink (warnings and errors on stderr)
}

void set_log(BalancerConfig& c, py::object fn) {
  if (fn.is_none()) {
    c.log = nullptr;
    return;
  }
  if (!PyCallable_Check(fn.ptr()))
    throw InputError("log must be None or a callable (severity: str, line: str)");
  auto held = std::shared_ptr<py::object>(new py::object(std::move(fn)), [](py::object* o) {
    py::gil_scoped_acquire gil;
    delete o;
  });
  c.log = PyLogSink{std::move(held)};
}

std::int64_t non_negative_ms(std::int64_t v, const char* name) {
  if (v < 0) throw InputError(std::string(name) + " must not be negative");
  return v;
}

void bind_options(py::module_& m) {
  py::class_<PolicyOptions>(m, "PolicyOptions")
      .def(py::init<>())
      .def_readwrite("num_groups", &PolicyOptions::num_groups)
      .def_readwrite("max_transfers", &PolicyOptions::max_transfers)
      .def_readwrite("threshold", &PolicyOptions::threshold)
      .def_readwrite("target", &PolicyOptions::target);
  py::class_<LinkWeights>(m, "LinkWeights")
      .def(py::init<>())
      .def_readwrite("intra_node", &LinkWeights::intra_node)
      .def_readwrite("inter_node", &LinkWeights::inter_node);
  py::class_<FaultInjection>(m, "FaultInjection")
      .def(py::init<>())
      .def_property(
          "kind", [](const FaultInjection& f) { return std::string(fault_kind_name(f.kind)); },
          [](FaultInjection& f, const std::string& k) { f.kind = parse_fault_kind(k); })
      .def_readwrite("rank", &FaultInjection::rank)
      .def_readwrite("cycle", &FaultInjection::cycle)
      .def_readwrite("random_rate", &FaultInjection::random_rate)
      .def_readwrite("random_seed", &FaultInjection::random_seed);
  py::class_<ShiftConfig>(m, "ShiftConfig", "stats::ShiftConfig: shift detection's settings")
      .def(py::init<>())
      .def_readwrite("check_steps", &ShiftConfig::check_steps)
      .def_readwrite("trigger_ratio", &ShiftConfig::trigger_ratio)
      .def_readwrite("rearm_ratio", &ShiftConfig::rearm_ratio)
      .def_readwrite("min_gap_steps", &ShiftConfig::min_gap_steps)
      .def_readwrite("skip_below", &ShiftConfig::skip_below)
      .def_readwrite("layers_per_step", &ShiftConfig::layers_per_step);
}

}  // namespace

void bind_balancer_config(py::module_& m) {
  bind_options(m);
  using C = BalancerConfig;
  py::class_<C> c(m, "BalancerConfig",
                  "runtime::BalancerConfig; defaults are the C++ ones. Timeouts in ms.");
  c.def(py::init<>()).def(py::init<const C&>(), py::arg("other"));
  std::vector<std::string> names;
#define FIELD(f) (c.def_readwrite(#f, &C::f), names.push_back(#f))
#define MILLIS(f)                                                                   \
  (c.def_property(                                                                  \
       #f "_ms", [](const C& x) { return static_cast<std::int64_t>(x.f.count()); }, \
       [](C& x, std::int64_t v) { x.f = Millis(non_negative_ms(v, #f "_ms")); }),   \
   names.push_back(#f "_ms"))
  c.def_property(
      "mode", [](const C& x) { return std::string(balancer_mode_name(x.mode)); },
      [](C& x, const std::string& v) { x.mode = parse_balancer_mode(v); });
  names.push_back("mode");
  FIELD(interval_steps);
  FIELD(window_intervals);
  FIELD(window_decay);
  FIELD(layers_per_step);
  FIELD(decision_poll_steps);
  MILLIS(worker_timeout);
  MILLIS(transfer_timeout);
  MILLIS(collective_timeout);
  FIELD(background_worker);
  MILLIS(worker_poll);
  FIELD(policy_threads);
  FIELD(policy_options);
  FIELD(link_weights);
  FIELD(tag_base);
  FIELD(max_collective_failures);
  c.def_property("log", &get_log, &set_log);
  names.push_back("log");
  FIELD(fault);
  // Shift detection: the nested `shift` (a ShiftConfig), and each of its fields under the flat
  // name it had before it was nested (`shift_check_steps` is `shift.check_steps`); the flat names
  // are the ones listed in field_names, so keyword overrides keep working.
  c.def_readwrite("shift", &C::shift);
#define SHIFT(flat, f)                                           \
  (c.def_property(                                               \
       #flat, [](const C& x) { return x.shift.f; },              \
       [](C& x, decltype(ShiftConfig::f) v) { x.shift.f = v; }), \
   names.push_back(#flat))
  SHIFT(shift_check_steps, check_steps);
  SHIFT(shift_trigger_ratio, trigger_ratio);
  SHIFT(shift_rearm_ratio, rearm_ratio);
  SHIFT(shift_min_gap_steps, min_gap_steps);
  SHIFT(shift_skip_below, skip_below);
  SHIFT(shift_layers_per_step, layers_per_step);
#undef SHIFT
#undef FIELD
#undef MILLIS
  c.attr("field_names") = py::tuple(py::cast(names));
  // A copy of the C++ config for another extension of the package (swiftbalancer._torch, built
  // against torch's own pybind11, cannot take this class): both are built from one header by one
  // compiler, so the struct is the same on both sides. The capsule owns the copy.
  c.def("_capsule", [](const C& x) {
    return py::capsule(new C(x), kConfigCapsuleName, [](PyObject* o) {
      delete static_cast<C*>(PyCapsule_GetPointer(o, kConfigCapsuleName));
    });
  });
}

}  // namespace swiftbalancer::python
