// The serving thread's per-step calls without pybind11's dispatcher (torch_serving_calls.h).
#include "torch_serving_calls.h"

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

// Runs `f` on self's balancer; C++ exceptions become Python ones as the module's pybind11
// methods raise them (InputError: ValueError; anything else: RuntimeError).
template <class F>
PyObject* serving_call(PyObject* self, F&& f) {
  try {
    return f(py::handle(self).cast<const PyTorchBalancer&>().get());
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

PyMethodDef g_before_forward = {
    "before_forward", before_forward, METH_NOARGS,
    "Posts this step's transfers (async: the next layers of the cycle); waits, bounded, only "
    "where the transport blocks. Releases the GIL."};
PyMethodDef g_after_forward = {
    "after_forward", after_forward, METH_NOARGS,
    "Ends the step: takes the bound counts, waits (bounded) for the transfers, installs and "
    "commits layers, swaps the routing tables in place; returns the step's StepStats. Releases "
    "the GIL while it waits."};

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
  add_method(cls, &g_before_forward);
  add_method(cls, &g_after_forward);
}

}  // namespace swiftbalancer::python
