// The checks every load reader shares (load_formats.h).
#include <cctype>
#include <cmath>
#include <sstream>

#include "swiftbalancer/io/load_formats.h"

namespace swiftbalancer::io_detail {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string where(int step, int layer, int expert, bool has_steps) {
  std::string w;
  if (has_steps) w = "step " + std::to_string(step) + ", ";
  return w + "layer " + std::to_string(layer) + ", expert " + std::to_string(expert);
}

// Every load value passes here: finite and non-negative.
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
  if (layers > kMaxId || experts > kMaxId || layers * experts > kMaxCells)
    fail(source, "load shape " + std::to_string(layers) + " x " + std::to_string(experts) +
                     " is too large");
}

}  // namespace swiftbalancer::io_detail
