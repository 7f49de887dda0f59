#include "swiftbalancer/io/file_util.h"

#include <filesystem>
#include <fstream>

#include "swiftbalancer/core/status.h"

namespace swiftbalancer::io_detail {

void require_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw InputError(path + ": file not found");
  if (std::filesystem::is_directory(path, ec))
    throw InputError(path + ": is a directory, not a file");
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
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw InputError(path + ": cannot open for writing");
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.close();
  if (!out) throw InputError(path + ": write failed");
}

}  // namespace swiftbalancer::io_detail
