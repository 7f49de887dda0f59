#include "swiftbalancer/io/load_io.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "swiftbalancer/io/csv_load.h"
#include "swiftbalancer/io/file_util.h"
#include "swiftbalancer/io/load_check.h"
#include "swiftbalancer/io/npy.h"

namespace swiftbalancer {
namespace {

using io_detail::check_shape;
using io_detail::check_summed;
using io_detail::check_value;
using io_detail::csv_counts;
using io_detail::fail;
using io_detail::lower;
using io_detail::read_file;
using io_detail::require_file;
using io_detail::where;
using io_detail::write_text;

std::string extension(const std::string& path) {
  return lower(std::filesystem::path(path).extension().string());
}

LoadFormat resolve_read_format(const std::string& path, LoadFormat format) {
  if (format != LoadFormat::kAuto) return format;
  const std::string ext = extension(path);
  if (ext == ".json") return LoadFormat::kSglangJson;
  if (ext == ".csv") return LoadFormat::kCsv;
  if (ext == ".npy") return LoadFormat::kNpy;
  // Unknown extension: look at the first bytes.
  std::ifstream in(path, std::ios::binary);
  char head[6] = {0, 0, 0, 0, 0, 0};
  in.read(head, sizeof(head));
  if (std::memcmp(head, "\x93NUMPY", 6) == 0) return LoadFormat::kNpy;
  for (char c : head) {
    if (std::isspace(static_cast<unsigned char>(c))) continue;
    return c == '{' || c == '[' ? LoadFormat::kSglangJson : LoadFormat::kCsv;
  }
  return LoadFormat::kCsv;
}

LoadFormat resolve_write_format(const std::string& path, LoadFormat format) {
  if (format != LoadFormat::kAuto) return format;
  const std::string ext = extension(path);
  if (ext == ".json") return LoadFormat::kSglangJson;
  if (ext == ".csv") return LoadFormat::kCsv;
  if (ext == ".npy") return LoadFormat::kNpy;
  fail(path, "cannot tell the load format from the extension '" + ext +
                 "' (use .json, .csv or .npy, or name the format)");
}

// ---------------------------------------------------------------- JSON

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

std::string format_double(double v) {
  char buf[32];
  auto [p, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  (void)ec;
  return std::string(buf, p);
}

// ---------------------------------------------------------------- npy

std::vector<LoadMatrix> npy_counts(const std::string& path, bool sum) {
  require_file(path);
  NpyReader r(path);
  const auto& shape = r.header().shape;
  if (shape.size() != 2 && shape.size() != 3)
    fail(path, "npy load must be 2-D [layers][experts] or 3-D [steps][layers][experts], got " +
                   std::to_string(shape.size()) + "-D");
  const bool has_steps = shape.size() == 3;
  const std::int64_t T = has_steps ? shape[0] : 1;
  const std::int64_t layers = shape[shape.size() - 2], experts = shape.back();
  if (T <= 0) fail(path, "npy load has no steps (shape[0] is 0)");
  check_shape(path, layers, experts);
  const int L = static_cast<int>(layers), E = static_cast<int>(experts);
  if (!sum && T * layers * experts > io_detail::kMaxTraceCells)
    fail(path, "npy trace of " + std::to_string(T) + " steps is too large to hold");
  std::vector<LoadMatrix> out;
  if (sum) out.emplace_back(L, E);
  std::vector<double> row(static_cast<std::size_t>(E));
  for (std::int64_t t = 0; t < T; ++t) {
    if (!sum) out.emplace_back(L, E);
    LoadMatrix& m = out.back();
    for (int l = 0; l < L; ++l) {
      r.read(row);
      auto dst = m.row(l);
      for (int e = 0; e < E; ++e) {
        check_value(row[e], path, static_cast<int>(t), l, e, has_steps);
        dst[e] += row[e];
      }
    }
  }
  return out;
}

std::vector<LoadMatrix> read_counts_unchecked(const std::string& path, LoadFormat format,
                                              bool sum) {
  require_file(path);
  switch (resolve_read_format(path, format)) {
    case LoadFormat::kSglangJson:
      return json_counts(parse_json_file(path), path, sum);
    case LoadFormat::kCsv:
      return csv_counts(path, sum);
    case LoadFormat::kNpy:
      return npy_counts(path, sum);
    case LoadFormat::kAuto:
      break;
  }
  fail(path, "unknown load format");
}

// Every value was finite on its own; a sum over steps (or over duplicate CSV rows) may not be.
std::vector<LoadMatrix> read_counts(const std::string& path, LoadFormat format, bool sum) {
  // The shapes are checked against core/limits.h before the matrices are allocated, and a text
  // file's size before it is read; an allocation that fails anyway names the file.
  std::vector<LoadMatrix> out =
      io_detail::reading(path, [&] { return read_counts_unchecked(path, format, sum); });
  for (std::size_t t = 0; t < out.size(); ++t)
    check_summed(out[t], path, sum ? -1 : static_cast<std::int64_t>(t));
  return out;
}

nlohmann::json matrix_json(const LoadMatrix& m) {
  nlohmann::json rows = nlohmann::json::array();
  for (int l = 0; l < m.layers(); ++l) {
    auto r = m.row(l);
    rows.push_back(nlohmann::json(std::vector<double>(r.begin(), r.end())));
  }
  return rows;
}

void check_steps(const std::string& path, const std::vector<LoadMatrix>& steps) {
  if (steps.empty()) fail(path, "no steps to write");
  for (std::size_t t = 0; t < steps.size(); ++t) {
    if (steps[t].empty()) fail(path, "step " + std::to_string(t) + " is empty");
    if (steps[t].layers() != steps[0].layers() || steps[t].experts() != steps[0].experts())
      fail(path, "step " + std::to_string(t) + " has shape " + std::to_string(steps[t].layers()) +
                     " x " + std::to_string(steps[t].experts()) + ", step 0 has " +
                     std::to_string(steps[0].layers()) + " x " +
                     std::to_string(steps[0].experts()));
  }
}

}  // namespace

LoadFormat parse_load_format(const std::string& name) {
  const std::string n = lower(name);
  if (n == "auto") return LoadFormat::kAuto;
  if (n == "sglang" || n == "json") return LoadFormat::kSglangJson;
  if (n == "csv") return LoadFormat::kCsv;
  if (n == "npy") return LoadFormat::kNpy;
  throw InputError("unknown load format '" + name + "' (known: auto, sglang, json, csv, npy)");
}

const char* load_format_name(LoadFormat format) {
  switch (format) {
    case LoadFormat::kAuto:
      return "auto";
    case LoadFormat::kSglangJson:
      return "sglang";
    case LoadFormat::kCsv:
      return "csv";
    case LoadFormat::kNpy:
      return "npy";
  }
  return "unknown";
}

LoadMatrix read_load(const std::string& path, LoadFormat format) {
  return std::move(read_counts(path, format, /*sum=*/true)[0]);
}

LoadFormat detect_load_format(const std::string& path) {
  return resolve_read_format(path, LoadFormat::kAuto);
}

std::vector<LoadMatrix> read_load_steps(const std::string& path, LoadFormat format) {
  return read_counts(path, format, /*sum=*/false);
}

LoadMatrix load_from_json(const nlohmann::json& j, const std::string& source) {
  LoadMatrix m = std::move(json_counts(j, source, /*sum=*/true)[0]);
  check_summed(m, source);
  return m;
}

nlohmann::json load_to_json(const LoadMatrix& load) {
  if (load.empty()) throw InputError("cannot convert an empty load matrix to JSON");
  return nlohmann::json{{"logical_count", matrix_json(load)}};
}

void write_load(const std::string& path, const LoadMatrix& load, LoadFormat format) {
  if (load.empty()) fail(path, "cannot write an empty load matrix");
  switch (resolve_write_format(path, format)) {
    case LoadFormat::kSglangJson:
      write_text(path, load_to_json(load).dump() + "\n");
      return;
    case LoadFormat::kCsv: {
      std::string text = "layer,expert,tokens\n";
      text.reserve(text.size() + load.data().size() * 16);
      for (int l = 0; l < load.layers(); ++l)
        for (int e = 0; e < load.experts(); ++e)
          text += std::to_string(l) + "," + std::to_string(e) + "," + format_double(load.at(l, e)) +
                  "\n";
      write_text(path, text);
      return;
    }
    case LoadFormat::kNpy: {
      const std::int64_t shape[2] = {load.layers(), load.experts()};
      write_npy(path, shape, std::span<const double>(load.data()));
      return;
    }
    case LoadFormat::kAuto:
      break;
  }
  fail(path, "unknown load format");
}

void write_load_steps(const std::string& path, const std::vector<LoadMatrix>& steps,
                      LoadFormat format) {
  check_steps(path, steps);
  const int L = steps[0].layers(), E = steps[0].experts();
  switch (resolve_write_format(path, format)) {
    case LoadFormat::kSglangJson: {
      nlohmann::json all = nlohmann::json::array();
      for (const LoadMatrix& m : steps) all.push_back(matrix_json(m));
      write_text(path, nlohmann::json{{"logical_count", std::move(all)}}.dump() + "\n");
      return;
    }
    case LoadFormat::kCsv: {
      std::string text = "step,layer,expert,tokens\n";
      for (std::size_t t = 0; t < steps.size(); ++t)
        for (int l = 0; l < L; ++l)
          for (int e = 0; e < E; ++e)
            text += std::to_string(t) + "," + std::to_string(l) + "," + std::to_string(e) + "," +
                    format_double(steps[t].at(l, e)) + "\n";
      write_text(path, text);
      return;
    }
    case LoadFormat::kNpy: {
      NpyWriter w(path, {static_cast<std::int64_t>(steps.size()), L, E},
                  NpyWriter::Dtype::kFloat64);
      for (const LoadMatrix& m : steps) w.append(std::span<const double>(m.data()));
      w.close();
      return;
    }
    case LoadFormat::kAuto:
      break;
  }
  fail(path, "unknown load format");
}

}  // namespace swiftbalancer
