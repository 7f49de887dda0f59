#include "swiftbalancer/io/file_util.h"

#include <fstream>

#include "swiftbalancer/core/status.h"
#include "swiftbalancer/io/atomic_file.h"
#include "swiftbalancer/io/file_check.h"

namespace swiftbalancer::io_detail {

void require_file(const std::string& path) {
  check_input_file(path);
}

std::string read_file(const std::string& path) {
  require_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open file (unreadable)");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) throw InputError(path + ": cannot read file");
  std::string text(static_cast<std::size_t>(size), '\0');
  in.seekg(0);
  if (size > 0 && !in.read(text.data(), size)) throw InputError(path + ": cannot read file");
  return text;
}

void write_text(const std::string& path, const std::string& text) {
  write_file_atomically(path, text);
}

}  // namespace swiftbalancer::io_detail
