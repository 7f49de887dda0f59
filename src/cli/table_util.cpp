#include "cli/table_util.h"

#include <algorithm>
#include <cstdio>

#include "swiftbalancer/core/status.h"
#include "swiftbalancer/io/atomic_file.h"

namespace swiftbalancer::cli {

std::string Table::str() const {
  std::size_t ncols = header_.size();
  for (const auto& r : rows_) ncols = std::max(ncols, r.size());
  std::vector<std::size_t> width(ncols, 0);
  auto measure = [&](const std::vector<std::string>& r) {
    for (std::size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
  };
  measure(header_);
  for (const auto& r : rows_) measure(r);
  std::string out;
  auto emit = [&](const std::vector<std::string>& r) {
    std::string line;
    for (std::size_t c = 0; c < ncols; ++c) {
      const std::string cell = c < r.size() ? r[c] : "";
      const std::string pad(width[c] - cell.size(), ' ');
      if (c > 0) line += "  ";
      line += c == 0 ? cell + pad : pad + cell;
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  };
  if (!header_.empty()) emit(header_);
  for (const auto& r : rows_) emit(r);
  return out;
}

void Table::print(std::FILE* out) const {
  std::fputs(str().c_str(), out);
}

std::string fmt_fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

std::string fmt_ms(double ms) {
  if (ms < 1.0) return fmt_fixed(ms, 3) + " ms";
  if (ms < 100.0) return fmt_fixed(ms, 1) + " ms";
  return fmt_fixed(ms, 0) + " ms";
}

void write_json_file(const std::string& path, const nlohmann::json& j, int indent) {
  write_file_atomically(path, j.dump(indent) + "\n");
}

}  // namespace swiftbalancer::cli
