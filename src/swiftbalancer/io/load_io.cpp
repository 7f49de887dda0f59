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

#include "swiftbalancer/io/file_util.h"
#include "swiftbalancer/io/npy.h"

namespace swiftbalancer {
namespace {

using io_detail::read_file;
using io_detail::require_file;
using io_detail::write_text;

// Bounds that keep a hostile file from asking for absurd allocations.
constexpr std::int64_t kMaxId = 1 << 20;
constexpr std::int64_t kMaxCells = std::int64_t{1} << 27;  // per step: 1 GiB of doubles

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw InputError(source + ": " + what);
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string extension(const std::string& path) {
  return lower(std::filesystem::path(path).extension().string());
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

// ---------------------------------------------------------------- CSV

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

struct CsvCell {
  std::int64_t step, layer, expert;
  double tokens;
};

struct CsvData {
  bool has_steps = false;
  std::int64_t steps = 1, layers = 0, experts = 0;
  std::vector<CsvCell> cells;
};

std::int64_t parse_id(std::string_view f, const std::string& source, std::size_t line,
                      const char* name) {
  f = trim(f);
  std::int64_t v = -1;
  auto [p, ec] = std::from_chars(f.data(), f.data() + f.size(), v);
  if (ec != std::errc() || p != f.data() + f.size() || f.empty())
    fail(source, "line " + std::to_string(line) + ": " + name + " '" + std::string(f) +
                     "' is not an integer");
  if (v < 0)
    fail(source,
         "line " + std::to_string(line) + ": " + name + " " + std::to_string(v) + " is negative");
  if (v >= kMaxId)
    fail(source,
         "line " + std::to_string(line) + ": " + name + " " + std::to_string(v) + " is too large");
  return v;
}

CsvData parse_csv(const std::string& path) {
  const std::string text = read_file(path);
  CsvData d;
  int col_step = -1, col_layer = -1, col_expert = -1, col_tokens = -1, ncols = 0;
  bool have_header = false;
  std::size_t pos = 0, line = 0;
  std::vector<std::string_view> fields;
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) pos = 3;  // UTF-8 byte order mark
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view ln(text.data() + pos, end - pos);
    pos = end + 1;
    ++line;
    if (!ln.empty() && ln.back() == '\r') ln.remove_suffix(1);
    if (trim(ln).empty()) continue;
    fields.clear();
    std::size_t s = 0;
    while (true) {
      const std::size_t c = ln.find(',', s);
      fields.push_back(ln.substr(s, c == std::string_view::npos ? std::string_view::npos : c - s));
      if (c == std::string_view::npos) break;
      s = c + 1;
    }
    if (!have_header) {
      for (int k = 0; k < static_cast<int>(fields.size()); ++k) {
        const std::string name = lower(std::string(trim(fields[k])));
        int* slot = name == "step"     ? &col_step
                    : name == "layer"  ? &col_layer
                    : name == "expert" ? &col_expert
                    : name == "tokens" ? &col_tokens
                                       : nullptr;
        if (slot == nullptr || *slot != -1)
          fail(path, "line " + std::to_string(line) + ": bad CSV header '" + std::string(ln) +
                         "' (expected \"layer,expert,tokens\" or \"step,layer,expert,tokens\")");
        *slot = k;
      }
      if (col_layer < 0 || col_expert < 0 || col_tokens < 0)
        fail(path, "line " + std::to_string(line) + ": bad CSV header '" + std::string(ln) +
                       "' (expected \"layer,expert,tokens\" or \"step,layer,expert,tokens\")");
      ncols = static_cast<int>(fields.size());
      d.has_steps = col_step >= 0;
      have_header = true;
      continue;
    }
    if (static_cast<int>(fields.size()) != ncols)
      fail(path, "line " + std::to_string(line) + " has " + std::to_string(fields.size()) +
                     " fields, expected " + std::to_string(ncols) + " (ragged row)");
    CsvCell c{0, 0, 0, 0.0};
    if (d.has_steps) c.step = parse_id(fields[col_step], path, line, "step");
    c.layer = parse_id(fields[col_layer], path, line, "layer");
    c.expert = parse_id(fields[col_expert], path, line, "expert");
    const std::string_view tok = trim(fields[col_tokens]);
    auto [p, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), c.tokens);
    if (tok.empty() || p != tok.data() + tok.size() ||
        (ec != std::errc() && ec != std::errc::result_out_of_range))
      fail(path,
           "line " + std::to_string(line) + ": tokens '" + std::string(tok) + "' is not a number");
    if (ec == std::errc::result_out_of_range)  // strtod: HUGE_VAL on overflow, 0 on underflow
      c.tokens = std::strtod(std::string(tok).c_str(), nullptr);
    if (!std::isfinite(c.tokens) || c.tokens < 0) {
      try {
        check_value(c.tokens, path, static_cast<int>(c.step), static_cast<int>(c.layer),
                    static_cast<int>(c.expert), d.has_steps);
      } catch (const InputError& e) {
        fail(path,
             "line " + std::to_string(line) + ": " + std::string(e.what()).substr(path.size() + 2));
      }
    }
    d.steps = std::max(d.steps, c.step + 1);
    d.layers = std::max(d.layers, c.layer + 1);
    d.experts = std::max(d.experts, c.expert + 1);
    d.cells.push_back(c);
  }
  if (!have_header) fail(path, "empty CSV file (expected a header \"layer,expert,tokens\")");
  if (d.cells.empty()) fail(path, "CSV file has a header but no data rows");
  check_shape(path, d.layers, d.experts);
  if (!d.has_steps) d.steps = 1;
  return d;
}

std::vector<LoadMatrix> csv_counts(const std::string& path, bool sum) {
  const CsvData d = parse_csv(path);
  const int L = static_cast<int>(d.layers), E = static_cast<int>(d.experts);
  if (!sum && d.steps * d.layers * d.experts > kMaxCells * 4)
    fail(path, "CSV trace of " + std::to_string(d.steps) + " steps is too large to hold");
  std::vector<LoadMatrix> out(sum ? 1 : static_cast<std::size_t>(d.steps), LoadMatrix(L, E));
  for (const CsvCell& c : d.cells)
    out[sum ? 0 : static_cast<std::size_t>(c.step)].at(static_cast<int>(c.layer),
                                                       static_cast<int>(c.expert)) += c.tokens;
  return out;
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
  if (!sum && T * layers * experts > kMaxCells * 4)
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

std::vector<LoadMatrix> read_counts(const std::string& path, LoadFormat format, bool sum) {
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

std::vector<LoadMatrix> read_load_steps(const std::string& path, LoadFormat format) {
  return read_counts(path, format, /*sum=*/false);
}

LoadMatrix load_from_json(const nlohmann::json& j, const std::string& source) {
  return std::move(json_counts(j, source, /*sum=*/true)[0]);
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
