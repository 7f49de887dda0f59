#include "swiftbalancer/io/load_check.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <sstream>

#include "swiftbalancer/core/status.h"

namespace swiftbalancer::io_detail {

void fail(const std::string& source, const std::string& what) {
  throw InputError(source + ": " + what);
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string where(int step, int layer, int expert, bool has_steps) {
  std::string w;
  if (has_steps) w = "step " + std::to_string(step) + ", ";
  return w + "layer " + std::to_string(layer) + ", expert " + std::to_string(expert);
}

void check_value(double v, const std::string& source, int step, int layer, int expert,
                 bool has_steps) {
  if (std::isnan(v)) fail(source, "load of " + where(step, layer, expert, has_steps) + " is NaN");
  if (std::isinf(v))
    fail(source, "load of " + where(step, layer, expert, has_steps) + " is infinite");
  if (v < 0) {
    std::ostringstream os;
    os << v;
    fail(source,
         "load of " + where(step, layer, expert, has_steps) + " is negative (" + os.str() + ")");
  }
}

void check_shape(const std::string& source, std::int64_t layers, std::int64_t experts) {
  if (layers <= 0 || experts <= 0)
    fail(source, "load has " + std::to_string(layers) + " layers x " + std::to_string(experts) +
                     " experts; both must be positive");
  if (layers > limits::kMaxLayers || experts > limits::kMaxExperts ||
      layers * experts > limits::kMaxCells)
    fail(source, "load shape " + std::to_string(layers) + " x " + std::to_string(experts) +
                     " is too large (limits: " + std::to_string(limits::kMaxLayers) + " layers, " +
                     std::to_string(limits::kMaxExperts) + " experts, " +
                     std::to_string(limits::kMaxCells) + " cells)");
}

std::string load_limit_text(double v) {
  std::ostringstream os;
  os << v;
  return os.str() +
         ", above the limit of 2^53 (9007199254740992) per cell; scale the loads "
         "down (only their ratios matter)";
}

void check_summed(const LoadMatrix& m, const std::string& source, std::int64_t step) {
  const int at = static_cast<int>(std::max<std::int64_t>(step, 0));
  for (int l = 0; l < m.layers(); ++l) {
    const auto row = m.row(l);
    for (int e = 0; e < m.experts(); ++e) {
      if (!std::isfinite(row[e]))
        fail(source, "load of " + where(0, l, e, false) +
                         " overflows to infinity when summed over the steps");
      if (row[e] > limits::kMaxLoadValue)
        fail(source, "load of " + where(at, l, e, step >= 0) + " is " + load_limit_text(row[e]));
    }
  }
}

}  // namespace swiftbalancer::io_detail
