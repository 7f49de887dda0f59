// SGLang's JSON expert-load dumps: {"logical_count": [L][E] or [T][L][E]} (load_formats.h).
#include <string>

#include "swiftbalancer/io/file_util.h"
#include "swiftbalancer/io/load_formats.h"

namespace swiftbalancer::io_detail {
namespace {

const char* json_type(const nlohmann::json& v) {
  return v.type_name();
}

// Reads one [L][E] array into `out` (added when `add`), checking shape and values.
void json_matrix(const nlohmann::json& m, const std::string& source, int step, bool has_steps,
                 int layers, int experts, double* out) {
  const std::string sw = has_steps ? "step " + std::to_string(step) + " " : "";
  if (!m.is_array())
    fail(source, "logical_count " + sw + "is a " + json_type(m) + ", expected an array of layers");
  if (static_cast<int>(m.size()) != layers)
    fail(source, "logical_count " + sw + "has " + std::to_string(m.size()) + " layers, expected " +
                     std::to_string(layers) + " (ragged)");
  for (int l = 0; l < layers; ++l) {
    const nlohmann::json& row = m[static_cast<std::size_t>(l)];
    if (!row.is_array())
      fail(source, "logical_count " + sw + "layer " + std::to_string(l) + " is a " +
                       json_type(row) + ", expected an array of expert counts");
    if (static_cast<int>(row.size()) != experts)
      fail(source, "ragged rows: " + sw + "layer " + std::to_string(l) + " has " +
                       std::to_string(row.size()) + " values, expected " + std::to_string(experts));
    double* dst = out + static_cast<std::size_t>(l) * experts;
    int e = 0;
    for (const nlohmann::json& v : row) {
      double x;
      if (v.is_number_float()) {
        x = v.get_ref<const nlohmann::json::number_float_t&>();
      } else if (v.is_number_unsigned()) {
        x = static_cast<double>(v.get_ref<const nlohmann::json::number_unsigned_t&>());
      } else if (v.is_number_integer()) {
        x = static_cast<double>(v.get_ref<const nlohmann::json::number_integer_t&>());
      } else {
        fail(source,
             "load of " + where(step, l, e, has_steps) + " is not a number (" + json_type(v) + ")");
      }
      check_value(x, source, step, l, e, has_steps);
      dst[e++] += x;
    }
  }
}

// logical_count as steps ([T][L][E]) or one matrix ([L][E]); `sum` folds the steps into one.
}  // namespace

std::vector<LoadMatrix> json_counts(const nlohmann::json& j, const std::string& source, bool sum) {
  const nlohmann::json* arr = &j;
  if (j.is_object()) {
    auto it = j.find("logical_count");
    if (it == j.end()) fail(source, "missing key \"logical_count\" (SGLang expert-load dump)");
    arr = &*it;
  } else if (!j.is_array()) {
    fail(source, std::string("expected an object with \"logical_count\", got a ") + json_type(j));
  }
  const nlohmann::json& a = *arr;
  if (!a.is_array())
    fail(source,
         std::string("logical_count is a ") + json_type(a) + ", expected a 2-D or 3-D array");
  if (a.empty()) fail(source, "logical_count is empty");
  const nlohmann::json& first = a[0];
  if (!first.is_array())
    fail(source,
         "logical_count must be 2-D [layers][experts] or 3-D [steps][layers][experts]; "
         "element 0 is a " +
             std::string(json_type(first)));
  if (first.empty()) fail(source, "logical_count[0] is empty");
  const bool has_steps = first[0].is_array();
  std::vector<LoadMatrix> out;
  if (!has_steps) {
    const std::int64_t layers = static_cast<std::int64_t>(a.size());
    const std::int64_t experts = static_cast<std::int64_t>(first.size());
    check_shape(source, layers, experts);
    out.emplace_back(static_cast<int>(layers), static_cast<int>(experts));
    json_matrix(a, source, 0, false, static_cast<int>(layers), static_cast<int>(experts),
                out[0].row(0).data());
    return out;
  }
  const std::int64_t layers = static_cast<std::int64_t>(first.size());
  const nlohmann::json& row0 = first[0];
  const std::int64_t experts = static_cast<std::int64_t>(row0.size());
  check_shape(source, layers, experts);
  const int L = static_cast<int>(layers), E = static_cast<int>(experts);
  if (sum) out.emplace_back(L, E);
  for (std::size_t t = 0; t < a.size(); ++t) {
    if (!sum) out.emplace_back(L, E);
    json_matrix(a[t], source, static_cast<int>(t), true, L, E, out.back().row(0).data());
  }
  return out;
}

nlohmann::json parse_json_file(const std::string& path) {
  const std::string text = read_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    std::string msg = "malformed JSON: ";
    msg += e.what();
    // Python's json.dump writes NaN and Infinity, which JSON does not allow.
    if (text.find("NaN") != std::string::npos || text.find("Infinity") != std::string::npos)
      msg += " (NaN and Infinity are not valid JSON; loads must be finite)";
    fail(path, msg);
  } catch (const nlohmann::json::exception& e) {  // e.g. a number too large for a double
    fail(path, std::string("malformed JSON: ") + e.what());
  }
}

nlohmann::json matrix_json(const LoadMatrix& m) {
  nlohmann::json rows = nlohmann::json::array();
  for (int l = 0; l < m.layers(); ++l) {
    auto r = m.row(l);
    rows.push_back(nlohmann::json(std::vector<double>(r.begin(), r.end())));
  }
  return rows;
}

}  // namespace swiftbalancer::io_detail
