#include "cli/option_checks.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
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

// The option's own type ("INT", "UINT", "FLOAT", "TEXT", ...), without the validators' texts
// that get_type_name() appends after ':'.
std::string base_type(const CLI::Option& opt) {
  const std::string t = opt.get_type_name();
  return t.substr(0, t.find(':'));
}

// A plain decimal integer that fits in 64 bits: [-+]digits, no leading zeros, signed in
// [-2^63, 2^63-1], unsigned in [0, 2^64-1]. Returns the reason it is not, or "".
std::string check_integer_text(const std::string& s, bool is_unsigned) {
  const char* p = s.c_str();
  const char* end = p + s.size();
  const bool neg = p != end && *p == '-';
  if (p != end && (*p == '-' || *p == '+')) ++p;
  if (p == end) return "'" + s + "' is not an integer";
  for (const char* q = p; q != end; ++q)
    if (*q < '0' || *q > '9') return "'" + s + "' is not a decimal integer";
  if (*p == '0' && end - p > 1)
    return "'" + s + "': leading zeros are not allowed (they would be read as octal)";
  if (is_unsigned) {
    if (neg && !(end - p == 1 && *p == '0'))
      return "'" + s + "' is negative; this option takes a non-negative integer";
    std::uint64_t v = 0;
    const auto r = std::from_chars(p, end, v);
    if (r.ec != std::errc() || r.ptr != end)
      return "'" + s + "' is out of range (at most 18446744073709551615)";
    return std::string();
  }
  std::int64_t v = 0;
  const auto r = std::from_chars(neg ? p - 1 : p, end, v);
  if (r.ec != std::errc() || r.ptr != end)
    return "'" + s + "' is out of range [-9223372036854775808, 9223372036854775807]";
  return std::string();
}

}  // namespace

void harden_options(CLI::App& app, const std::vector<std::string>& allow_empty) {
  for (CLI::App* sub : app.get_subcommands({})) {
    for (CLI::Option* opt : sub->get_options()) {
      const std::string type = base_type(*opt);
      if (type == "INT" || type == "UINT") {
        const bool is_unsigned = type == "UINT";
        opt->check(CLI::Validator(
            [is_unsigned](std::string& s) { return check_integer_text(s, is_unsigned); }, "",
            "INTEGER_64"));
      } else if (type == "TEXT") {
        const std::string name = opt->get_name();
        if (std::find(allow_empty.begin(), allow_empty.end(), name) != allow_empty.end()) continue;
        opt->check(CLI::Validator(
            [](std::string& s) -> std::string {
              return s.empty() ? "the value is empty (give one, or leave the option out)"
                               : std::string();
            },
            "", "NON_EMPTY"));
      }
    }
    harden_options(*sub, allow_empty);
  }
}

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
