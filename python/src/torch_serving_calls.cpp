// The serving thread's per-step calls without pybind11's dispatcher (torch_serving_calls.h).
#include "torch_serving_calls.h"

#include <torch/csrc/autograd/python_variable.h>  // THPVariable_Check, THPVariable_Unpack

#include <array>
#include <exception>

#include "swiftbalancer/runtime/report_fields.h"

namespace swiftbalancer::python {
namespace {

namespace py = pybind11;

// Set once at module init; the module and one leaked reference keep the type alive for the
// life of the interpreter (a step's stats may outlive the module object).
PyTypeObject* g_stats_type = nullptr;

#define SWIFTBALANCER_STATS_FIELD(field, type, help) {#field, help},
PyStructSequence_Field g_stats_fields[] = {
    SWIFTBALANCER_STEP_FIELDS(SWIFTBALANCER_STATS_FIELD){nullptr, nullptr}};
#undef SWIFTBALANCER_STATS_FIELD

PyStructSequence_Desc g_stats_desc = {
    "swiftbalancer._torch.StepStats",
    "One step's figures from after_forward(): the fields of the C++ StepStats, by name (and, "
    "as a tuple, in that order).",
    g_stats_fields, static_cast<int>(sizeof(g_stats_fields) / sizeof(g_stats_fields[0]) - 1)};

// Steals nothing; returns a new reference or nullptr with the error set.
PyObject* to_python(std::int64_t v) {
  return PyLong_FromLongLong(v);
}
PyObject* to_python(int v) {
  return PyLong_FromLong(v);
}
PyObject* to_python(bool v) {
  return PyBool_FromLong(v ? 1 : 0);
}

PyObject* stats_object(const StepStats& s) {
  PyObject* o = PyStructSequence_New(g_stats_type);
  if (o == nullptr) return nullptr;
  Py_ssize_t i = 0;
#define SWIFTBALANCER_STATS_ITEM(field, type, help)   \
  if (PyObject* v = to_python(s.field); v != nullptr) \
    PyStructSequence_SetItem(o, i++, v);              \
  else {                                              \
    Py_DECREF(o);                                     \
    return nullptr;                                   \
  }
  SWIFTBALANCER_STEP_FIELDS(SWIFTBALANCER_STATS_ITEM)
#undef SWIFTBALANCER_STATS_ITEM
  return o;
}

// The GIL released for a wait, taken back on every way out (exceptions included).
class GilReleased {
 public:
  GilReleased() : state_(PyEval_SaveThread()) {}
  ~GilReleased() { PyEval_RestoreThread(state_); }
  GilReleased(const GilReleased&) = delete;
  GilReleased& operator=(const GilReleased&) = delete;

 private:
  PyThreadState* state_;
};

// The C++ object of self. Not pybind11's cast: it looks the class's registration up in a hash
// map (cold here: a microsecond or more of a call that costs a few), and checks nothing the
// descriptor has not: a method descriptor is only ever called with an instance of its class (or
// a subclass), whose value is the one PyTorchBalancer, or null where __init__ never ran.
const PyTorchBalancer& balancer_of(PyObject* self) {
  const auto* p = reinterpret_cast<py::detail::instance*>(self)
                      ->get_value_and_holder()
                      .value_ptr<PyTorchBalancer>();
  if (p == nullptr) throw InputError("the balancer was not initialised");
  return *p;
}

// Runs `f` on self's balancer; C++ exceptions become Python ones as the module's pybind11
// methods raise them (InputError: ValueError; anything else: RuntimeError).
template <class F>
PyObject* serving_call(PyObject* self, F&& f) {
  try {
    return f(balancer_of(self).get());
  } catch (const InputError& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "unknown C++ exception");
  }
  return nullptr;
}

PyObject* before_forward(PyObject* self, PyObject* /*unused*/) {
  return serving_call(self, [](torch_engine::TorchBalancer& b) {
    {
      GilReleased nogil;
      b.before_forward();
    }
    Py_RETURN_NONE;
  });
}

PyObject* after_forward(PyObject* self, PyObject* /*unused*/) {
  return serving_call(self, [](torch_engine::TorchBalancer& b) {
    StepStats s;
    {
      GilReleased nogil;
      s = b.after_forward();
    }
    return stats_object(s);
  });
}

// The arguments of a METH_FASTCALL | METH_KEYWORDS call, positional or by keyword, into `out`
// in the order of `names`. Sets a TypeError naming `fn` and returns false when one is missing,
// given twice or unknown, or when there are too many.
template <std::size_t N>
bool parse_args(const char* fn, const std::array<const char*, N>& names, PyObject* const* args,
                Py_ssize_t nargs, PyObject* kwnames, std::array<PyObject*, N>& out) {
  if (nargs > static_cast<Py_ssize_t>(N)) {
    PyErr_Format(PyExc_TypeError, "%s() takes %zu arguments (%zd given)", fn, N, nargs);
    return false;
  }
  out.fill(nullptr);
  for (Py_ssize_t i = 0; i < nargs; ++i) out[static_cast<std::size_t>(i)] = args[i];
  const Py_ssize_t nkw = kwnames != nullptr ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t k = 0; k < nkw; ++k) {
    PyObject* key = PyTuple_GET_ITEM(kwnames, k);
    std::size_t i = 0;
    while (i < N && PyUnicode_CompareWithASCIIString(key, names[i]) != 0) ++i;
    if (i == N) {
      PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fn, key);
      return false;
    }
    if (out[i] != nullptr) {
      PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fn, names[i]);
      return false;
    }
    out[i] = args[nargs + k];
  }
  for (std::size_t i = 0; i < N; ++i)
    if (out[i] == nullptr) {
      PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fn, names[i]);
      return false;
    }
  return true;
}

// The tensor a Python object holds, or nullptr with a TypeError naming the argument.
const at::Tensor* tensor_arg(const char* fn, const char* name, PyObject* o) {
  if (!THPVariable_Check(o)) {
    PyErr_Format(PyExc_TypeError, "%s(): %s must be a torch.Tensor, not %.200s", fn, name,
                 Py_TYPE(o)->tp_name);
    return nullptr;
  }
  return &THPVariable_Unpack(o);
}

// The layer argument of record and route: any integer (or __index__) object.
bool layer_arg(const char* fn, PyObject* o, long long& layer) {
  if (!PyIndex_Check(o)) {
    PyErr_Format(PyExc_TypeError, "%s(): layer must be an integer, not %.200s", fn,
                 Py_TYPE(o)->tp_name);
    return false;
  }
  layer = PyLong_AsLongLong(o);
  return !(layer == -1 && PyErr_Occurred());
}

// record and record_step do not wait, so they keep the GIL (one serving thread; releasing and
// taking it back would cost more than the call).
PyObject* record(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  std::array<PyObject*, 2> a{};
  long long layer = 0;
  if (!parse_args("record", std::array{"layer", "counts"}, args, nargs, kwnames, a) ||
      !layer_arg("record", a[0], layer))
    return nullptr;
  const at::Tensor* counts = tensor_arg("record", "counts", a[1]);
  if (counts == nullptr) return nullptr;
  return serving_call(self, [layer, counts](torch_engine::TorchBalancer& b) {
    b.record(layer, *counts);
    Py_RETURN_NONE;
  });
}

PyObject* record_step(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  std::array<PyObject*, 1> a{};
  if (!parse_args("record_step", std::array{"counts"}, args, nargs, kwnames, a)) return nullptr;
  const at::Tensor* counts = tensor_arg("record_step", "counts", a[0]);
  if (counts == nullptr) return nullptr;
  return serving_call(self, [counts](torch_engine::TorchBalancer& b) {
    b.record_step(*counts);
    Py_RETURN_NONE;
  });
}

PyObject* route(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  std::array<PyObject*, 2> a{};
  long long layer = 0;
  if (!parse_args("route", std::array{"layer", "topk_ids"}, args, nargs, kwnames, a) ||
      !layer_arg("route", a[0], layer))
    return nullptr;
  const at::Tensor* ids = tensor_arg("route", "topk_ids", a[1]);
  if (ids == nullptr) return nullptr;
  return serving_call(self, [layer, ids](torch_engine::TorchBalancer& b) {
    return THPVariable_Wrap(b.route(layer, *ids));
  });
}

PyMethodDef g_before_forward = {
    "before_forward", before_forward, METH_NOARGS,
    "Posts this step's transfers (async: the next layers of the cycle); waits, bounded, only "
    "where the transport blocks. Releases the GIL."};
PyMethodDef g_after_forward = {
    "after_forward", after_forward, METH_NOARGS,
    "Ends the step: takes the bound counts, waits (bounded) for the transfers, installs and "
    "commits layers, swaps the routing tables in place; returns the step's StepStats. Releases "
    "the GIL while it waits."};

// A METH_FASTCALL | METH_KEYWORDS method: the arguments arrive as a C array, no tuple or dict is
// built. `doc` opens with the signature CPython reads ("name($self, ...)\n--\n\n").
using FastCall = PyObject* (*)(PyObject*, PyObject* const*, Py_ssize_t, PyObject*);
PyMethodDef fastcall_method(const char* name, FastCall f, const char* doc) {
  return {name, reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(f)),
          METH_FASTCALL | METH_KEYWORDS, doc};
}

PyMethodDef g_record = fastcall_method(
    "record", record,
    "record($self, layer, counts)\n--\n\n"
    "Adds one layer's counts: an integer tensor [slots_per_rank], the tokens each local slot "
    "got this step (CPU: read at once; the experts' device: added by a kernel). No wait.");
PyMethodDef g_record_step = fastcall_method(
    "record_step", record_step,
    "record_step($self, counts)\n--\n\n"
    "record() of every layer at once: an integer tensor [layers, slots_per_rank]. No wait.");
PyMethodDef g_route = fastcall_method(
    "route", route,
    "route($self, layer, topk_ids)\n--\n\n"
    "Physical slots (int64, shaped like topk_ids) for logical top-k ids of one layer, spread "
    "over each expert's replicas from this rank's offset, as route_topk() computes them. CPU "
    "tables: a loop over the host rows, ids checked; a device: route_topk's tensor operations, "
    "no host sync.");

void add_method(py::class_<PyTorchBalancer>& cls, PyMethodDef* def) {
  PyObject* d = PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(cls.ptr()), def);
  if (d == nullptr) throw py::error_already_set();
  cls.attr(def->ml_name) = py::reinterpret_steal<py::object>(d);
}

}  // namespace

void add_serving_calls(py::module_& m, py::class_<PyTorchBalancer>& cls) {
  if (g_stats_type == nullptr) {
    g_stats_type = PyStructSequence_NewType(&g_stats_desc);
    if (g_stats_type == nullptr) throw py::error_already_set();
  }
  m.attr("StepStats") =
      py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(g_stats_type));
  add_method(cls, &g_record);
  add_method(cls, &g_record_step);
  add_method(cls, &g_route);
  add_method(cls, &g_before_forward);
  add_method(cls, &g_after_forward);
}

}  // namespace swiftbalancer::python
