#include "convert.h"

#include <algorithm>
#include <climits>

namespace swiftbalancer::python {
namespace {

using F64Array = py::array_t<double, py::array::c_style | py::array::forcecast>;
using I64Array = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;

// Adds the [T][n] values of `src` (C-contiguous, T = count / n) into out[n], as doubles.
template <typename T>
void sum_rows(const py::array& a, std::vector<double>& out) {
  const T* p = static_cast<const T*>(a.data());
  const std::size_t n = out.size(), count = static_cast<std::size_t>(a.size());
  for (std::size_t i = 0; i < count; i += n)
    for (std::size_t j = 0; j < n; ++j) out[j] += static_cast<double>(p[i + j]);
}

// Dispatches on the dtypes read in place; anything else goes through one float64 cast.
void sum_into(const py::array& a, std::vector<double>& out) {
  if (a.flags() & py::array::c_style) {
    if (py::isinstance<py::array_t<double>>(a)) return sum_rows<double>(a, out);
    if (py::isinstance<py::array_t<float>>(a)) return sum_rows<float>(a, out);
    if (py::isinstance<py::array_t<std::int64_t>>(a)) return sum_rows<std::int64_t>(a, out);
    if (py::isinstance<py::array_t<std::int32_t>>(a)) return sum_rows<std::int32_t>(a, out);
  }
  sum_rows<double>(F64Array::ensure(a), out);
}

}  // namespace

std::string shape_string(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

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

LoadMatrix load_from(py::handle obj, const std::string& name, bool allow_window) {
  py::array a = numeric_array(obj, name, false);
  if (allow_window && a.ndim() == 3)
    check_ndim(a, name, 3, "[window][layers][experts]");
  else
    check_ndim(a, name, 2,
               allow_window ? "[layers][experts] (or 3-D [window][layers][experts])"
                            : "[layers][experts]");
  const int layers = to_int(a.shape(a.ndim() - 2)), experts = to_int(a.shape(a.ndim() - 1));
  std::vector<double> sum(static_cast<std::size_t>(layers) * experts, 0.0);
  sum_into(a, sum);
  LoadMatrix m(layers, experts, std::move(sum));
  const Status s = m.validate();
  if (!s.ok()) throw InputError(name + ": " + s.message());
  return m;
}

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

Placement placement_from(py::handle obj, const std::string& name, int experts) {
  py::array a = numeric_array(obj, name, true);
  check_ndim(a, name, 2, "[layers][slots]");
  std::vector<ExpertId> ids = ids_from(a, name);
  if (experts <= 0) experts = *std::max_element(ids.begin(), ids.end()) + 1;
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

std::pair<Placement, Placement> placement_pair(py::handle old_obj, py::handle new_obj,
                                               const Topology& topo, int num_experts, bool strict) {
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
  return {std::move(a), std::move(b)};
}

PolicyOptions options_of(int num_groups, std::int64_t max_transfers, double threshold) {
  PolicyOptions o;
  o.num_groups = num_groups;
  o.max_transfers = max_transfers;
  o.threshold = threshold;
  return o;
}

py::array_t<std::int64_t> placement_array(const Placement& p) {
  py::array_t<std::int64_t> out(
      {static_cast<py::ssize_t>(p.layers()), static_cast<py::ssize_t>(p.num_slots())});
  std::int64_t* d = out.mutable_data();
  const auto& src = p.data();
  for (std::size_t i = 0; i < src.size(); ++i) d[i] = src[i];
  return out;
}

}  // namespace swiftbalancer::python
