// Small helpers shared by the CLI subcommands: an aligned text table, number formatting, and
// JSON file output. Not thread-safe objects (plain values); the free functions are stateless.
#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace swiftbalancer::cli {

// Columns are sized to their widest cell; the first column is left-aligned, the others right-
// aligned (numbers). A row shorter than the header is padded with empty cells.
class Table {
 public:
  explicit Table(std::vector<std::string> header = {}) : header_(std::move(header)) {}
  void add_row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  std::string str() const;
  void print(std::FILE* out = stdout) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// Fixed-point with `decimals` digits ("1.007").
std::string fmt_fixed(double v, int decimals = 3);
// Milliseconds with a sensible precision ("0.412 ms", "12.3 ms", "1532 ms").
std::string fmt_ms(double ms);

// Writes `j` to `path` (indent -1: one line); throws InputError naming the path when it cannot.
void write_json_file(const std::string& path, const nlohmann::json& j, int indent = 2);

}  // namespace swiftbalancer::cli
