#include "cli/option_checks.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <sstream>

#include "swiftbalancer/core/status.h"
#include "swiftbalancer/io/file_check.h"

namespace swiftbalancer::cli {
namespace {

// Parses the whole string as a double; false for anything else (trailing text, empty).
bool parse_number(const std::string& s, double& v) {
  if (s.empty()) return false;
  char* end = nullptr;
  v = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

std::string bound(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::ostringstream os;
  os << v;
  return os.str();
}

}  // namespace

CLI::Validator finite_range(double lo, double hi) {
  const std::string desc = "finite, in [" + bound(lo) + ", " + bound(hi) + "]";
  return CLI::Validator(
      [lo, hi](std::string& s) -> std::string {
        double v = 0;
        if (!parse_number(s, v)) return "'" + s + "' is not a number";
        if (!std::isfinite(v)) return "'" + s + "' is not a finite number";
        if (v < lo || v > hi)
          return "'" + s + "' is outside [" + bound(lo) + ", " + bound(hi) + "]";
        return std::string();
      },
      desc, "FINITE_RANGE");
}

CLI::Validator finite_non_negative() {
  return finite_range(0.0, std::numeric_limits<double>::infinity());
}

CLI::Validator finite_positive() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        double v = 0;
        if (!parse_number(s, v)) return "'" + s + "' is not a number";
        if (!std::isfinite(v) || v <= 0) return "'" + s + "' is not a finite positive number";
        return std::string();
      },
      "finite, > 0", "FINITE_POSITIVE");
}

void check_inputs(const PathOptions& inputs) {
  for (const auto& [option, path] : inputs)
    if (!path.empty()) check_input_file(path, option);
}

void check_outputs(const PathOptions& outputs) {
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const auto& [option, path] = outputs[i];
    if (path.empty()) continue;
    check_output_file(path, option);
    const std::filesystem::path a = std::filesystem::absolute(path).lexically_normal();
    for (std::size_t j = 0; j < i; ++j)
      if (!outputs[j].second.empty() &&
          std::filesystem::absolute(outputs[j].second).lexically_normal() == a)
        throw InputError(option + " " + path + ": the same file as " + outputs[j].first);
  }
}

Topology make_topology(int ranks, int slots_per_rank, int ranks_per_node,
                       const std::string& names) {
  try {
    return Topology::make(ranks, slots_per_rank, ranks_per_node);
  } catch (const InputError& e) {
    throw InputError(names + ": " + e.what());
  }
}

}  // namespace swiftbalancer::cli
