// The public load readers and writers (load_io.h): format resolution, npy, and dispatch to the
// JSON and CSV readers (load_json.cpp, load_csv.cpp).
#include "swiftbalancer/io/load_io.h"

#include <cctype>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "swiftbalancer/io/file_util.h"
#include "swiftbalancer/io/load_formats.h"
#include "swiftbalancer/io/npy.h"

namespace swiftbalancer {
namespace {

using io_detail::check_shape;
using io_detail::check_value;
using io_detail::csv_counts;
using io_detail::fail;
using io_detail::json_counts;
using io_detail::kMaxCells;
using io_detail::lower;
using io_detail::matrix_json;
using io_detail::parse_json_file;
using io_detail::require_file;
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
