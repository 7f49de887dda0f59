#include "swiftbalancer/io/csv_load.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string_view>

#include "swiftbalancer/io/file_util.h"
#include "swiftbalancer/io/load_check.h"

namespace swiftbalancer::io_detail {
namespace {

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

}  // namespace

std::vector<LoadMatrix> csv_counts(const std::string& path, bool sum) {
  const CsvData d = parse_csv(path);
  const int L = static_cast<int>(d.layers), E = static_cast<int>(d.experts);
  const std::int64_t steps = sum ? 1 : d.steps;
  if (!sum && steps * d.layers * d.experts > kMaxTraceCells)
    fail(path, "CSV trace of " + std::to_string(d.steps) + " steps is too large to hold");
  // Memory follows the data (csv_load.h): ids far beyond the rows present are refused.
  const std::int64_t rows = static_cast<std::int64_t>(d.cells.size());
  const std::int64_t dense = steps * d.layers * d.experts;
  if (dense > std::max(kCsvFreeCells, kCsvCellsPerRow * rows))
    fail(path, std::to_string(rows) + " data row(s) describe " +
                   (sum ? "" : std::to_string(steps) + " steps x ") + std::to_string(d.layers) +
                   " layers x " + std::to_string(d.experts) +
                   " experts = " + std::to_string(dense) + " cells; a CSV may describe at most " +
                   std::to_string(kCsvCellsPerRow) + " cells per row (or " +
                   std::to_string(kCsvFreeCells) + " in all): are the layer and expert ids right?");
  std::vector<LoadMatrix> out(sum ? 1 : static_cast<std::size_t>(d.steps), LoadMatrix(L, E));
  for (const CsvCell& c : d.cells)
    out[sum ? 0 : static_cast<std::size_t>(c.step)].at(static_cast<int>(c.layer),
                                                       static_cast<int>(c.expert)) += c.tokens;
  return out;
}

}  // namespace swiftbalancer::io_detail
